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
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from transformers import PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

from mmrlaif.models.families import TWIN_FAMILIES

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

# Normalisation constants of the real image processors.
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_HALF = (0.5, 0.5, 0.5)

# Upper bound on each trained vocabulary (training stops earlier when merges run out).
_VOCAB_SIZE = 1024

# ---------------------------------------------------------------------------------------------
# Chat templates. Written for this module; each renders what the named checkpoint's own
# template renders (checked against the published templates, see the tests).
# ---------------------------------------------------------------------------------------------

# llava-hf/llava-1.5-7b-hf and llava-hf/llava-v1.6-vicuna-7b-hf (chat_template.json): every
# non-system message opens with its upper-cased role and ": ", then all of its images as
# "<image>\n", then each text part followed by one space; a system message is its text parts
# alone. Assistant text sits in a generation block, as in the real template, so that
# ``return_assistant_tokens_mask`` works. Only list contents are rendered: a plain-string content
# renders nothing, as with the real template (it filters the parts by their "type").
_LLAVA_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] != 'system' -%}{{ message['role'] | upper }}{{ ': ' }}{%- endif -%}"
    "{%- if message['content'] is not string -%}"
    "{%- for part in message['content'] if part['type'] == 'image' -%}{{ '<image>\\n' }}"
    "{%- endfor -%}"
    "{%- for part in message['content'] if part['type'] == 'text' -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ part['text'] + ' ' }}{% endgeneration %}"
    "{%- else -%}{{ part['text'] + ' ' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)

# Parts of the Qwen templates: an image part is any part typed "image" or carrying an "image"
# or "image_url" key; ``add_vision_id`` numbers the pictures and videos.
_QWEN_PARTS = (
    "{%- for part in parts -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{%- set counts.images = counts.images + 1 -%}"
    "{%- if add_vision_id -%}{{ 'Picture ' ~ counts.images ~ ': ' }}{%- endif -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{%- set counts.videos = counts.videos + 1 -%}"
    "{%- if add_vision_id -%}{{ 'Video ' ~ counts.videos ~ ': ' }}{%- endif -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

# Qwen/Qwen2.5-VL-7B-Instruct (the Qwen2-VL template): ChatML, with the default system prompt
# "You are a helpful assistant." when the conversation does not start with a system message.
_QWEN2_5_VL_TEMPLATE = (
    "{%- set counts = namespace(images=0, videos=0) -%}"
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- set parts = message['content'] -%}" + _QWEN_PARTS + "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# Qwen/Qwen3-VL-2B-Instruct: ChatML without a default system prompt; a leading system message
# renders its text parts; user turns render images and videos, assistant turns their text
# parts only. Other system messages (and tool turns, which the twin does not support) render
# nothing.
_QWEN3_VL_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ '<|im_start|>system\\n' }}"
    "{%- if messages[0]['content'] is string -%}{{ messages[0]['content'] }}"
    "{%- else -%}{%- for part in messages[0]['content'] if 'text' in part -%}{{ part['text'] }}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- set counts = namespace(images=0, videos=0) -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ '<|im_start|>user\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- set parts = message['content'] -%}" + _QWEN_PARTS + "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] if 'text' in part -%}{{ part['text'] }}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def _idefics_template(prefix: str) -> str:
    """The Idefics3/SmolVLM format: ``{prefix}User:<image>q<end_of_utterance>\\nAssistant:``.

    Each message is its capitalised role, ``:`` when its first part is an image and ``: ``
    otherwise, its parts (text as is, an image as ``<image>``, a video as ``<video>``) and
    ``<end_of_utterance>\\n``. A plain-string content renders as ``Role: <end_of_utterance>\\n``
    (the real template iterates the string's characters and finds no typed parts).
    """
    return (
        "{{ '" + prefix + "' }}"
        "{%- for message in messages -%}"
        "{{ message['role'] | capitalize }}"
        "{%- if message['content'] is string -%}{{ ': ' }}"
        "{%- else -%}"
        "{%- if message['content'][0]['type'] == 'image' -%}{{ ':' }}{%- else -%}{{ ': ' }}"
        "{%- endif -%}"
        "{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
        "{%- elif part['type'] == 'image' -%}{{ '<image>' }}"
        "{%- elif part['type'] == 'video' -%}{{ '<video>' }}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- endif -%}"
        "{{ '<end_of_utterance>\\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
    )


