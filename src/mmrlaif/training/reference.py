"""DPO on vision pairs with reference log-probs computed once, before training.

TRL 1.16 refuses ``precompute_ref_log_probs`` for vision datasets: its vision collator drops the
``ref_*_logps`` columns and the guard in ``DPOTrainer.__init__`` raises. The reference of an
RLAIF-V iteration is that iteration's starting policy and never changes, so paying a reference
forward per training step (and holding a second model in memory) buys nothing.

:class:`PrecomputedRefDPOTrainer` keeps TRL's loss untouched. After TRL has built the trainer, it
runs TRL's own precompute pass (``_precompute_ref_logps``: the reference model, one forward per
pair, results cached as dataset columns), releases the reference model, turns TRL's
``precompute_ref_logps`` switch on, and wraps the vision collator so the two columns reach
``_compute_loss`` as tensors. With PEFT there is no second model at all (TRL disables the
adapter for the reference pass).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from trl import DPOTrainer
from trl.trainer.utils import hash_module

from mmrlaif.training.checkpoint import CheckpointLoadMixin
from mmrlaif.training.optim import ProjectorLRMixin

logger = logging.getLogger(__name__)

REF_COLUMNS: tuple[str, str] = ("ref_chosen_logps", "ref_rejected_logps")


@dataclass
class ReferenceLogpsCollator:
    """Wraps a preference collator and forwards the precomputed reference log-probs.

    Attributes:
        inner: The collator that builds the model inputs (TRL's vision collator).
    """

    inner: Any

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Collate ``examples``; adds ``ref_chosen_logps`` / ``ref_rejected_logps`` tensors."""
        missing = [c for c in REF_COLUMNS if c not in examples[0]]
        if missing:
            raise KeyError(f"examples lack the precomputed reference columns {missing}")
        refs = {c: torch.tensor([float(e[c]) for e in examples]) for c in REF_COLUMNS}
        batch = self.inner([{k: v for k, v in e.items() if k not in REF_COLUMNS} for e in examples])
        batch.update(refs)
        return batch


class LiveRefDPOTrainer(ProjectorLRMixin, CheckpointLoadMixin, DPOTrainer):
    """TRL's ``DPOTrainer`` with a live reference model (and a resume that restores weights)."""


class PrecomputedRefDPOTrainer(ProjectorLRMixin, CheckpointLoadMixin, DPOTrainer):
    """TRL's ``DPOTrainer`` whose reference log-probs are computed once, then the reference freed.

    Construct it exactly like ``DPOTrainer`` with ``args.precompute_ref_log_probs=False``
    (TRL's guard refuses ``True`` for vision data) and a ``datasets.Dataset``. The training
    loss is TRL's own ``_compute_loss`` on the precomputed columns.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.args.precompute_ref_log_probs:
            raise ValueError("pass precompute_ref_log_probs=False; this class does the precompute")
        if getattr(self.args, "sync_ref_model", False):
            raise ValueError("sync_ref_model needs a live reference model")
        self._precompute_model_hash = hash_module(self.ref_model or self.model)
        batch_size = self.args.precompute_ref_batch_size or self.args.per_device_train_batch_size
        self.train_dataset = self._precompute_ref_logps(self.train_dataset, "train", batch_size)
        self._release_reference()
        self.precompute_ref_logps = True
        self.data_collator = ReferenceLogpsCollator(self.data_collator)

    def _release_reference(self) -> None:
        """Drop every handle on the reference model so its memory is freed before training."""
        ref = self.ref_model
        if ref is None:
            return
        self.accelerator._models = [m for m in self.accelerator._models if m is not ref]
        self.ref_model = None
        del ref
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        logger.info("reference log-probs precomputed; reference model released")

    def _prepare_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The Trainer's device placement, except that the reference log-probs stay float32
        (under DeepSpeed it casts every float input to the engine's dtype: bf16 would round a
        summed log-prob of -300 to a multiple of 2)."""
        refs = {c: inputs.pop(c) for c in REF_COLUMNS if c in inputs}
        inputs = super()._prepare_inputs(inputs)
        for column, value in refs.items():
            inputs[column] = value.to(device=self.args.device, dtype=torch.float32)
        return inputs

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        for column in REF_COLUMNS:
            if column not in self._signature_columns:
                self._signature_columns.append(column)
