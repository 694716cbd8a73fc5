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
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch stays unimported for config loading and pipeline compiling
    import torch

logger = logging.getLogger(__name__)

#: Projections of a decoder layer that get LoRA adapters by default (Llama/Qwen/Gemma naming).
DEFAULT_LORA_MODULES: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


class UnknownFamilyError(ValueError):
    """A model whose architecture is not in :data:`FAMILIES`."""


@dataclass(frozen=True)
class Family:
    """One VLM family's layout, as dotted paths from the ``...ForConditionalGeneration`` model.

    Attributes:
        name: The family's name (the ``model_type`` of its reference architecture).
        model_types: ``config.model_type`` values that belong to the family.
        vision_encoder: The vision encoder (frozen in full fine-tuning, never adapted).
        projector: Parts inside or beside the encoder that map image features into the language
            model; trained with the language model (kept trainable even when they sit inside
            :attr:`vision_encoder`, as Qwen's ``visual.merger`` does).
        language_model: The decoder (LoRA adapters go on its projections only).
        mrope: The decoder uses multimodal rotary positions (Qwen's 3-D M-RoPE): a KV-cached
            continuation needs explicit ``position_ids``.
        example: A public checkpoint of the family, for messages and docs.
    """

    name: str
    model_types: tuple[str, ...]
    vision_encoder: str
    projector: tuple[str, ...]
    language_model: str
    mrope: bool = False
    example: str = ""


_LLAVA_PARTS = {
    "vision_encoder": "model.vision_tower",
    "projector": ("model.multi_modal_projector",),
    "language_model": "model.language_model",
}

#: Supported families, by name.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("llava", ("llava",), **_LLAVA_PARTS, example="llava-hf/llava-1.5-7b-hf"),
        Family(
            "llava_next",
            ("llava_next", "llava_onevision"),
            "model.vision_tower",
            ("model.multi_modal_projector", "model.image_newline"),
            "model.language_model",
            example="llava-hf/llava-v1.6-vicuna-7b-hf",
        ),
        Family(
            "qwen2_vl",
            ("qwen2_vl", "qwen2_5_vl"),
            "model.visual",
            ("model.visual.merger",),
            "model.language_model",
            mrope=True,
            example="Qwen/Qwen2.5-VL-7B-Instruct",
        ),
        Family(
            "qwen3_vl",
            ("qwen3_vl",),
            "model.visual",
            ("model.visual.merger", "model.visual.deepstack_merger_list"),
            "model.language_model",
            mrope=True,
            example="Qwen/Qwen3-VL-8B-Instruct",
        ),
        Family(
            "idefics3",
            ("idefics3", "smolvlm"),
            "model.vision_model",
            ("model.connector",),
            "model.text_model",
            example="HuggingFaceTB/SmolVLM-256M-Instruct",
        ),
        Family("gemma3", ("gemma3",), **_LLAVA_PARTS, example="google/gemma-3-4b-it"),
        Family("internvl", ("internvl",), **_LLAVA_PARTS, example="OpenGVLab/InternVL3-1B-hf"),
    )
}


#: Families with a tiny random twin (:mod:`mmrlaif.models.twins`): ``model.name_or_path:
#: twin:<name>`` builds one (a CPU rehearsal of a real preset, nothing downloaded).
TWIN_FAMILIES: tuple[str, ...] = (
    "llava",
    "llava_next",
    "qwen2_5_vl",
    "qwen3_vl",
    "idefics3",
    "smolvlm",
    "gemma3",
    "internvl",
)

#: ``twin:<family>`` or ``twin:<family>@<seed>``.
TWIN_SPEC = re.compile(r"^twin:(?P<family>\w+)(?:@(?P<seed>\d+))?$")


def parse_twin_spec(spec: str) -> tuple[str, int]:
    """``twin:qwen2_5_vl@3`` as ``("qwen2_5_vl", 3)`` (seed 0 when omitted).

    Raises:
        ValueError: If ``spec`` is not of that form or names no twin family.
    """
    match = TWIN_SPEC.match(spec)
    if not match or match["family"] not in TWIN_FAMILIES:
        raise ValueError(
            f"{spec!r} is not twin:<family>[@<seed>] with a family among {', '.join(TWIN_FAMILIES)}"
        )
    return match["family"], int(match["seed"] or 0)


def supported_model_types() -> list[str]:
    """Every ``model_type`` some family covers, sorted."""
    return sorted(t for f in FAMILIES.values() for t in f.model_types)


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