# HuggingFaceM4/Idefics3-8B-Llama3 (its prompt opens with Llama 3's <|begin_of_text|>; the
# real template has no video parts, which the twin's never sees) and
# HuggingFaceTB/SmolVLM-256M-Instruct (opens with <|im_start|>).
_IDEFICS3_TEMPLATE = _idefics_template("<|begin_of_text|>")
_SMOLVLM_TEMPLATE = _idefics_template("<|im_start|>")

# google/gemma-3-4b-it: BOS, then <start_of_turn>{user|model}\n ... <end_of_turn>\n turns that
# must alternate user/model; a leading system message's text (its first part's, for a list)
# plus a blank line prefixes the first turn; texts are stripped, images are <start_of_image>.
_GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- else -%}{%- set first_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}"
    "{%- endif -%}"
    "{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set first_prefix = '' -%}{%- set turns = messages -%}"
    "{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 is even) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{{ '<start_of_turn>' }}{{ 'model' if message['role'] == 'assistant' else message['role'] }}"
    "{{ '\\n' }}{%- if loop.first -%}{{ first_prefix }}{%- endif -%}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] | trim }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- else -%}{{ raise_exception('Invalid content type') }}"
    "{%- endif -%}"
    "{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

# OpenGVLab/InternVL3-1B-hf: ChatML without a default system prompt; an image part is
# "<IMG_CONTEXT>\n" (the processor expands it to <img><IMG_CONTEXT>...</img>), a video "<video>\n".
_INTERNVL_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<IMG_CONTEXT>\\n' }}"
    "{%- elif part['type'] == 'video' -%}{{ '<video>\\n' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------

_BYTE_TOKENS = tuple(f"<0x{i:02X}>" for i in range(256))

# Qwen2's special tokens, in the real vocabulary's order (151643..151656 there).
_QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# What InternVL's conversion adds after Qwen2.5's vocabulary, then the video placeholder.
_INTERNVL_SPECIALS = (
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
    "<video>",
)
# Idefics3's and SmolVLM's image-splitting tags (the processor looks up all 6 x 6).
_ROW_COL_TOKENS = tuple(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7))
# Llama 3's pre-tokenisation pattern (Idefics3's text model is Llama 3).
_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_WORLD_LINE = re.compile(r"^USER: <image>\n(?P<question>.*) ASSISTANT: (?P<answer>.*)</s>$", re.S)


@functools.lru_cache(maxsize=1)
def _world_pairs() -> tuple[tuple[str, str], ...]:
    """(question, answer) pairs of the toy world, parsed from its training corpus."""
    from mmrlaif.models.tokenizer import world_corpus

    pairs: dict[tuple[str, str], None] = {}
    for line in world_corpus():
        match = _WORLD_LINE.match(line)
        if match is None:  # pragma: no cover - the corpus's own format
            raise ValueError(f"unexpected world corpus line: {line!r}")
        pairs[(match["question"], match["answer"])] = None
    return tuple(pairs)


def _conversation(question: str, answer: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]


def _render_corpus(template: str, specials: Sequence[str], bos_token: str | None) -> list[str]:
    """The toy world's conversations in a family's chat format, special tokens removed.

    Removing the special tokens keeps them out of the BPE statistics: they are added to the
    vocabulary as whole tokens afterwards.
    """
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env.globals["raise_exception"] = raise_exception
    source = template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    compiled = env.from_string(source)
    pattern = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))
    texts = []
    for question, answer in _world_pairs():
        text = compiled.render(
            messages=_conversation(question, answer),
            add_generation_prompt=False,
            bos_token=bos_token or "",
        )
        texts.append(pattern.sub("", text))
    return texts


@dataclass(frozen=True)
class _Trained:
    """A trained BPE model: its vocabulary (token -> id) and merges, in training order."""

    vocab: tuple[tuple[str, int], ...]
    merges: tuple[tuple[str, str], ...]

    def vocab_dict(self, extra: Sequence[str] = ()) -> dict[str, int]:
        """The vocabulary with ``extra`` tokens appended (ids after the trained ones)."""
        vocab = dict(self.vocab)
        for token in extra:
            if token not in vocab:
                vocab[token] = len(vocab)
        return vocab


