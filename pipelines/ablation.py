"""Ablations: the same pipeline under several configurations and seeds, side by side.

Each seed trains its base policy once (the first variant's run) and every other variant of that
seed starts from that very policy (``model.name_or_path`` = its folder), so variants differ only
in what they change. Results: ``results.json`` (every run's per-iteration figures),
``results.md`` (mean and spread over seeds per variant) and ``ablation.png`` (CHAIR_i and Cover
against iteration).
"""

from __future__ import annotations

import itertools
import json
import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrlaif.config import Config, ConfigError, from_dict, to_dict
from mmrlaif.config.strict import set_dotted

logger = logging.getLogger(__name__)

#: What each variant changes, against the preset (dotted keys). ``{iterations}`` in a value is
#: replaced by the preset's ``pipeline.iterations``.
VARIANTS: dict[str, dict[str, Any]] = {
    # the preset: N on-policy iterations, frozen labeler, DPO + SFT on chosen
    "iterative": {},
    # one iteration with about the same total pair budget: N x the samples and pairs per prompt
    "one_shot": {
        "pipeline.iterations": 1,
        "sampling.n": "{iterations}*sampling.n",
        "pairs.max_pairs_per_prompt": "{iterations}*pairs.max_pairs_per_prompt",
    },
    # the current policy checks its own answers (its checker can erode)
    "self_labeler": {"labeling.labeler": "policy"},
    # the current policy checks its own answers, its check protected by yes/no replay
    "self_labeler_replay": {"labeling.labeler": "policy", "pairs.replay_yesno": 100},
    # plain DPO: no SFT term on the chosen answer
    "dpo_only": {"dpo.trainer.loss_type": ["sigmoid"], "dpo.trainer.loss_weights": [1.0]},
    # POVID pairs (ground-truth answers with injected hallucinations, noised images)
    "povid": {"pipeline.method": "povid"},
    # both: every RLAIF-V iteration adds the current policy's POVID pairs to its own
    "rlaifv_povid": {"pairs.add_povid": True},
}
#: Figures of the results table (lower is better for the first two).
FIGURES = ("chair_i", "chair_s", "cover", "pope_adversarial_accuracy")


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


def variant_config(
    cfg: Config, variant: str, seed: int, out_dir: Path, base: Path | None
) -> Config:
    """The preset with a variant's changes, a seed and its own output folder.

    Raises:
        ConfigError: An unknown variant.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown ablation variant {variant!r}; one of {', '.join(VARIANTS)}")
    data = to_dict(cfg)
    for key in ("run", "model", "sampling", "pairs", "povid"):
        data[key]["seed"] = seed
    for dotted, value in VARIANTS[variant].items():
        set_dotted(data, dotted, _resolve(value, cfg))
    data["run"]["output_dir"] = str(out_dir / f"seed{seed}" / variant)
    if base is not None:
        data["model"]["name_or_path"] = str(base)
    return from_dict(Config, data)


def _resolve(value: Any, cfg: Config) -> Any:
    """``"{iterations}*section.key"``: the preset's iterations times another preset value."""
    if isinstance(value, str) and value.startswith("{iterations}*"):
        section, key = value.split("*", 1)[1].split(".")
        return cfg.pipeline.iterations * getattr(getattr(cfg, section), key)
    return value


def run_ablation(
    cfg: Config,
    variants: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    tracking_uri: str,
) -> list[AblationRun]:
    """Run every variant for every seed through the local pipeline, then write the results.

    Returns:
        The runs, in order.
    """
    from mmrlaif.pipelines.build import run_local

    out_dir = Path(out_dir)
    runs: list[AblationRun] = []
    for seed in seeds:
        base: Path | None = None
        for variant in variants:
            vcfg = variant_config(cfg, variant, seed, out_dir, base)
            logger.info("ablation: %s, seed %d", variant, seed)
            start = time.perf_counter()
            summary = json.loads(run_local(vcfg, tracking_uri).read_text())
            runs.append(_run_of(variant, seed, summary, time.perf_counter() - start, vcfg))
            if base is None:  # this seed's base policy, shared by its other variants
                base = _base_policy(Path(vcfg.run.output_dir))
        write_results(runs, out_dir)
    return runs


