"""Batched generation from a VLM: greedy, or sampled with an explicit seed."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.models.chat import ChatFormat

logger = logging.getLogger(__name__)


@torch.no_grad()
def generate_answers(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    images: Sequence[Image.Image],
    questions: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 32,
    progress_every: int = 0,
) -> list[str]:
    """Answer each (image, question) greedily, in batches with left padding.

    Args:
        model: The VLM.
        processor: Its processor (tokenizer padding side is forced to left here).
        images: One image per question.
        questions: Question texts, without the chat framing.
        max_new_tokens: Generation budget.
        batch_size: Prompts per ``generate`` call.
        progress_every: Log progress every this many batches (0 = never).

    Returns:
        Decoded answers with special tokens removed and whitespace stripped.
    """
    if len(images) != len(questions):
        raise ValueError(f"{len(images)} images but {len(questions)} questions")
    tok = processor.tokenizer
    chat = ChatFormat(processor)
    answers: list[str] = []
    n_batches = (len(questions) + batch_size - 1) // batch_size
    for b, start in enumerate(range(0, len(questions), batch_size)):
        batch_q = questions[start : start + batch_size]
        enc = chat.encode_prompts(batch_q, images[start : start + batch_size]).to(model.device)
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            top_k=None,
            top_p=None,
            temperature=None,
            pad_token_id=tok.pad_token_id,
            eos_token_id=chat.stop_token_ids,
        )
        new = out[:, enc["input_ids"].shape[1] :]
        answers.extend(chat.decode(row) for row in new)
        if progress_every and (b + 1) % progress_every == 0:
            logger.info("generated %d/%d batches", b + 1, n_batches)
    return answers