def _train_bpe(
    texts: Sequence[str],
    *,
    normalizer: normalizers.Normalizer | None,
    pre_tokenizer: pre_tokenizers.PreTokenizer,
    leading: Sequence[str],
    initial_alphabet: Sequence[str] = (),
    byte_fallback: bool = False,
) -> _Trained:
    """Train a BPE model with the given normalisation and pre-tokenisation.

    Args:
        texts: Training text.
        normalizer: The normaliser the final tokenizer applies (or None).
        pre_tokenizer: How training splits text into words (merges never cross them).
        leading: Tokens given the first ids, in order (special tokens, byte-fallback pieces).
        initial_alphabet: Characters in the vocabulary whether or not the text has them.
        byte_fallback: Whether the model falls back to ``<0xNN>`` pieces.

    Returns:
        The vocabulary and merges.
    """
    tokenizer = Tokenizer(models.BPE(byte_fallback=byte_fallback))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=list(leading),
        initial_alphabet=list(initial_alphabet),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = tuple(
        tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1]) for m in model["merges"]
    )
    vocab = tuple(sorted(model["vocab"].items(), key=lambda item: item[1]))
    return _Trained(vocab=vocab, merges=merges)  # type: ignore[arg-type]


def _qwen_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def _llama3_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )


@functools.cache
def _trained(family: str) -> _Trained:
    """The BPE model of a family's tokenizer, trained on the toy world in its chat format."""
    spec = _SPECS[family]
    texts = _render_corpus(spec.chat_template, spec.specials, spec.bos_for_corpus)
    style = spec.tokenizer_style
    if style == "llama_sp":
        # Llama 2: <unk> <s> </s>, the 256 byte pieces, then SentencePiece-style pieces that
        # start with the metaspace.
        return _train_bpe(
            texts,
            normalizer=None,
            pre_tokenizer=pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
            leading=("<unk>", "<s>", "</s>", *_BYTE_TOKENS),
            byte_fallback=True,
        )
    if style == "gemma_sp":
        # Gemma: <pad> <eos> <bos> <unk> <mask>, the turn markers, the byte pieces; spaces are
        # normalised to the metaspace and no prefix is added. Runs of newlines are pieces of
        # their own (user-defined symbols of Gemma's SentencePiece model): no piece joins a
        # newline to text, so "model\n" + "There" tokenises as "model\n" and then "There".
        return _train_bpe(
            texts,
            normalizer=normalizers.Replace(" ", "▁"),
            pre_tokenizer=pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Split(Regex("\n+"), behavior="isolated"),
                    pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never"),
                ]
            ),
            leading=(
                "<pad>",
                "<eos>",
                "<bos>",
                "<unk>",
                "<mask>",
                "<start_of_turn>",
                "<end_of_turn>",
                *_BYTE_TOKENS,
            ),
            byte_fallback=True,
        )
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if style == "qwen":
        return _train_bpe(
            texts,
            normalizer=normalizers.NFC(),
            pre_tokenizer=_qwen_pre_tokenizer(),
            leading=(),
            initial_alphabet=alphabet,
        )
    if style == "llama3":
        return _train_bpe(
            texts,
            normalizer=None,
            pre_tokenizer=_llama3_pre_tokenizer(),
            leading=(),
            initial_alphabet=alphabet,
        )
    if style == "smollm":
        # SmolLM2: its first special tokens at ids 0-2, then GPT-2 style byte-level BPE.
        return _train_bpe(
            texts,
            normalizer=None,
            pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False),
            leading=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            initial_alphabet=alphabet,
        )
    raise AssertionError(style)  # pragma: no cover


def _special(tokens: Sequence[str]) -> list[AddedToken]:
    return [AddedToken(t, special=True, normalized=False) for t in tokens]


def _llama_tokenizer(family: str) -> PreTrainedTokenizerBase:
    # llava-hf's Llama 2 / Vicuna tokenizer: <unk>=0 <s>=1 </s>=2, byte fallback, the metaspace
    # prepended to every piece of text (legacy behaviour, so "a" alone is "▁a"), BOS added,
    # <image> then <pad> added after the vocabulary (32000 and 32001 there), left padding.
    from transformers import LlamaTokenizer

    trained = _trained(family)
    tokenizer = LlamaTokenizer(
        vocab=trained.vocab_dict(),
        merges=list(trained.merges),
        legacy=True,
        add_bos_token=True,
        add_eos_token=False,
        pad_token="<pad>",
        padding_side="left",
        extra_special_tokens={"image_token": "<image>"},
    )
    tokenizer.add_tokens(_special(["<image>", "<pad>"]), special_tokens=True)
    return tokenizer


