"""The ablation's results: the summary over seeds, ``results.json``, ``results.md`` and the
plot ``ablation.png``."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrlaif.io import write_json

#: Figures of the results table (lower is better for the first two).
FIGURES = ("object_hal", "response_hal", "cover", "pope_adversarial_accuracy")


@dataclass
class AblationRun:
    """One (variant, seed) run: its per-iteration headline figures and pair counts."""

    variant: str
    seed: int
    headlines: list[dict[str, float]]
    pairs: list[int]
    seconds: float
    run_dir: str
    extra: dict[str, Any] = field(default_factory=dict)


def summarize(runs: Sequence[AblationRun]) -> list[dict[str, Any]]:
    """Per variant: mean and sd over seeds of the final figures, relative ObjHal change,
    total pairs, falls of ObjHal at every iteration."""
    table = []
    for variant in dict.fromkeys(r.variant for r in runs):
        mine = [r for r in runs if r.variant == variant]
        row: dict[str, Any] = {"variant": variant, "seeds": len(mine)}
        for figure in FIGURES:
            row[figure] = _mean_sd([r.headlines[-1][figure] for r in mine])
            row[f"base_{figure}"] = _mean_sd([r.headlines[0][figure] for r in mine])
        rel = [
            r.headlines[-1]["object_hal"] / r.headlines[0]["object_hal"] - 1
            for r in mine
            if r.headlines[0]["object_hal"]
        ]
        row["object_hal_change"] = _mean_sd(rel)
        row["pairs_total"] = _mean_sd([sum(r.pairs) for r in mine])
        row["falls_every_iteration"] = sum(
            all(b["object_hal"] < a["object_hal"] for a, b in itertools.pairwise(r.headlines))
            for r in mine
        )
        row["seconds"] = _mean_sd([r.seconds for r in mine])
        table.append(row)
    return table


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    values = list(values)
    if not values:
        return {"mean": float("nan"), "sd": float("nan")}
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd}


def write_results(
    runs: Sequence[AblationRun],
    out_dir: str | Path,
    checker: Mapping[str, float] | None = None,
) -> Path:
    """``results.json``, ``results.md`` and ``ablation.png`` under ``out_dir``; returns the
    Markdown table's path.

    Args:
        runs: The runs.
        out_dir: The ablation's folder.
        checker: The strong labeler's headline figures on the eval split, when a variant used
            it (its POPE adversarial accuracy is its strength as a yes/no checker).
    """
    out_dir = Path(out_dir)
    table = summarize(runs)
    data: dict[str, Any] = {"runs": [vars(r) for r in runs], "summary": table}
    if checker is not None:
        data["checker"] = dict(checker)
    write_json(data, out_dir / "results.json")
    md = out_dir / "results.md"
    md.write_text(markdown_table(table, checker))
    plot(runs, out_dir / "ablation.png")
    return md


def markdown_table(
    table: Sequence[Mapping[str, Any]], checker: Mapping[str, float] | None = None
) -> str:
    """The summary as a Markdown table (percentages, mean ± sd over seeds), and the strong
    labeler's POPE adversarial accuracy under it when given."""

    def pct(cell: Mapping[str, float]) -> str:
        return f"{100 * cell['mean']:.2f} ± {100 * cell['sd']:.2f}"

    lines = [
        "| variant | seeds | ObjHal | change vs base | RespHal | Cover (base) "
        "| POPE adv. acc. (base) | pairs | falls every iteration | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table:
        lines.append(
            f"| {row['variant']} | {row['seeds']} | {pct(row['object_hal'])} "
            f"| {100 * row['object_hal_change']['mean']:+.1f}% | {pct(row['response_hal'])} "
            f"| {pct(row['cover'])} ({100 * row['base_cover']['mean']:.2f}) "
            f"| {pct(row['pope_adversarial_accuracy'])} "
            f"({100 * row['base_pope_adversarial_accuracy']['mean']:.2f}) "
            f"| {row['pairs_total']['mean']:.0f} | {row['falls_every_iteration']}/{row['seeds']} "
            f"| {row['seconds']['mean']:.0f} |"
        )
    if checker is not None:
        accuracy = 100 * checker["pope_adversarial_accuracy"]
        lines += ["", f"Strong labeler: POPE adversarial accuracy {accuracy:.2f} (eval split)."]
    return "\n".join(lines) + "\n"


def plot(runs: Sequence[AblationRun], path: str | Path) -> Path:
    """ObjHal and Cover against iteration: per variant the mean over seeds and its range."""
    # lazy: matplotlib, for the plot only
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, figure, title in zip(axes, ("object_hal", "cover"), ("ObjHal", "Cover"), strict=True):
        for variant in dict.fromkeys(r.variant for r in runs):
            series = [[h[figure] * 100 for h in r.headlines] for r in runs if r.variant == variant]
            n = min(len(s) for s in series)
            steps = list(range(n))
            mean = [statistics.fmean(s[i] for s in series) for i in steps]
            line = ax.plot(steps, mean, marker="o", label=variant)[0]
            low = [min(s[i] for s in series) for i in steps]
            high = [max(s[i] for s in series) for i in steps]
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
        ax.set_title(f"{title} (%), mean and range over seeds")
        ax.set_xlabel("iteration (0 = base policy)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)
