"""The model families the project supports, as data: where each keeps its vision encoder,
projector and language model, what its rotary positions need, and the tiny twins built from
them. Read when a config is loaded (``model.family``, ``twin:<family>``), so it imports nothing
heavy; :mod:`mmrlaif.models.families` applies it to loaded models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


#: Families with a tiny random twin (:mod:`mmrlaif.toyworld.twins`): ``model.name_or_path:
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
