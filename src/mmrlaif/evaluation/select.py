"""Which policy an iteration carries forward: the one it trained or the incumbent.

RLAIF-V picks, after each iteration, the checkpoint that evaluates best as the next iteration's
policy. Here the choice is made on the validation split (never on the held-out eval split) by
one configured metric, or (``latest``) not at all: the newly trained policy always goes on, as in
RLAIF-V's reference code, and its validation figures are still recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Metrics a selection can use, and whether higher is better.
SELECT_METRICS: dict[str, bool] = {
    "object_f1": True,
    "cover": True,
    "chair_i": False,
    "chair_s": False,
}
#: The selection "metric" that always carries the newly trained policy forward.
LATEST = "latest"


def object_f1(chair_i: float, cover: float) -> float:
    """Harmonic mean of object precision (1 - CHAIR_i) and object recall (Cover).

    Rewards naming the objects that are there without naming ones that are not, so a policy
    cannot win by saying less.
    """
    precision = 1.0 - chair_i
    total = precision + cover
    return 2 * precision * cover / total if total else 0.0


def metric_value(metric: str, headline: Mapping[str, float]) -> float:
    """The selection metric of one evaluation headline.

    Raises:
        ValueError: On an unknown metric, or a headline that lacks what it needs.
    """
    if metric not in SELECT_METRICS:
        known = ", ".join(SELECT_METRICS)
        raise ValueError(f"unknown selection metric {metric!r} (one of {known})")
    try:
        if metric == "object_f1":
            return object_f1(headline["chair_i"], headline["cover"])
        return float(headline[metric])
    except KeyError as exc:
        raise ValueError(f"evaluation headline lacks {exc.args[0]!r} for {metric!r}") from exc


@dataclass(frozen=True)
class Selection:
    """The decision of one iteration.

    Attributes:
        keep_new: Whether the newly trained policy is carried forward.
        metric: The metric compared.
        new: Its value for the newly trained policy.
        incumbent: Its value for the incumbent.
        reason: One sentence for people.
    """

    keep_new: bool
    metric: str
    new: float
    incumbent: float
    reason: str

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
    reason = f"new policy {verb} the incumbent on validation {metric}: {a:.4f} vs {b:.4f}"
    return Selection(keep, metric, a, b, reason)


def select_step(
    metric: str,
    new_run: str | Path,
    new_report_dir: str | Path,
    incumbent_run: str | Path,
    incumbent_report_dir: str | Path,
    out_run: str | Path,
    out_report_dir: str | Path,
) -> Selection:
    """Compare two policy artifacts on their validation reports; copy the winner out.

    The winner's model goes to ``out_run/model`` and its reports to ``out_report_dir``; the
    decision is written as ``selection.json`` in both.
    """
    from mmrlaif import artifacts
    from mmrlaif.io import copy_tree, write_json

    def headline(report_dir: str | Path) -> dict[str, float]:
        chair = json.loads((Path(report_dir) / artifacts.VAL_REPORT).read_text())["chair"]
        return {k: float(v) for k, v in chair.items() if isinstance(v, int | float)}

    decision = select_policy(metric, headline(new_report_dir), headline(incumbent_report_dir))
    run, reports = (
        (new_run, new_report_dir) if decision.keep_new else (incumbent_run, incumbent_report_dir)
    )
    copy_tree(artifacts.model_dir(run), Path(out_run) / artifacts.MODEL_SUBDIR)
    copy_tree(reports, out_report_dir)
    for folder in (out_run, out_report_dir):
        write_json(decision.to_dict(), Path(folder) / "selection.json")
    return decision
