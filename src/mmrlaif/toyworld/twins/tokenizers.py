"""The twins' tokenizers: trained here on the toy world, laid out like the real ones."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
from transformers import (
    GemmaTokenizer,
    GPT2Tokenizer,
    LlamaTokenizer,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen2Tokenizer,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from mmrlaif.toyworld.tokenizer import world_corpus

#: Size of every twin's trained vocabulary (before the special tokens).
_VOCAB_SIZE = 1024

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
def _trained(
    chat_template: str, style: str, specials: tuple[str, ...], bos_token: str | None
) -> _Trained:
    """The BPE model of a tokenizer ``style``, trained on the toy world in a chat format."""
    texts = _render_corpus(chat_template, specials, bos_token)
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


def _llama_tokenizer(family: str, trained: _Trained) -> PreTrainedTokenizerBase:
    # llava-hf's Llama 2 / Vicuna tokenizer: <unk>=0 <s>=1 </s>=2, byte fallback, the metaspace
    # prepended to every piece of text (legacy behaviour, so "a" alone is "▁a"), BOS added,
    # <image> then <pad> added after the vocabulary (32000 and 32001 there), left padding.

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


def _qwen_tokenizer(
    family: str, trained: _Trained, extra: Sequence[str] = ()
) -> PreTrainedTokenizerBase:
    # Qwen2's byte-level BPE (its split regex, NFC), no BOS, the special tokens after the
    # vocabulary in Qwen's order; eos <|im_end|>, pad <|endoftext|> (Qwen2.5-VL / Qwen3-VL /
    # InternVL3 tokenizer_config).

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


def _idefics3_tokenizer(family: str, trained: _Trained) -> PreTrainedTokenizerBase:
    # Llama 3's byte-level BPE (tokenizer.json loaded as is by PreTrainedTokenizerFast): BOS
    # <|begin_of_text|> added, then Idefics3's image tokens and <end_of_utterance>.

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


def _smolvlm_tokenizer(family: str, trained: _Trained) -> PreTrainedTokenizerBase:
    # SmolLM2's GPT-2 style byte-level BPE: <|endoftext|>=0 <|im_start|>=1 <|im_end|>=2, no BOS
    # added; SmolVLM's image tokens after the vocabulary (<global-img>, the row/col tags,
    # <fake_token_around_image>, <image>, <end_of_utterance>, in the real order).

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


def _gemma_tokenizer(family: str, trained: _Trained) -> PreTrainedTokenizerBase:
    # Gemma 3: <pad>=0 <eos>=1 <bos>=2 <unk>=3 <mask>=4, SentencePiece-style BPE with byte
    # fallback, BOS added; the image markers after the vocabulary, <image_soft_token> last.

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
