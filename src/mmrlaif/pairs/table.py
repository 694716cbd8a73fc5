"""The pairs table: TRL's vision DPO layout plus provenance columns.

Columns: ``prompt`` (the user turn in the conversational layout: an image slot, then the
question), ``chosen`` and ``rejected`` (an assistant turn each), ``images`` (a one-image list in
the HF ``Image`` layout), and provenance: ``prompt_id``, ``source``
(``rlaifv`` | ``povid_text`` | ``povid_noise`` | ``external`` | ``replay_yesno``),
``chosen_score``, ``rejected_score``, ``chosen_idx``, ``rejected_idx``.
``datasets.load_dataset("parquet")`` reads it and TRL's ``DPOTrainer`` consumes it as is. The
table holds no model's chat format: training renders it through the policy's own
(:class:`mmrlaif.training.data.PreferenceCollator`), so one table serves any family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mmrlaif.models.chat import assistant_message, user_message
from mmrlaif.pairs.rlaifv import Pair

SOURCES: tuple[str, ...] = ("rlaifv", "povid_text", "povid_noise", "external", "replay_yesno")


def pair_row(
    prompt: Mapping[str, Any],
    chosen: str,
    rejected: str,
    source: str,
    chosen_score: float | None = None,
    rejected_score: float | None = None,
    chosen_idx: int | None = None,
    rejected_idx: int | None = None,
) -> dict[str, Any]:
    """One row of the pairs table from a prompt row and two answers.

    Raises:
        ValueError: On an unknown source, or an empty chosen or rejected answer.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown pair source {source!r} (one of {', '.join(SOURCES)})")
    pid = str(prompt["prompt_id"])
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise ValueError(f"{pid}: empty {name} answer")
    return {
        "prompt": user_message(prompt["question"]),
        "chosen": assistant_message(chosen.strip()),
        "rejected": assistant_message(rejected.strip()),
        "images": [prompt["image"]],
        "prompt_id": pid,
        "source": source,
        "chosen_score": chosen_score,
        "rejected_score": rejected_score,
        "chosen_idx": chosen_idx,
        "rejected_idx": rejected_idx,
    }


def rlaifv_rows(
    pairs: Sequence[Pair], prompts: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Rows of RLAIF-V pairs.

    Raises:
        KeyError: Naming a pair whose prompt has no prompt row.
    """
    by_id = {str(p["prompt_id"]): p for p in prompts}
    rows = []
    for pair in pairs:
        if pair.prompt_id not in by_id:
            raise KeyError(f"pair for prompt {pair.prompt_id!r}: no such prompt row")
        rows.append(
            pair_row(
                by_id[pair.prompt_id],
                pair.chosen.response,
                pair.rejected.response,
                "rlaifv",
                pair.chosen.score,
                pair.rejected.score,
                pair.chosen.sample_idx,
                pair.rejected.sample_idx,
            )
        )
    return rows
