"""Tiny random twins of real vision-language model architectures, built locally (no download).

A *twin* is a tiny randomly initialised checkpoint of a real VLM family: the family's own
transformers model class, config class, processor class, image processor and tokenizer class,
with every structural feature of the real config kept (mrope sections, spatial merging, window
attention, deepstack, pixel shuffle, image splitting, sliding-window attention, ...) and every
size shrunk (hidden sizes 32-64, two layers, images of 28-64 pixels giving 4-24 image tokens).
Its tokenizer is trained here on the toy world's text, laid out like the real model's (the same
pre-tokenisation, byte fallback, special tokens and BOS/EOS conventions), and its chat template
renders exactly what the real checkpoint's template renders. The project's pipeline can thus
run end to end on CPU against each real family, and a prompt-format or tokenisation mistake
that would only show on the real model shows on its twin.

Families and the public checkpoint whose format each follows:

============  ==========================================  =======================================
family        format of                                   transformers classes
============  ==========================================  =======================================
llava         llava-hf/llava-1.5-7b-hf                    LlavaForConditionalGeneration,
                                                          LlavaProcessor, CLIPImageProcessorPil,
                                                          LlamaTokenizer
llava_next    llava-hf/llava-v1.6-vicuna-7b-hf            LlavaNextForConditionalGeneration,
                                                          LlavaNextProcessor,
                                                          LlavaNextImageProcessorPil,
                                                          LlamaTokenizer
qwen2_5_vl    Qwen/Qwen2.5-VL-7B-Instruct                 Qwen2_5_VLForConditionalGeneration,
                                                          Qwen2_5_VLProcessor,
                                                          Qwen2VLImageProcessorPil,
                                                          Qwen2VLVideoProcessor, Qwen2Tokenizer
qwen3_vl      Qwen/Qwen3-VL-2B-Instruct                   Qwen3VLForConditionalGeneration,
                                                          Qwen3VLProcessor,
                                                          Qwen2VLImageProcessorPil,
                                                          Qwen3VLVideoProcessor, Qwen2Tokenizer
idefics3      HuggingFaceM4/Idefics3-8B-Llama3            Idefics3ForConditionalGeneration,
                                                          Idefics3Processor,
                                                          Idefics3ImageProcessorPil,
                                                          PreTrainedTokenizerFast (Llama 3 BPE)
smolvlm       HuggingFaceTB/SmolVLM-256M-Instruct         SmolVLMForConditionalGeneration,
                                                          SmolVLMProcessor,
                                                          SmolVLMImageProcessorPil,
                                                          SmolVLMVideoProcessor, GPT2Tokenizer
gemma3        google/gemma-3-4b-it                        Gemma3ForConditionalGeneration,
                                                          Gemma3Processor,
                                                          Gemma3ImageProcessorPil, GemmaTokenizer
internvl      OpenGVLab/InternVL3-1B-hf                   InternVLForConditionalGeneration,
                                                          InternVLProcessor,
                                                          GotOcr2ImageProcessorPil,
                                                          InternVLVideoProcessor, Qwen2Tokenizer
============  ==========================================  =======================================

Processors whose family has a video processor (qwen2_5_vl, qwen3_vl, smolvlm, internvl) need
torchvision: transformers' video processors are placeholders without it, and the processor
refuses to be constructed (``VIDEO_PROCESSOR_MAPPING has no attribute _extra_content``). The
SmolVLM processor also needs the ``num2words`` package. :func:`family_requirements` names what
each family needs; the other four families build with transformers, tokenizers and PIL only.

The chat templates are written here, not copied; each renders, for conversations of an optional
system message, user turns of images and text and assistant turns, the same string as the real
checkpoint's template, quirks included: the LLaVA, Idefics3 and SmolVLM templates render nothing
of a message whose ``content`` is a plain string (only lists of parts), exactly as the real ones
do, while the Qwen, Gemma 3 and InternVL templates render plain strings.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

from mmrlaif.families import TWIN_FAMILIES
from mmrlaif.toyworld.twins.idefics_gemma_internvl import (
    _build_gemma3,
    _build_idefics3,
    _build_internvl,
    _build_smolvlm,
)
from mmrlaif.toyworld.twins.llava_qwen import (
    _build_llava,
    _build_llava_next,
    _build_qwen2_5_vl,
    _build_qwen3_vl,
    _Built,
    _ids,
)
from mmrlaif.toyworld.twins.templates import (
    _GEMMA3_TEMPLATE,
    _IDEFICS3_TEMPLATE,
    _INTERNVL_TEMPLATE,
    _LLAVA_TEMPLATE,
    _QWEN2_5_VL_TEMPLATE,
    _QWEN3_VL_TEMPLATE,
    _SMOLVLM_TEMPLATE,
)
from mmrlaif.toyworld.twins.tokenizers import (
    _INTERNVL_SPECIALS,
    _QWEN_SPECIALS,
    _gemma_tokenizer,
    _idefics3_tokenizer,
    _llama_tokenizer,
    _qwen_tokenizer,
    _smolvlm_tokenizer,
    _Trained,
    _trained,
)

__all__ = [
    "TWIN_FAMILIES",
    "TWIN_REFERENCE_CHECKPOINTS",
    "build_twin",
    "family_requirements",
    "save_twin",
]

logger = logging.getLogger(__name__)

#: The real checkpoint whose formats (chat template, tokenizer layout, config structure) each
#: twin follows.
TWIN_REFERENCE_CHECKPOINTS: dict[str, str] = {
    "llava": "llava-hf/llava-1.5-7b-hf",
    "llava_next": "llava-hf/llava-v1.6-vicuna-7b-hf",
    "qwen2_5_vl": "Qwen/Qwen2.5-VL-7B-Instruct",
    "qwen3_vl": "Qwen/Qwen3-VL-2B-Instruct",
    "idefics3": "HuggingFaceM4/Idefics3-8B-Llama3",
    "smolvlm": "HuggingFaceTB/SmolVLM-256M-Instruct",
    "gemma3": "google/gemma-3-4b-it",
    "internvl": "OpenGVLab/InternVL3-1B-hf",
}


@dataclass(frozen=True)
class _Family:
    """How to build one family's twin."""

    chat_template: str
    tokenizer_style: str
    specials: tuple[str, ...]
    bos_for_corpus: str | None
    tokenizer: Callable[[str, _Trained], PreTrainedTokenizerBase]
    build: Callable[[PreTrainedTokenizerBase], _Built]
    needs: tuple[str, ...] = ()