def _qwen_tokenizer(family: str, extra: Sequence[str] = ()) -> PreTrainedTokenizerBase:
    # Qwen2's byte-level BPE (its split regex, NFC), no BOS, the special tokens after the
    # vocabulary in Qwen's order; eos <|im_end|>, pad <|endoftext|> (Qwen2.5-VL / Qwen3-VL /
    # InternVL3 tokenizer_config).
    from transformers import Qwen2Tokenizer

    trained = _trained(family)
    kwargs: dict[str, Any] = {}
    if family == "internvl":
        kwargs["extra_special_tokens"] = {
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        }
    tokenizer = Qwen2Tokenizer(
        vocab=trained.vocab_dict([*_QWEN_SPECIALS, *extra]),
        merges=list(trained.merges),
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        **kwargs,
    )
    tokenizer.add_tokens(_special([*_QWEN_SPECIALS, *extra]), special_tokens=True)
    return tokenizer


def _idefics3_tokenizer(family: str) -> PreTrainedTokenizerBase:
    # Llama 3's byte-level BPE (tokenizer.json loaded as is by PreTrainedTokenizerFast): BOS
    # <|begin_of_text|> added, then Idefics3's image tokens and <end_of_utterance>.
    from transformers import PreTrainedTokenizerFast

    trained = _trained(family)
    specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|reserved_special_token_0|>",
        "<fake_token_around_image>",
        "<image>",
        "<end_of_utterance>",
        "<global-img>",
        *_ROW_COL_TOKENS,
    ]
    backend = Tokenizer(
        models.BPE(
            vocab=trained.vocab_dict(specials),
            merges=list(trained.merges),
            ignore_merges=True,
        )
    )
    backend.pre_tokenizer = _llama3_pre_tokenizer()
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(_special(specials))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<end_of_utterance>",
        pad_token="<|reserved_special_token_0|>",
        add_bos_token=True,
        extra_special_tokens={
            "fake_image_token": "<fake_token_around_image>",
            "image_token": "<image>",
            "end_of_utterance_token": "<end_of_utterance>",
            "global_image_token": "<global-img>",
        },
    )


def _smolvlm_tokenizer(family: str) -> PreTrainedTokenizerBase:
    # SmolLM2's GPT-2 style byte-level BPE: <|endoftext|>=0 <|im_start|>=1 <|im_end|>=2, no BOS
    # added; SmolVLM's image tokens after the vocabulary (<global-img>, the row/col tags,
    # <fake_token_around_image>, <image>, <end_of_utterance>, in the real order).
    from transformers import GPT2Tokenizer

    trained = _trained(family)
    added = [
        "<global-img>",
        *_ROW_COL_TOKENS,
        "<fake_token_around_image>",
        "<image>",
        "<end_of_utterance>",
    ]
    tokenizer = GPT2Tokenizer(
        vocab=trained.vocab_dict(added),
        merges=list(trained.merges),
        unk_token="<|endoftext|>",
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        add_prefix_space=False,
        extra_special_tokens={
            "fake_image_token": "<fake_token_around_image>",
            "image_token": "<image>",
            "end_of_utterance_token": "<end_of_utterance>",
            "global_image_token": "<global-img>",
        },
    )
    tokenizer.add_tokens(_special(["<|endoftext|>", "<|im_start|>", "<|im_end|>", *added]), True)
    return tokenizer


def _gemma_tokenizer(family: str) -> PreTrainedTokenizerBase:
    # Gemma 3: <pad>=0 <eos>=1 <bos>=2 <unk>=3 <mask>=4, SentencePiece-style BPE with byte
    # fallback, BOS added; the image markers after the vocabulary, <image_soft_token> last.
    from transformers import GemmaTokenizer

    trained = _trained(family)
    image_tokens = ["<start_of_image>", "<end_of_image>", "<image_soft_token>"]
    tokenizer = GemmaTokenizer(
        vocab=trained.vocab_dict(image_tokens),
        merges=list(trained.merges),
        add_bos_token=True,
        add_eos_token=False,
        padding_side="left",
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )
    tokenizer.add_tokens(_special(["<start_of_turn>", "<end_of_turn>", *image_tokens]), True)
    return tokenizer


