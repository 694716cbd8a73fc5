"""POVID training examples: the pairs of one prompt grouped into one example, and their batches.

POVID's loss is per *example* (a ground-truth answer with its rejections):
``0.5 * DPO(y, noise rejection) + 0.5 * DPO(y, text rejection)`` in the reference. The pairs table
holds one row per (chosen, rejected) pair, so :func:`group_examples` puts the POVID rows of a
prompt back together: an example has the chosen answer, its fixed rejected answers (texts) and,
when the table has an online ``povid_noise`` row for it, a noise rejection built at training
time. Each rejection weighs ``1 / (number of rejections of the example)``: 0.5 / 0.5 with both
sources, 1 with one. Rows of other sources stay one example each.

:class:`POVIDCollator` encodes a batch of examples with
:func:`mmrlaif.training.data.encode_answers` (the one tokenisation of SFT, DPO and evaluation):
rows ``[chosen_1..B, fixed rejections..., noise rejections...]``, where a noise row is encoded
exactly as its chosen answer (same ids, clean image): its scored tokens are set by the trainer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import ProcessorMixin

from mmrlaif.io import cell_to_image
from mmrlaif.models.chat import ChatFormat, message_text
from mmrlaif.pairs.table import NoiseSpec, online_spec
from mmrlaif.training.data import encode_answers

#: Sources whose rows of one prompt form one POVID example.
GROUPED_SOURCES: tuple[str, ...] = ("povid_text", "povid_noise")
#: Batch keys that are not model inputs.
META_KEYS: tuple[str, ...] = (
    "completion_mask",
    "example_ids",
    "pair_chosen",
    "pair_weight",
    "pair_noise",
    "noise_images",
    "noise_questions",
    "noise_answers",
    "noise_example_ids",
)


def noise_spec(rows: Sequence[Mapping[str, Any]]) -> NoiseSpec | None:
    """The one noise spec of a table's online rows (``None``: no online row).

    Raises:
        ValueError: If the online rows disagree.
    """
    specs = {spec for row in rows if (spec := online_spec(row)) is not None}
    if len(specs) > 1:
        raise ValueError(f"online povid_noise rows with different noise settings: {specs}")
    return next(iter(specs), None)


def needs_grouping(rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a pairs table needs POVID's trainer: an online row, or a prompt with several
    POVID rows (whose loss is weighed per example)."""
    count: dict[str, int] = defaultdict(int)
    for row in rows:
        if online_spec(row) is not None:
            return True
        if row.get("source") in GROUPED_SOURCES:
            count[str(row["prompt_id"])] += 1
    return any(n > 1 for n in count.values())


@dataclass
class _Group:
    """The rows of one example: the first one's index, its fixed rejections, its noise."""

    first: int
    chosen: str
    rejected: list[str] = field(default_factory=list)
    noise: bool = False
    sources: list[str] = field(default_factory=list)


def _groups(rows: Sequence[Mapping[str, Any]]) -> list[_Group]:
    groups: list[_Group] = []
    by_prompt: dict[str, _Group] = {}
    for index, row in enumerate(rows):
        pid = str(row["prompt_id"])
        grouped = row.get("source") in GROUPED_SOURCES
        chosen = message_text(row["chosen"]).strip()
        group = by_prompt.get(pid) if grouped else None
        if group is None:
            group = _Group(index, chosen)
            groups.append(group)
            if grouped:
                by_prompt[pid] = group
        elif group.chosen != chosen:
            raise ValueError(f"prompt {pid}: POVID rows with different chosen answers")
        if online_spec(row) is not None:
            group.noise = True
        else:
            group.rejected.append(message_text(row["rejected"]))
            group.sources.append(str(row.get("source")))
    for group in groups:
        if group.noise:
            group.sources.append("povid_noise")
    return groups