_LLAMA_SPECIALS = ("<unk>", "<s>", "</s>", "<image>", "<pad>")
_IDEFICS_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|im_start|>",
    "<|im_end|>",
    "<fake_token_around_image>",
    "<image>",
    "<video>",
    "<end_of_utterance>",
    "<global-img>",
)
_GEMMA_SPECIALS = (
    "<bos>",
    "<eos>",
    "<pad>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
)

_SPECS: dict[str, _Family] = {
    "llava": _Family(
        _LLAVA_TEMPLATE, "llama_sp", _LLAMA_SPECIALS, None, _llama_tokenizer, _build_llava
    ),
    "llava_next": _Family(
        _LLAVA_TEMPLATE, "llama_sp", _LLAMA_SPECIALS, None, _llama_tokenizer, _build_llava_next
    ),
    "qwen2_5_vl": _Family(
        _QWEN2_5_VL_TEMPLATE,
        "qwen",
        _QWEN_SPECIALS,
        None,
        _qwen_tokenizer,
        _build_qwen2_5_vl,
        needs=("torchvision",),
    ),
    "qwen3_vl": _Family(
        _QWEN3_VL_TEMPLATE,
        "qwen",
        _QWEN_SPECIALS,
        None,
        _qwen_tokenizer,
        _build_qwen3_vl,
        needs=("torchvision",),
    ),
    "idefics3": _Family(
        _IDEFICS3_TEMPLATE,
        "llama3",
        _IDEFICS_SPECIALS,
        None,
        _idefics3_tokenizer,
        _build_idefics3,
    ),
    "smolvlm": _Family(
        _SMOLVLM_TEMPLATE,
        "smollm",
        _IDEFICS_SPECIALS,
        None,
        _smolvlm_tokenizer,
        _build_smolvlm,
        needs=("torchvision", "num2words"),
    ),
    "gemma3": _Family(
        _GEMMA3_TEMPLATE, "gemma_sp", _GEMMA_SPECIALS, "<bos>", _gemma_tokenizer, _build_gemma3
    ),
    "internvl": _Family(
        _INTERNVL_TEMPLATE,
        "qwen",
        (*_QWEN_SPECIALS, *_INTERNVL_SPECIALS),
        None,
        functools.partial(_qwen_tokenizer, extra=_INTERNVL_SPECIALS),  # type: ignore[arg-type]
        _build_internvl,
        needs=("torchvision",),
    ),
}


def _check_family(family: str) -> _Family:
    spec = _SPECS.get(family)
    if spec is None:
        raise ValueError(f"unknown twin family {family!r}; expected one of {TWIN_FAMILIES}")
    return spec


def family_requirements(family: str) -> tuple[str, ...]:
    """The optional packages a family's processor needs beyond transformers and PIL.

    Args:
        family: One of :data:`TWIN_FAMILIES`.

    Returns:
        Import names (``"torchvision"``: the family's processor includes a video processor;
        ``"num2words"``: SmolVLM's processor imports it).

    Raises:
        ValueError: If ``family`` is not a twin family.
    """
    return _check_family(family).needs