# ---------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------

#: What a family builder returns: the model class, its config and the processor.
_Built = tuple[type[PreTrainedModel], Any, ProcessorMixin]


@dataclass(frozen=True)
class _Family:
    """How to build one family's twin."""

    chat_template: str
    tokenizer_style: str
    specials: tuple[str, ...]
    bos_for_corpus: str | None
    tokenizer: Callable[[str], PreTrainedTokenizerBase]
    build: Callable[[PreTrainedTokenizerBase], _Built]
    needs: tuple[str, ...] = ()


def _ids(tokenizer: PreTrainedTokenizerBase, *tokens: str) -> list[int]:
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise AssertionError(f"tokens missing from the twin's vocabulary: {tokens}")
    return ids


def _llama_text(tokenizer: PreTrainedTokenizerBase, **overrides: Any) -> dict[str, Any]:
    """A two-layer Llama text config (Vicuna-7B's structure: MHA, silu, RMSNorm 1e-5)."""
    config: dict[str, Any] = {
        "model_type": "llama",
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    config.update(overrides)
    return config


def _clip_vision(image_size: int) -> Any:
    from transformers import CLIPVisionConfig

    # CLIP ViT-L/14-336's structure: patch 14, quick_gelu, pre-layernorm; two layers so that
    # vision_feature_layer=-2 (the penultimate layer, as LLaVA uses) is a real layer.
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=14,
        projection_dim=32,
        hidden_act="quick_gelu",
    )


def _build_llava(tokenizer: PreTrainedTokenizerBase) -> _Built:
    from transformers import (
        CLIPImageProcessorPil,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    image_size = 56  # 4 x 4 patches of 14: 16 image tokens (336 -> 576 in the real model)
    text = _llama_text(tokenizer)
    text.pop("model_type")
    config = LlavaConfig(
        vision_config=_clip_vision(image_size),
        text_config=LlamaConfig(**text),
        image_token_index=_ids(tokenizer, "<image>")[0],
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=(image_size // 14) ** 2,
        multimodal_projector_bias=True,
        tie_word_embeddings=False,
    )
    config.pad_token_id = tokenizer.pad_token_id
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
            image_mean=list(_CLIP_MEAN),
            image_std=list(_CLIP_STD),
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=_LLAVA_TEMPLATE,
    )
    return LlavaForConditionalGeneration, config, processor


def _build_llava_next(tokenizer: PreTrainedTokenizerBase) -> _Built:
    from transformers import (
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    # llava-v1.6's AnyRes: a 336 px base tile plus a grid from the pinpoints. Here the tile is
    # 28 px (2 x 2 patches of 14) and the pinpoints are the real ones scaled by 28/336, so a
    # 64 x 64 image is a 2 x 2 grid of tiles plus the base tile: 4 + 16 + 4 newline = 24 tokens.
    tile = 28
    pinpoints = [[tile, 2 * tile], [2 * tile, tile], [2 * tile, 2 * tile], [3 * tile, tile]]
    pinpoints.append([tile, 3 * tile])
    text = _llama_text(tokenizer)
    text.pop("model_type")
    config = LlavaNextConfig(
        vision_config=_clip_vision(tile),
        text_config=LlamaConfig(**text),
        image_token_index=_ids(tokenizer, "<image>")[0],
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_grid_pinpoints=pinpoints,
        image_seq_length=(tile // 14) ** 2,
        tie_word_embeddings=False,
    )
    config.pad_token_id = tokenizer.pad_token_id
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessorPil(
            size={"shortest_edge": tile},
            crop_size={"height": tile, "width": tile},
            image_grid_pinpoints=pinpoints,
            image_mean=list(_CLIP_MEAN),
            image_std=list(_CLIP_STD),
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=_LLAVA_TEMPLATE,
    )
    return LlavaNextForConditionalGeneration, config, processor


def _qwen_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    image, video, start, end = _ids(
        tokenizer, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"
    )
    return {
        "image_token_id": image,
        "video_token_id": video,
        "vision_start_token_id": start,
        "vision_end_token_id": end,
    }


def _build_qwen2_5_vl(tokenizer: PreTrainedTokenizerBase) -> _Built:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessorPil,
        Qwen2VLVideoProcessor,
    )

    endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
    # Qwen2.5-VL-7B's structure: GQA, mrope (sections [16, 24, 24] of head_dim 128 -> [2, 3, 3]
    # of 16), a windowed ViT with full attention in its last block, patch 14, 2 x 2 merging,
    # temporal patches of 2. The window (56 px = 2 x 2 merged tokens) is smaller than an image
    # (112 px after resizing), so window attention really splits it.
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": [2, 3, 3],
            },
            "bos_token_id": endoftext,
            "eos_token_id": im_end,
            "pad_token_id": endoftext,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
            "out_hidden_size": 64,
            "tokens_per_second": 2,
        },
        tie_word_embeddings=False,
        **_qwen_ids(tokenizer),
    )
    # Images are resized to about 112 x 112 pixels (8 x 8 patches): 16 image tokens.
    pixels = {"shortest_edge": 112 * 112, "longest_edge": 112 * 112}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(
            size=pixels, patch_size=14, temporal_patch_size=2, merge_size=2
        ),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(
            size=pixels, patch_size=14, temporal_patch_size=2, merge_size=2
        ),
        chat_template=_QWEN2_5_VL_TEMPLATE,
    )
    return Qwen2_5_VLForConditionalGeneration, config, processor