def group_examples(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One example per prompt's POVID rows and per other row, in the table's order.

    An example has ``prompt``, ``chosen``, ``images`` and ``prompt_id`` of its first row,
    ``rejected`` (the fixed rejected answers, plain text), ``noise`` (an online noise rejection
    is built for it) and ``sources`` (of its rejections, fixed first).

    Raises:
        ValueError: Naming the prompt whose POVID rows disagree on the chosen answer.
    """
    out = []
    for g in _groups(rows):
        row = rows[g.first]
        keep = {k: row[k] for k in ("prompt", "chosen", "images")}
        out.append(
            keep
            | {"prompt_id": str(row["prompt_id"]), "rejected": g.rejected, "noise": g.noise}
            | {"sources": g.sources}
        )
    return out


def group_dataset(dataset):
    """:func:`group_examples` of a ``datasets.Dataset`` of the pairs table, its images left
    where they are (the examples are a selection of its rows, with new columns).

    Raises:
        ValueError: As :func:`group_examples`.
    """
    meta = dataset.select_columns(["prompt_id", "source", "chosen", "rejected"]).to_list()
    groups = _groups(meta)
    out = dataset.select([g.first for g in groups])
    keep = ("prompt", "chosen", "images", "prompt_id")
    out = out.remove_columns([c for c in out.column_names if c not in keep])
    out = out.add_column("rejected", [g.rejected for g in groups])
    out = out.add_column("noise", [g.noise for g in groups])
    return out.add_column("sources", [g.sources for g in groups])


def check_example_lengths(dataset, collator: POVIDCollator, batch_size: int = 64) -> None:
    """Encode every example as training will; an answer over the token budget is an error.

    Raises:
        ValueError: Naming the example and which answer, over ``dpo.max_length``.
    """
    for start in range(0, len(dataset), batch_size):
        rows = [dict(dataset[i]) for i in range(start, min(start + batch_size, len(dataset)))]
        try:
            collator(rows)
        except ValueError as exc:
            raise ValueError(
                f"{exc} (dpo.max_length={collator.max_length}; pairs are never truncated)"
            ) from exc


class POVIDCollator:
    """Batch POVID examples for :class:`mmrlaif.training.povid.POVIDDPOTrainer`.

    Returns the processor's inputs of rows ``[chosen_1..B, fixed rejections, noise rows]`` (a
    noise row is its example's chosen answer, clean image), ``completion_mask``, and:
    ``pair_chosen`` (each rejection's chosen row), ``pair_weight`` (a list of floats: kept
    out of DeepSpeed's cast of float inputs to bf16), ``pair_noise``, ``example_ids``, and for
    the noise rows their clean images, questions and answers (``noise_*``), which the trainer
    noises and encodes again.

    Args:
        processor: The policy's processor.
        max_length: Longest allowed prompt + answer (``None``: no limit).
    """

    def __init__(self, processor: ProcessorMixin, max_length: int | None = None) -> None:
        self.chat = ChatFormat(processor)
        self.max_length = max_length

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Collate grouped examples (:func:`group_examples`)."""
        ids = [str(e["prompt_id"]) for e in examples]
        images = []
        for pid, e in zip(ids, examples, strict=True):
            if len(e["images"]) != 1:
                raise ValueError(f"example {pid}: {len(e['images'])} images (one is supported)")
            images.append(cell_to_image(e["images"][0], pid))
        questions = [message_text(e["prompt"]) for e in examples]
        chosen = [message_text(e["chosen"]) for e in examples]
        rows = [(i, chosen[i], f"example {ids[i]} (chosen)") for i in range(len(examples))]
        pair_chosen, pair_weight, pair_noise = [], [], []
        for i, e in enumerate(examples):
            weight = 1.0 / (len(e["rejected"]) + int(e["noise"]))
            for k, text in enumerate(e["rejected"]):
                rows.append((i, text, f"example {ids[i]} (rejected {k})"))
                pair_chosen.append(i)
                pair_weight.append(weight)
                pair_noise.append(False)
        noisy = [i for i, e in enumerate(examples) if e["noise"]]
        for i in noisy:
            rows.append((i, chosen[i], f"example {ids[i]} (noise rejection)"))
            pair_chosen.append(i)
            pair_weight.append(1.0 / (len(examples[i]["rejected"]) + 1))
            pair_noise.append(True)
        batch = encode_answers(
            self.chat,
            [images[i] for i, _, _ in rows],
            [questions[i] for i, _, _ in rows],
            [answer for _, answer, _ in rows],
            self.max_length,
            [name for _, _, name in rows],
        )
        batch["example_ids"] = ids
        batch["pair_chosen"] = torch.tensor(pair_chosen, dtype=torch.long)
        batch["pair_weight"] = pair_weight
        batch["pair_noise"] = torch.tensor(pair_noise, dtype=torch.bool)
        batch["noise_images"] = [images[i] for i in noisy]
        batch["noise_questions"] = [questions[i] for i in noisy]
        batch["noise_answers"] = [chosen[i] for i in noisy]
        batch["noise_example_ids"] = [ids[i] for i in noisy]
        return batch
