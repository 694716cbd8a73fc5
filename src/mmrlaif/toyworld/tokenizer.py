"""A byte-level BPE tokenizer trained on the toy world's own text (no hub download)."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from mmrlaif.models.chat import (
    ANSWER_SUFFIX,
    BOS_TOKEN,
    CHAT_TEMPLATE,
    EOS_TOKEN,
    IMAGE_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    UNK_TOKEN,
)
from mmrlaif.toyworld.annotate import (
    CAPTION_TEMPLATES,
    DESCRIBE_INSTRUCTIONS,
    QUESTION_TEMPLATE,
)
from mmrlaif.toyworld.vocab import OBJECTS


def _exchange(question: str, answer: str) -> str:
    """One exchange as :data:`CHAT_TEMPLATE` renders it (LLaVA-1.5's format)."""
    return f"USER: {IMAGE_TOKEN}\n{question} ASSISTANT: {answer}{EOS_TOKEN}"


def world_corpus() -> list[str]:
    """Every phrase the toy world can say, in the chat format the model sees."""
    names = [n for o in OBJECTS for n in (o.name, *o.synonyms)]
    lines = []
    for q in DESCRIBE_INSTRUCTIONS:
        for template in CAPTION_TEMPLATES:
            for a in names:
                for b in names:
                    caption = template.format(f"a {a}, a {b} and a {a}")
                    lines.append(_exchange(q, caption))
    for n in names:
        for answer in ("Yes", "No", "yes", "no"):
            question = QUESTION_TEMPLATE.format(n) + ANSWER_SUFFIX
            lines.append(_exchange(question, answer))
    return lines


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer and wrap it for transformers.

    Args:
        corpus: Training text.
        vocab_size: Upper bound on the vocabulary (training stops when merges run out).

    Returns:
        A fast tokenizer with ``<pad> <unk> <s> </s> <image>`` and the project's chat template.
    """
    tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