def _build_qwen3_vl(tokenizer: PreTrainedTokenizerBase) -> _Built:
    from transformers import (
        Qwen2VLImageProcessorPil,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
    # Qwen3-VL-2B's structure: GQA with explicit head_dim, interleaved mrope (sections
    # [24, 20, 20] of head_dim 128 -> [4, 2, 2] of 16), tied embeddings; a ViT with learned,
    # interpolated position embeddings (an 8 x 8 table), patch 16, 2 x 2 merging and a deepstack
    # merger feeding its first block's features into the first text layer.
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
            "bos_token_id": endoftext,
            "eos_token_id": im_end,
            "pad_token_id": endoftext,
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 64,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0],
        },
        tie_word_embeddings=True,
        **_qwen_ids(tokenizer),
    )
    # Images are resized to about 128 x 128 pixels (8 x 8 patches of 16): 16 image tokens.
    pixels = {"shortest_edge": 128 * 128, "longest_edge": 128 * 128}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(
            size=pixels,
            patch_size=16,
            temporal_patch_size=2,
            merge_size=2,
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(
            size=pixels,
            patch_size=16,
            temporal_patch_size=2,
            merge_size=2,
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        chat_template=_QWEN3_VL_TEMPLATE,
    )
    return Qwen3VLForConditionalGeneration, config, processor


def _build_idefics3(tokenizer: PreTrainedTokenizerBase) -> _Built:
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    # Idefics3-8B's structure: a SigLIP-style encoder on tiles (364 px, patch 14 -> 56 px here),
    # pixel shuffle with scale factor 2 (4 x 4 patches -> 4 tokens a tile), a Llama 3 text
    # model; images are resized to a longest edge of 2 tiles and split into a 2 x 2 grid plus a
    # global tile: 5 x 4 = 20 image tokens for a square image.
    tile, patch, scale = 56, 14, 2
    image_seq_len = (tile // patch) ** 2 // scale**2
    end_of_utterance = _ids(tokenizer, "<end_of_utterance>")[0]
    config = Idefics3Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": tile,
            "patch_size": patch,
        },
        text_config=_llama_text(
            tokenizer,
            num_key_value_heads=2,
            rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
            eos_token_id=end_of_utterance,
        ),
        scale_factor=scale,
        image_token_id=_ids(tokenizer, "<image>")[0],
        tie_word_embeddings=False,
    )
    config.pad_token_id = tokenizer.pad_token_id
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(
            size={"longest_edge": 2 * tile},
            max_image_size={"longest_edge": tile},
            do_image_splitting=True,
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=_IDEFICS3_TEMPLATE,
    )
    return Idefics3ForConditionalGeneration, config, processor


