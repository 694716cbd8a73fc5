"""Turning (image, question, answer) rows into model inputs, identically for every trainer.

SFT, DPO (policy and reference passes) and the guidance reward all go through
:func:`encode_answers`: the prompt is encoded by the processor exactly as sampling and labeling
encode it (same chat template, same special tokens, image slots expanded), and the answer's ids
are the continuation of the prompt's ids (:meth:`ChatFormat.completion_ids`).
"""

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
from mmrlaif.models.chat import ChatFormat, ChatFormatError, message_text

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One supervised example: an image, the question and the answer (plain text)."""

    example_id: str
    image: Image.Image
    question: str
    answer: str


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
        examples.append(Example(item, image, row["question"], answer))
    return examples, skips


def encode_answers(
    chat: ChatFormat,
    images: Sequence[Image.Image],
    questions: Sequence[str],
    answers: Sequence[str],
    max_length: int | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Prompt + completion rows, right-padded, with a mask of the completion tokens.

    Args:
        chat: The policy's chat format.
        images: One image per row.
        questions: The questions (plain text).
        answers: The answers (plain text; the chat format adds the end of turn).
        max_length: Longest allowed prompt + completion in tokens (``None``: no limit).
        names: Row names for error messages (default: row indices).

    Returns:
        The processor's outputs for the prompts (pixel values, grids...) with ``input_ids``,
        ``attention_mask`` and every per-token column (``token_type_ids``,
        ``mm_token_type_ids``...) extended over the completion, plus ``completion_mask``.

    Raises:
        ValueError: Naming the row that exceeds ``max_length`` or whose text does not tokenise
            consistently.
    """
    names = list(names) if names is not None else [str(i) for i in range(len(questions))]
    enc = chat.encode_prompts(questions, images, padding_side="left")
    try:
        completions = chat.completion_ids(questions, answers)
    except ChatFormatError as exc:
        where = names[exc.row] if exc.row is not None else "chat format"
        raise ValueError(f"{where}: {exc}") from exc
    prompt_ids, prompt_mask = enc["input_ids"], enc["attention_mask"]
    per_token = [
        k
        for k, v in enc.items()
        if k not in ("input_ids", "attention_mask")
        and isinstance(v, torch.Tensor)
        and v.shape[:2] == prompt_ids.shape
    ]
    rows = []
    for i, completion in enumerate(completions):
        keep = prompt_mask[i].bool()
        n = int(keep.sum()) + len(completion)
        if max_length is not None and n > max_length:
            raise ValueError(f"{names[i]}: {n} tokens exceed max_length {max_length}")
        ids = torch.cat([prompt_ids[i][keep], torch.tensor(completion, dtype=prompt_ids.dtype)])
        extra = {
            k: torch.cat([enc[k][i][keep], enc[k].new_zeros(len(completion))]) for k in per_token
        }
        rows.append((ids, int(keep.sum()), extra))
    width = max(len(ids) for ids, _, _ in rows)
    pad_id = chat.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = chat.tokenizer.eos_token_id
    out = dict(enc)
    out["input_ids"] = prompt_ids.new_full((len(rows), width), pad_id)
    out["attention_mask"] = prompt_mask.new_zeros((len(rows), width))
    out["completion_mask"] = prompt_mask.new_zeros((len(rows), width))
    for k in per_token:
        out[k] = enc[k].new_zeros((len(rows), width))
    for i, (ids, n_prompt, extra) in enumerate(rows):
        out["input_ids"][i, : len(ids)] = ids
        out["attention_mask"][i, : len(ids)] = 1
        out["completion_mask"][i, n_prompt : len(ids)] = 1
        for k, v in extra.items():
            out[k][i, : len(v)] = v
    return out


class SupervisedCollator:
    """Batch examples for causal-LM training with the loss on completion tokens only.

    Right padding; labels are ``-100`` on the prompt (image tokens included) and on padding.
    The ids are exactly those :func:`encode_answers` gives DPO and sampling's prompts.
    """

    def __init__(self, processor: ProcessorMixin, max_length: int) -> None:
        self.chat = ChatFormat(processor)
        self.max_length = max_length

    def __call__(self, batch: Sequence[Example]) -> dict[str, torch.Tensor]:
        out = encode_answers(
            self.chat,
            [e.image for e in batch],
            [e.question for e in batch],
            [e.answer for e in batch],
            self.max_length,
            [e.example_id for e in batch],
        )
        completion = out.pop("completion_mask")
        out["labels"] = out["input_ids"].masked_fill(completion == 0, IGNORE_INDEX)
        return out


class PreferenceCollator:
    """Batch DPO pairs as TRL's ``_compute_loss`` reads them: ``[chosen..., rejected...]`` rows
    with a ``completion_mask``, encoded by :func:`encode_answers`.

    Replaces TRL's ``DataCollatorForVisionPreference``, which tokenises prompts without the
    special tokens (no BOS) and completions alone (a stray leading ``▁`` with a legacy Llama
    tokenizer): the policy and reference passes then score ids that sampling never produced.

    Args:
        processor: The policy's processor.
        max_length: Longest allowed prompt + answer (``None``: no limit).
    """

    def __init__(self, processor: ProcessorMixin, max_length: int | None = None) -> None:
        self.chat = ChatFormat(processor)
        self.max_length = max_length

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Collate pairs-table rows (``prompt``, ``chosen``, ``rejected``, ``images``)."""
        images, questions, names = [], [], []
        for i, e in enumerate(examples):
            pid = str(e.get("prompt_id", i))
            cells = e["images"] if "images" in e else [e["image"]]
            if len(cells) != 1:
                raise ValueError(f"pair {pid}: {len(cells)} images (one per pair is supported)")
            images.append(cell_to_image(cells[0], pid))
            questions.append(message_text(e["prompt"]))
            names.append(pid)
        answers = [message_text(e["chosen"]) for e in examples]
        answers += [message_text(e["rejected"]) for e in examples]
        return encode_answers(
            self.chat,
            images * 2,
            questions * 2,
            answers,
            self.max_length,
            [f"pair {n} (chosen)" for n in names] + [f"pair {n} (rejected)" for n in names],
        )
