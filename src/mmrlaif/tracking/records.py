"""What an iteration logs besides metrics: flat stage counters, readable pairs and the accuracy
of the model that labeled its answers."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrlaif.io import read_rows

if TYPE_CHECKING:
    from mmrlaif.config import Config

_VERDICT_COLUMNS = ("claims", "questions", "p_yes", "accepted", "score")


def flat_counters(data: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested stage statistics, keys joined with ``/``.

    ``{"pairs_out": 5, "skips": {"tie": 3}}`` -> ``{"pairs_out": 5.0, "skips/tie": 3.0}``;
    strings, lists and ``None`` are left out.
    """
    out: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flat_counters(value, f"{name}/")
        elif isinstance(value, int | float):  # bools included
            out[name] = float(value)
    return out


def pairs_sample(
    pairs_table: str | Path,
    feedback_table: str | Path | None,
    k: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Up to ``k`` pairs, seeded, without images, each with its answers' claims and verdicts.

    Args:
        pairs_table: The iteration's pairs.
        feedback_table: The labeled samples the pairs came from (RLAIF-V); ``None`` for POVID.
        k: How many pairs.
        seed: Seed of the choice.

    Returns:
        Rows with ``prompt_id``, ``source``, ``prompt``, ``chosen``, ``rejected``, scores and,
        when feedback is given, ``chosen_feedback`` / ``rejected_feedback`` (claims, questions,
        P(yes), accepted, score).
    """
    pairs = read_rows(pairs_table)
    if not pairs or k <= 0:
        return []
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), min(k, len(pairs))))
    feedback: dict[tuple[str, int], dict[str, Any]] = {}
    if feedback_table is not None:
        for row in read_rows(feedback_table):
            key = (str(row["prompt_id"]), int(row["sample_idx"]))
            feedback[key] = {c: row.get(c) for c in _VERDICT_COLUMNS}
    out = []
    for i in chosen:
        row = {k_: v for k_, v in pairs[i].items() if k_ not in ("images", "image")}
        pid = str(row["prompt_id"])
        for side in ("chosen", "rejected"):
            idx = row.get(f"{side}_idx")
            if idx is not None and (pid, int(idx)) in feedback:
                row[f"{side}_feedback"] = feedback[(pid, int(idx))]
        out.append(row)
    return out


def checker_accuracy(cfg: Config, entries: list[dict[str, Any]]) -> float | None:
    """POPE adversarial accuracy of the model that labeled this iteration's answers.

    The frozen starting policy (``labeling.labeler: initial``) is iteration 0's policy; the
    current policy (``policy``) is the one the previous iteration carried forward. A separate
    labeler (a checkpoint or an endpoint) is not evaluated here: ``None``.
    """
    if not entries or "pope_adversarial_accuracy" not in entries[0]["headline"]:
        return None
    if cfg.labeling.labeler == "initial":
        return entries[0]["headline"]["pope_adversarial_accuracy"]
    if cfg.labeling.labeler == "policy":
        return entries[-1]["headline"].get("pope_adversarial_accuracy")
    return None