def _build_smolvlm(tokenizer: PreTrainedTokenizerBase) -> _Built:
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessorPil,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    # SmolVLM-256M's structure: a SigLIP-style encoder on tiles (512 px, patch 16 -> 64 px,
    # patch 8 here), pixel shuffle with scale factor 4 (8 x 8 patches -> 4 tokens a tile), a
    # SmolLM2 (Llama) text model with GQA; images are resized to a longest edge of 2 tiles and
    # split into a 2 x 2 grid plus a global tile: 5 x 4 = 20 image tokens.
    tile, patch, scale = 64, 8, 4
    image_seq_len = (tile // patch) ** 2 // scale**2
    config = SmolVLMConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": tile,
            "patch_size": patch,
        },
        text_config=_llama_text(
            tokenizer,
            num_key_value_heads=2,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
        ),
        scale_factor=scale,
        image_token_id=_ids(tokenizer, "<image>")[0],
        tie_word_embeddings=False,
    )
    config.pad_token_id = tokenizer.pad_token_id
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessorPil(
            size={"longest_edge": 2 * tile},
            max_image_size={"longest_edge": tile},
            do_image_splitting=True,
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(
            size={"longest_edge": 2 * tile},
            max_image_size={"longest_edge": tile},
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        image_seq_len=image_seq_len,
        chat_template=_SMOLVLM_TEMPLATE,
    )
    return SmolVLMForConditionalGeneration, config, processor


def _build_gemma3(tokenizer: PreTrainedTokenizerBase) -> _Built:
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
        SiglipVisionConfig,
    )

    # Gemma 3 4B's structure: a SigLIP encoder (896 px, patch 14 -> 64 px, patch 8 here) whose
    # 8 x 8 patches are average-pooled to mm_tokens_per_image = 16 soft tokens (256 real);
    # a text model with GQA, explicit head_dim, query_pre_attn_scalar, QK-norm, alternating
    # sliding-window (local rope 10k) and full attention (rope 1M with linear scaling 8),
    # tied embeddings scaled by sqrt(hidden).
    image_size, patch, mm_tokens = 64, 8, 16
    boi, eoi, soft = _ids(tokenizer, "<start_of_image>", "<end_of_image>", "<image_soft_token>")
    config = Gemma3Config(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "sliding_window": 32,
            "layer_types": ["sliding_attention", "full_attention"],
            "rope_parameters": {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {
                    "rope_type": "linear",
                    "factor": 8.0,
                    "rope_theta": 1000000.0,
                },
            },
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config=SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch,
            vision_use_head=False,
        ),
        mm_tokens_per_image=mm_tokens,
        boi_token_index=boi,
        eoi_token_index=eoi,
        image_token_index=soft,
        tie_word_embeddings=True,
    )
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(
            size={"height": image_size, "width": image_size},
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        tokenizer=tokenizer,
        image_seq_length=mm_tokens,
        chat_template=_GEMMA3_TEMPLATE,
    )
    return Gemma3ForConditionalGeneration, config, processor


def _build_internvl(tokenizer: PreTrainedTokenizerBase) -> _Built:
    from transformers import (
        GotOcr2ImageProcessorPil,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    # InternVL3-1B's structure: an InternViT (448 px, patch 14 -> 64 px, patch 8 here) with
    # layer scale and absolute position embeddings, pixel shuffle with downsample ratio 0.5
    # (8 x 8 patches -> 16 tokens a tile), an MLP projector, a Qwen2 text model with GQA and
    # tied embeddings.
    image_size, patch = 64, 8
    image_seq_length = (image_size // patch) ** 2 // 4
    endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
    config = InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": [image_size, image_size],
            "patch_size": [patch, patch],
            "use_absolute_position_embeddings": True,
            "layer_scale_init_value": 0.1,
            "norm_type": "layer_norm",
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "bos_token_id": endoftext,
            "eos_token_id": im_end,
            "pad_token_id": endoftext,
            "tie_word_embeddings": True,
        },
        image_token_id=_ids(tokenizer, "<IMG_CONTEXT>")[0],
        image_seq_length=image_seq_length,
        downsample_ratio=0.5,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=True,
    )
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessorPil(
            size={"height": image_size, "width": image_size},
            image_mean=list(_IMAGENET_MEAN),
            image_std=list(_IMAGENET_STD),
        ),
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(
            size={"height": image_size, "width": image_size},
            image_mean=list(_IMAGENET_MEAN),
            image_std=list(_IMAGENET_STD),
        ),
        image_seq_length=image_seq_length,
        chat_template=_INTERNVL_TEMPLATE,
    )
    return InternVLForConditionalGeneration, config, processor


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
    tokenizer = spec.tokenizer(family)
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
