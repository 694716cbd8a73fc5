"""Resuming from a checkpoint whose weights were saved under the legacy key layout.

transformers 5.23 saves LLaVA-style checkpoints with its key conversion applied
(``language_model.model.layers...``) but ``Trainer._load_from_checkpoint`` reads them back with
a plain non-strict ``load_state_dict``: no key matches, nothing is loaded, and training silently
"resumes" from the starting weights with the checkpoint's optimizer state. This mixin loads
the checkpoint through ``from_pretrained`` (which applies the conversion) and copies the weights
strictly, so a mismatch is an error, never a silent no-op.
"""

from __future__ import annotations

import logging
import os

from transformers import PreTrainedModel
from transformers.utils import SAFE_WEIGHTS_NAME

logger = logging.getLogger(__name__)


class CheckpointLoadMixin:
    """Put before a ``transformers.Trainer`` subclass in the bases to fix its resume."""

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = self.model if model is None else model
        weights = os.path.join(resume_from_checkpoint, SAFE_WEIGHTS_NAME)
        if not (isinstance(model, PreTrainedModel) and os.path.isfile(weights)):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=model.dtype)
        model.load_state_dict(saved.state_dict(), strict=True)
        del saved
        logger.info("model weights restored from %s", resume_from_checkpoint)
        return None