def _end_of_turn_ids(family: str, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """The real checkpoint's generation eos/pad/bos, as ids of the twin's tokenizer."""
    if family in ("llava", "llava_next"):
        # llava-hf: bos 1, eos 2 (</s>), pad <pad>.
        return {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    if family in ("qwen2_5_vl", "qwen3_vl"):
        endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
        return {
            "bos_token_id": endoftext,
            "eos_token_id": [im_end, endoftext],
            "pad_token_id": endoftext,
        }
    if family == "internvl":
        endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
        return {"bos_token_id": endoftext, "eos_token_id": im_end, "pad_token_id": endoftext}
    if family == "idefics3":
        bos, end_of_utterance, pad = _ids(
            tokenizer, "<|begin_of_text|>", "<end_of_utterance>", "<|reserved_special_token_0|>"
        )
        return {"bos_token_id": bos, "eos_token_id": end_of_utterance, "pad_token_id": pad}
    if family == "smolvlm":
        bos, end_of_utterance, pad = _ids(
            tokenizer, "<|im_start|>", "<end_of_utterance>", "<|im_end|>"
        )
        return {"bos_token_id": bos, "eos_token_id": end_of_utterance, "pad_token_id": pad}
    if family == "gemma3":
        eos, end_of_turn = _ids(tokenizer, "<eos>", "<end_of_turn>")
        return {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": [eos, end_of_turn],
            "pad_token_id": tokenizer.pad_token_id,
        }
    raise AssertionError(family)  # pragma: no cover


def _is_norm(module: torch.nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, torch.nn.LayerNorm | torch.nn.GroupNorm) or name.endswith("Norm")


def _redraw_weights(model: torch.nn.Module, *, seed: int, std: float) -> None:
    """Draw every parameter from N(0, std^2), except those of normalisation layers.

    The default initialisation (std 0.02, zero biases) makes a tiny model's next-token
    distribution all but independent of its input; drawing everything, biases and embeddings
    included, at a larger scale makes it depend on the text and on the image. LayerNorm and
    RMSNorm weights and biases keep their initial values (ones and zeros, or zeros for Gemma's
    ``1 + weight`` RMSNorm) so that the activations stay normalised. Shared (tied) parameters
    are drawn once.
    """
    generator = torch.Generator().manual_seed(seed)
    norm_params = {
        id(p) for m in model.modules() if _is_norm(m) for p in m.parameters(recurse=False)
    }
    with torch.no_grad():
        for _, param in model.named_parameters():
            if id(param) in norm_params:
                continue
            values = torch.randn(param.shape, generator=generator, dtype=torch.float32) * std
            param.copy_(values.to(param.dtype))


def build_twin(
    family: str, *, seed: int = 0, init_std: float = 0.15
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Build a tiny random twin of a real VLM family.

    Args:
        family: One of :data:`TWIN_FAMILIES`.
        seed: Seeds the weights (two builds with the same seed have identical state dicts).
        init_std: Standard deviation of the normal distribution every non-norm weight is drawn
            from.

    Returns:
        The model (in eval mode, float32) and its processor, whose tokenizer and processor
        carry the family's chat template.

    Raises:
        ValueError: If ``family`` is not a twin family.
        ImportError: If the family's processor needs a package that is missing (see
            :func:`family_requirements`).
    """
    spec = _check_family(family)
    missing = [name for name in spec.needs if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"the {family} twin's processor needs {', '.join(missing)} "
            f"(transformers' {family} processor cannot be built without it)"
        )
    trained = _trained(spec.chat_template, spec.tokenizer_style, spec.specials, spec.bos_for_corpus)
    tokenizer = spec.tokenizer(family, trained)
    tokenizer.chat_template = spec.chat_template
    model_class, config, processor = spec.build(tokenizer)
    with torch.random.fork_rng(devices=[]):
        model = model_class(config)
    _redraw_weights(model, seed=seed, std=init_std)
    for key, value in _end_of_turn_ids(family, tokenizer).items():
        setattr(model.generation_config, key, value)
    model.eval()
    logger.debug(
        "built %s twin: %d parameters, vocabulary %d",
        family,
        sum(p.numel() for p in model.parameters()),
        len(tokenizer),
    )
    return model, processor


def save_twin(family: str, path: str | Path, *, seed: int = 0, init_std: float = 0.15) -> Path:
    """Build a twin and save it as a checkpoint directory.

    ``AutoModelForImageTextToText.from_pretrained(path)`` and ``AutoProcessor.from_pretrained(
    path)`` load it back (offline) with identical outputs and tokenisation.

    Args:
        family: One of :data:`TWIN_FAMILIES`.
        path: Directory to write (created if needed).
        seed: Seeds the weights.
        init_std: Standard deviation of the drawn weights.

    Returns:
        The directory.
    """
    model, processor = build_twin(family, seed=seed, init_std=init_std)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    logger.info("saved %s twin to %s", family, out)
    return out
