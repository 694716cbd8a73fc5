"""Which policy an iteration carries forward: the one it trained or the incumbent.

RLAIF-V picks, after each iteration, the checkpoint that evaluates best as the next iteration's
policy (its reference: the best quarter-epoch checkpoint on Object HalBench + MMHal). Here the
choice is made by one configured figure (``pipeline.select_metric``), never on what the reports
show: on the toy world's validation split, or on a held-out slice of a real benchmark (the
first ``pipeline.select_items`` items, which the reports then leave out). With
``pipeline.select_every`` the DPO run's intermediate checkpoints compete too, and the best of
them is the iteration's new policy. ``latest`` carries the newly trained policy forward whatever
it scores, and its figures are still recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmrlaif import artifacts
from mmrlaif.artifacts import CANDIDATES_SUBDIR, FINAL
from mmrlaif.config import (
    BENCHMARK_SELECT_METRICS,
    LATEST_METRIC,
    TOY_SELECT_METRICS,
)
from mmrlaif.evaluation.metrics import f1_score

#: Metrics a selection can use, and whether higher is better.
SELECT_METRICS: dict[str, bool] = TOY_SELECT_METRICS | BENCHMARK_SELECT_METRICS
#: The selection "metric" that always carries the newly trained policy forward.
LATEST = LATEST_METRIC
#: The figures of every candidate of a selection, written by the evaluation.
SELECT_REPORT = "select.json"
#: Derived figures: harmonic means of object precision and recall, from a headline's keys.
_F1_PARTS: dict[str, tuple[str, str]] = {
    "object_f1": ("object_hal", "cover"),
    "amber_object_f1": ("amber_chair", "amber_cover"),
    "object_halbench_object_f1": (
        "object_halbench_mention_hallucination_rate",
        "object_halbench_object_recall",
    ),
}


def object_f1(object_hal: float, cover: float) -> float:
    """Harmonic mean of object precision (1 - ObjHal) and object recall (Cover).

    Rewards naming the objects that are there without naming ones that are not, so a policy
    cannot win by saying less.
    """
    return f1_score(1.0 - object_hal, cover)


def metric_value(metric: str, headline: Mapping[str, float]) -> float:
    """The selection metric of one headline (the toy validation figures or a benchmark's).

    Raises:
        ValueError: On an unknown metric, or a headline that lacks what it needs.
    """
    if metric not in SELECT_METRICS:
        known = ", ".join(SELECT_METRICS)
        raise ValueError(f"unknown selection metric {metric!r} (one of {known})")
    try:
        if metric in _F1_PARTS:
            hallucination, recall = _F1_PARTS[metric]
            return object_f1(headline[hallucination], headline[recall])
        return float(headline[metric])
    except KeyError as exc:
        raise ValueError(f"the selection figures lack {exc.args[0]!r} for {metric!r}") from exc


def best_candidate(metric: str, figures: Mapping[str, Mapping[str, float]]) -> str:
    """The candidate with the best ``metric``; a tie goes to the later one in ``figures``
    (the final model is listed last: no earlier checkpoint without evidence)."""
    names = list(figures)
    if not names:
        raise ValueError("no candidate to select from")
    if metric == LATEST:
        return names[-1]
    sign = 1.0 if SELECT_METRICS[metric] else -1.0
    return max(reversed(names), key=lambda n: sign * metric_value(metric, figures[n]))


@dataclass(frozen=True)
class Selection:
    """The decision of one iteration.

    Attributes:
        keep_new: Whether the newly trained policy is carried forward.
        metric: The metric compared.
        new: Its value for the newly trained policy.
        incumbent: Its value for the incumbent.
        reason: One sentence for people.
        candidate: Which of the DPO run's models the new policy is (``final`` or
            ``step-<n>``, an intermediate checkpoint).
    """

    keep_new: bool
    metric: str
    new: float
    incumbent: float
    reason: str
    candidate: str = FINAL

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def select_policy(
    metric: str, new: Mapping[str, float], incumbent: Mapping[str, float]
) -> Selection:
    """Carry the new policy forward iff it is strictly better than the incumbent on ``metric``.

    A tie keeps the incumbent (no change without evidence). ``latest`` always keeps the new one
    (its figures are then validation object F1, for the record).
    """
    if metric == LATEST:
        a, b = metric_value("object_f1", new), metric_value("object_f1", incumbent)
        reason = f"latest: the new policy goes on (validation object_f1 {a:.4f} vs {b:.4f})"
        return Selection(True, metric, a, b, reason)
    higher = SELECT_METRICS.get(metric)
    a, b = metric_value(metric, new), metric_value(metric, incumbent)
    keep = a > b if higher else a < b
    verb = "beats" if keep else "does not beat"
    where = "validation" if metric in TOY_SELECT_METRICS else "held-out"
    reason = f"new policy {verb} the incumbent on {where} {metric}: {a:.4f} vs {b:.4f}"
    return Selection(keep, metric, a, b, reason)


def candidate_model(policy_run: str | Path, candidate: str) -> Path:
    """The model folder of one candidate of a DPO run (``final``: the run's ``model/``).

    Raises:
        FileNotFoundError: Naming the folder when it holds no model.
    """
    if candidate == FINAL:
        return artifacts.model_dir(policy_run)
    path = Path(policy_run) / CANDIDATES_SUBDIR / candidate
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no model in candidate {candidate} of {policy_run} ({path})")
    return path


def read_selection_report(report_dir: str | Path) -> tuple[dict[str, float], str]:
    """The selection figures of the policy a report folder describes, and which candidate.

    Raises:
        FileNotFoundError: Naming the folder when it has no ``select.json``.
    """
    path = Path(report_dir) / SELECT_REPORT
    if not path.is_file():
        raise FileNotFoundError(f"no selection figures in {report_dir} (expected {path})")
    data = json.loads(path.read_text())
    best = data["best"]
    return {k: float(v) for k, v in data["figures"][best].items()}, best
