"""Model families: where each supported VLM keeps its vision encoder, projector and language
model, and what its rotary positions need.

How a family is *prompted* is not in this table: it comes from the processor's own chat template
(:class:`mmrlaif.models.chat.ChatFormat`). What the template cannot say is here: which
submodules to freeze or adapt (resolved per family, checked against the model, never by one
regex for all) and whether a KV-cached continuation needs explicit 3-D rope positions (Qwen's
M-RoPE).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mmrlaif.families import (
    DEFAULT_LORA_MODULES,
    FAMILIES,
    Family,
    UnknownFamilyError,
    supported_model_types,
)

if TYPE_CHECKING:  # torch stays unimported for config loading and pipeline compiling
    import torch

logger = logging.getLogger(__name__)


def family_of(model_or_type: torch.nn.Module | str, explicit: str | None = None) -> Family:
    """The family of a model (or of a ``config.model_type``).

    Args:
        model_or_type: A loaded model, or its ``model_type``.
        explicit: A family name that overrides detection (``model.family`` in the config), for
            an architecture that is laid out like a supported family under another type name.

    Raises:
        UnknownFamilyError: Naming the model type and listing the supported ones.
    """
    if explicit is not None:
        if explicit not in FAMILIES:
            raise UnknownFamilyError(
                f"unknown model family {explicit!r}; supported: {', '.join(FAMILIES)}"
            )
        return FAMILIES[explicit]
    model_type = (
        model_or_type
        if isinstance(model_or_type, str)
        else getattr(
            getattr(model_or_type, "config", None), "model_type", type(model_or_type).__name__
        )
    )
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    raise UnknownFamilyError(
        f"model type {model_type!r} is not a supported VLM family; supported model types: "
        f"{', '.join(supported_model_types())} (set model.family to one of "
        f"{', '.join(FAMILIES)} if the architecture is laid out like one of them)"
    )


def _base(model: torch.nn.Module) -> torch.nn.Module:
    """The ``...ForConditionalGeneration`` model under a PEFT wrapper, if any."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def submodule(model: torch.nn.Module, path: str) -> torch.nn.Module | torch.nn.Parameter:
    """The submodule (or parameter) at a dotted path.

    Raises:
        UnknownFamilyError: Naming the model class and the path when it is missing.
    """
    obj: object = _base(model)
    for part in path.split("."):
        if not hasattr(obj, part):
            raise UnknownFamilyError(
                f"{type(_base(model)).__name__} has no {path!r}: not laid out as its family says"
            )
        obj = getattr(obj, part)
    return obj  # type: ignore[return-value]


def _parameters(obj: torch.nn.Module | torch.nn.Parameter) -> list[torch.nn.Parameter]:
    # lazy: torch: applying a family to a config needs no torch
    import torch

    return [obj] if isinstance(obj, torch.nn.Parameter) else list(obj.parameters())


def vision_encoder_parameters(
    model: torch.nn.Module, family: Family
) -> dict[str, torch.nn.Parameter]:
    """The vision encoder's own parameters by name (its projector parts excluded)."""
    encoder = submodule(model, family.vision_encoder)
    keep = {id(p) for path in family.projector for p in _parameters(submodule(model, path))}
    return {
        name: p
        for name, p in encoder.named_parameters()  # type: ignore[union-attr]
        if id(p) not in keep
    }


def freeze_vision_encoder(model: torch.nn.Module, family: Family) -> int:
    """Stop gradients to the vision encoder; its projector stays trainable.

    Returns:
        The number of parameters frozen.
    """
    frozen = vision_encoder_parameters(model, family)
    for p in frozen.values():
        p.requires_grad_(False)
    return sum(p.numel() for p in frozen.values())


def lora_target_regex(
    model: torch.nn.Module, family: Family, modules: Sequence[str] = DEFAULT_LORA_MODULES
) -> str:
    """A PEFT ``target_modules`` regex matching ``modules`` inside the language model only.

    Raises:
        UnknownFamilyError: If the language model path is missing.
        ValueError: If none of ``modules`` exists in the language model.
    """
    language_model = submodule(model, family.language_model)
    names = {name.rsplit(".", 1)[-1] for name, _ in language_model.named_modules()}  # type: ignore[union-attr]
    found = [m for m in modules if m in names]
    if not found:
        raise ValueError(
            f"none of the LoRA target modules {list(modules)} is in "
            f"{family.language_model} of {type(_base(model)).__name__}"
        )
    missing = sorted(set(modules) - set(found))
    if missing:
        logger.info("LoRA: %s not in the language model, skipped", ", ".join(missing))
    return rf"{re.escape(family.language_model)}\..*\.({'|'.join(map(re.escape, found))})"
