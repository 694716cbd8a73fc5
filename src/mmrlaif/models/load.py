"""Load a policy or labeler VLM: the same function for a hub id, a local path or a tiny model."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, ProcessorMixin

from mmrlaif.families import UnknownFamilyError
from mmrlaif.models.chat import ChatFormat, ChatFormatError
from mmrlaif.models.families import family_of

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(ValueError):
    """A model path or id cannot be loaded."""


def load_vlm(
    name_or_path: str | Path,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    device: str | None = None,
    family: str | None = None,
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Load an image-text-to-text model and its processor with the Auto classes.

    Args:
        name_or_path: A hub id (e.g. ``llava-hf/llava-1.5-7b-hf``) or a local directory written
            by ``save_pretrained``.
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        trust_remote_code: Allow code from the checkpoint; off unless a config turns it on.
        device: Where to put the model (default: CUDA if available, else CPU).
        family: The model family (``model.family``) when its ``model_type`` is not a known one.

    Returns:
        The model in eval mode and its processor (left padding, for batched generation).

    Raises:
        ModelLoadError: Naming the path when a local directory does not exist or has no config,
            or the model is not of a supported family, or its processor has no usable chat
            template.
    """
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
    looks_local = str(name_or_path).startswith((".", "/")) or Path(name_or_path).exists()
    if looks_local and not (Path(name_or_path) / "config.json").is_file():
        raise ModelLoadError(f"model path {name_or_path} has no config.json (not a saved model)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForImageTextToText.from_pretrained(
        name_or_path, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code
    )
    try:
        family_of(model, family)
        processor = AutoProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        ChatFormat(processor)
    except (UnknownFamilyError, ChatFormatError) as exc:
        raise ModelLoadError(f"{name_or_path}: {exc}") from exc
    except ImportError as exc:
        raise ModelLoadError(f"{name_or_path}: its processor cannot load ({exc})") from exc
    processor.tokenizer.padding_side = "left"
    logger.info("loaded %s (%s) on %s", name_or_path, type(model).__name__, device)
    return model.to(device).eval(), processor


def save_model(model: torch.nn.Module, processor: ProcessorMixin, path: str | Path) -> Path:
    """Save a model and its processor with ``save_pretrained`` (loadable by :func:`load_vlm`)."""
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