def _run_of(variant: str, seed: int, summary: Mapping, seconds: float, cfg: Config) -> AblationRun:
    entries = summary["iterations"]
    return AblationRun(
        variant,
        seed,
        [e["headline"] for e in entries],
        [int(e.get("pairs") or 0) for e in entries[1:]],
        round(seconds, 1),
        cfg.run.output_dir,
    )


def _base_policy(run_dir: Path) -> Path:
    """The base policy's model folder inside a local run's artifacts."""
    found = sorted(run_dir.glob("kfp/*/base-policy/policy/model/config.json"))
    if not found:
        raise FileNotFoundError(f"no base policy under {run_dir}/kfp")
    return found[-1].parent


def summarize(runs: Sequence[AblationRun]) -> list[dict[str, Any]]:
    """Per variant: mean and sd over seeds of the final figures, relative CHAIR_i change,
    total pairs, falls of CHAIR_i at every iteration."""
    table = []
    for variant in dict.fromkeys(r.variant for r in runs):
        mine = [r for r in runs if r.variant == variant]
        row: dict[str, Any] = {"variant": variant, "seeds": len(mine)}
        for figure in FIGURES:
            row[figure] = _mean_sd([r.headlines[-1][figure] for r in mine])
            row[f"base_{figure}"] = _mean_sd([r.headlines[0][figure] for r in mine])
        rel = [
            r.headlines[-1]["chair_i"] / r.headlines[0]["chair_i"] - 1
            for r in mine
            if r.headlines[0]["chair_i"]
        ]
        row["chair_i_change"] = _mean_sd(rel)
        row["pairs_total"] = _mean_sd([sum(r.pairs) for r in mine])
        row["falls_every_iteration"] = sum(
            all(b["chair_i"] < a["chair_i"] for a, b in itertools.pairwise(r.headlines))
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


def write_results(runs: Sequence[AblationRun], out_dir: str | Path) -> Path:
    """``results.json``, ``results.md`` and ``ablation.png`` under ``out_dir``; returns the
    Markdown table's path."""
    from mmrlaif.io import write_json

    out_dir = Path(out_dir)
    table = summarize(runs)
    write_json({"runs": [vars(r) for r in runs], "summary": table}, out_dir / "results.json")
    md = out_dir / "results.md"
    md.write_text(markdown_table(table))
    plot(runs, out_dir / "ablation.png")
    return md


def markdown_table(table: Sequence[Mapping[str, Any]]) -> str:
    """The summary as a Markdown table (percentages, mean ± sd over seeds)."""

    def pct(cell: Mapping[str, float]) -> str:
        return f"{100 * cell['mean']:.2f} ± {100 * cell['sd']:.2f}"

    lines = [
        "| variant | seeds | CHAIR_i | change vs base | CHAIR_s | Cover (base) "
        "| POPE adv. acc. (base) | pairs | falls every iteration | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table:
        lines.append(
            f"| {row['variant']} | {row['seeds']} | {pct(row['chair_i'])} "
            f"| {100 * row['chair_i_change']['mean']:+.1f}% | {pct(row['chair_s'])} "
            f"| {pct(row['cover'])} ({100 * row['base_cover']['mean']:.2f}) "
            f"| {pct(row['pope_adversarial_accuracy'])} "
            f"({100 * row['base_pope_adversarial_accuracy']['mean']:.2f}) "
            f"| {row['pairs_total']['mean']:.0f} | {row['falls_every_iteration']}/{row['seeds']} "
            f"| {row['seconds']['mean']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(runs: Sequence[AblationRun], path: str | Path) -> Path:
    """CHAIR_i and Cover against iteration: per variant the mean over seeds and its range."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, figure, title in zip(axes, ("chair_i", "cover"), ("CHAIR_i", "Cover"), strict=True):
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
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)
