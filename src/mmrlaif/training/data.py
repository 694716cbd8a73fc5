"""Turning (image, question, answer) rows into model inputs, identically for every trainer."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import ProcessorMixin

from mmrlaif.io import cell_to_image
from mmrlaif.models.chat import IMAGE_TOKEN, format_completion, format_prompt

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One supervised example: an image, the prompt text and the completion text."""

    example_id: str
    image: Image.Image
    prompt: str
    completion: str


def examples_from_rows(
    rows: Sequence[Mapping[str, Any]], id_column: str = "example_id"
) -> tuple[list[Example], Counter[str]]:
    """Validate rows and build examples.

    Rows with an empty answer are skipped and counted under ``empty_answer``; a missing or
    corrupt image is an error naming the row, since it means the table itself is damaged.

    Returns:
        The examples and the skip counts by reason.

    Raises:
        ImageError: Naming the row whose image is missing or undecodable.
        KeyError: Naming a required column that is absent.
    """
    skips: Counter[str] = Counter()
    examples = []
    for row in rows:
        for column in (id_column, "image", "question", "answer"):
            if column not in row:
                raise KeyError(f"row {row.get(id_column, '?')}: missing column {column!r}")
        item = str(row[id_column])
        answer = (row["answer"] or "").strip()
        if not answer:
            skips["empty_answer"] += 1
            logger.warning("skipping %s: empty answer", item)
            continue
        image = cell_to_image(row["image"], item)
        examples.append(
            Example(item, image, format_prompt(row["question"]), format_completion(answer))
        )
    return examples, skips


class SupervisedCollator:
    """Batch examples for causal-LM training with the loss on completion tokens only.

    Right padding; labels are ``-100`` on the prompt (image tokens included) and on padding.
    Checks that the prompt tokenises to a prefix of prompt + completion, so training sees the
    same tokens as generation does.
    """

    def __init__(self, processor: ProcessorMixin, max_length: int) -> None:
        self.processor = processor
        self.max_length = max_length

    def __call__(self, batch: Sequence[Example]) -> dict[str, torch.Tensor]:
        tok = self.processor.tokenizer
        full = self.processor(
            text=[e.prompt + e.completion for e in batch],
            images=[e.image for e in batch],
            return_tensors="pt",
            padding=True,
            padding_side="right",
        )
        # The prompt's tokens, with the image slot expanded as the processor expanded it; the
        # tokenizer alone is enough (the images were already processed once above).
        image_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
        n_image = (full["input_ids"] == image_id).sum(dim=1).tolist()
        prompt_ids = tok(
            [
                e.prompt.replace(IMAGE_TOKEN, IMAGE_TOKEN * n)
                for e, n in zip(batch, n_image, strict=True)
            ]
        )["input_ids"]
        labels = full["input_ids"].clone()
        labels[full["attention_mask"] == 0] = IGNORE_INDEX
        for i, e in enumerate(batch):
            n_prompt = len(prompt_ids[i])
            n_full = int(full["attention_mask"][i].sum())
            if n_full > self.max_length:
                raise ValueError(
                    f"{e.example_id}: {n_full} tokens exceed max_length {self.max_length}"
                )
            if full["input_ids"][i, :n_prompt].tolist() != prompt_ids[i]:
                raise ValueError(
                    f"{e.example_id}: prompt does not tokenise to a prefix of the text"
                )
            labels[i, :n_prompt] = IGNORE_INDEX
            if full["input_ids"][i, n_full - 1] != tok.eos_token_id:
                raise ValueError(f"{e.example_id}: completion does not end with the EOS token")
        full["labels"] = labels
        return dict(full)
