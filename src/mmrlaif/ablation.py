"""Ablations: the same pipeline under several configurations and seeds, side by side.

Each seed fine-tunes its base policy once and every variant of that seed starts from that very
policy (``model.name_or_path`` = its folder), so variants differ only in what they change. Runs
are separate ``mmrlaif run`` processes, several at a time with ``jobs``. Results:
``results.json`` (every run's per-iteration figures), ``results.md`` (mean and spread over seeds
per variant) and ``ablation.png`` (ObjHal and Cover against iteration).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrlaif.artifacts import SUMMARY_FILE
from mmrlaif.config import Config, ConfigError, config_to_yaml, from_dict, to_dict
from mmrlaif.config.strict import set_dotted
from mmrlaif.io import write_json
from mmrlaif.toyworld import build_world

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
FIGURES = ("object_hal", "response_hal", "cover", "pope_adversarial_accuracy")
#: Each run's (and each base's) configuration, in its folder.
CONFIG_FILE = "config.yaml"


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


class AblationError(RuntimeError):
    """Some runs of an ablation failed (the others' results are written)."""


def run_ablation(
    cfg: Config,
    variants: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    jobs: int = 1,
) -> list[AblationRun]:
    """Run every variant for every seed through the local pipeline, then write the results.

    Each run is its own ``mmrlaif run`` process (its config in ``<run>/config.yaml``, its
    output in ``<run>/ablation.log``), ``jobs`` at a time, each given ``cpus / jobs`` threads.
    With ``model.name_or_path: null`` each seed's base policy is fine-tuned once
    (``<out>/seed<k>/base``) and every variant of that seed starts from it. A run whose folder
    already holds a finished run of the same config is reused, so an interrupted ablation
    resumes where it stopped.

    Returns:
        The runs, in order (seed-major).

    Raises:
        AblationError: Naming each failed run and its log, after writing the others' results.
    """
    out_dir = Path(out_dir)
    env = dict(os.environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    world = None
    if cfg.model.name_or_path is None:  # the bases' SFT data (the runs build the same world)
        world = build_world(cfg.world, out_dir / "world").root
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        bases: dict[int, Future[Path | None]] = {}
        for seed in seeds:  # queued first: a run waits only on a base already being trained
            bases[seed] = pool.submit(_base_policy, cfg, seed, out_dir, world, env)
        # per seed the longest runs first, so that short ones fill the end (fewer idle cores)
        cost = {v: expected_cost(variant_config(cfg, v, 0, out_dir, None)) for v in variants}
        submitted = {
            (seed, variant): pool.submit(
                _variant_run, cfg, variant, seed, out_dir, bases[seed], env
            )
            for seed in seeds
            for variant in sorted(variants, key=lambda v: -cost[v])
        }
    futures = {(seed, v): submitted[seed, v] for seed in seeds for v in variants}
    runs, failed = [], []
    for (seed, variant), future in futures.items():
        try:
            runs.append(future.result())
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            failed.append(f"seed {seed} {variant}: {exc}")
    if runs:
        write_results(runs, out_dir)
    if failed:
        raise AblationError(f"{len(failed)} of {len(futures)} runs failed: " + "; ".join(failed))
    return runs


def expected_cost(cfg: Config) -> float:
    """A run's relative cost, to order runs (not a time): per iteration, its samples per prompt
    (RLAIF-V), 16 for POVID pairs (one answer per prompt on noise, ~2 pairs per prompt to train
    on) and 8 for the fixed work (DPO on RLAIF-V pairs, evaluation, tasks)."""
    rlaifv = cfg.pipeline.method == "rlaifv"
    povid = not rlaifv or cfg.pairs.add_povid
    per_iteration = (cfg.sampling.n if rlaifv else 0) + (16 if povid else 0) + 8
    return cfg.pipeline.iterations * per_iteration


def _cli(args: Sequence[str], log: Path, env: Mapping[str, str]) -> None:
    """``mmrlaif <args>`` in its own process, its output to ``log``.

    Raises:
        subprocess.CalledProcessError: Naming the log, when it fails.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "mmrlaif.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            check=False,
        )
    if done.returncode:
        raise subprocess.CalledProcessError(done.returncode, f"mmrlaif {args[0]} (log: {log})")


def _base_policy(
    cfg: Config, seed: int, out_dir: Path, world: Path | None, env: Mapping[str, str]
) -> Path | None:
    """This seed's fine-tuned base policy folder (``None``: the preset names its model)."""
    if world is None:
        return None
    folder = out_dir / f"seed{seed}" / "base"
    model = folder / "model"
    # only what the SFT reads: a changed DPO or labeling setting reuses the bases
    data = to_dict(variant_config(cfg, "iterative", seed, out_dir, None))
    data = {key: data[key] for key in ("run", "world", "model", "sft")}
    data["run"]["output_dir"] = str(folder)
    text = config_to_yaml(from_dict(Config, data))
    if (model / "config.json").is_file() and _same_config(folder, text):
        logger.info("ablation: seed %d base policy reused from %s", seed, model)
        return model
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / CONFIG_FILE).write_text(text)
    logger.info("ablation: seed %d base policy (SFT)", seed)
    config = str(folder / CONFIG_FILE)
    args = ["sft", "--config", config, "--world", str(world), "--out", str(folder)]
    _cli(args, folder / "ablation.log", env)
    return model


def _variant_run(
    cfg: Config,
    variant: str,
    seed: int,
    out_dir: Path,
    base: Future[Path | None],
    env: Mapping[str, str],
) -> AblationRun:
    vcfg = variant_config(cfg, variant, seed, out_dir, base.result())
    folder = Path(vcfg.run.output_dir)
    text = config_to_yaml(vcfg)
    done = folder / "ablation_run.json"
    if done.is_file() and _same_config(folder, text) and (folder / SUMMARY_FILE).is_file():
        logger.info("ablation: %s, seed %d reused", variant, seed)
        seconds = json.loads(done.read_text())["seconds"]
    else:
        if not _same_config(folder, text):  # same config: resume the killed run in it
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            (folder / CONFIG_FILE).write_text(text)
        logger.info("ablation: %s, seed %d", variant, seed)
        start = time.perf_counter()
        _cli(["run", "--config", str(folder / CONFIG_FILE)], folder / "ablation.log", env)
        seconds = round(time.perf_counter() - start, 1)
        done.write_text(json.dumps({"seconds": seconds}))
    summary = folder / SUMMARY_FILE
    if not summary.is_file():
        raise FileNotFoundError(f"no run summary {summary}")
    return _run_of(variant, seed, json.loads(summary.read_text()), seconds, vcfg)


def _same_config(folder: Path, text: str) -> bool:
    path = folder / CONFIG_FILE
    return path.is_file() and path.read_text() == text


def _run_of(variant: str, seed: int, summary: Mapping, seconds: float, cfg: Config) -> AblationRun:
    entries = summary["iterations"]
    return AblationRun(
        variant,
        seed,
        [e["headline"] for e in entries],
        [int(e.get("pairs") or 0) for e in entries[1:]],
        seconds,
        cfg.run.output_dir,
    )


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


def write_results(runs: Sequence[AblationRun], out_dir: str | Path) -> Path:
    """``results.json``, ``results.md`` and ``ablation.png`` under ``out_dir``; returns the
    Markdown table's path."""

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
