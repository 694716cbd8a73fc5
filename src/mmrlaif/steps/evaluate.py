"""The evaluate component's step: a policy artifact's best candidate, reported on the held-out
eval split, validation and the field's benchmarks."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif import artifacts
from mmrlaif.artifacts import CANDIDATES_SUBDIR, FINAL
from mmrlaif.config import TOYWORLD_DATA, Config, selection_benchmark
from mmrlaif.evaluation.evaluate import EvalReport, evaluate_stage
from mmrlaif.evaluation.hallucination.policy import run_benchmarks_on_policy
from mmrlaif.evaluation.select import (
    SELECT_REPORT,
    best_candidate,
    candidate_model,
)
from mmrlaif.io import write_json
from mmrlaif.io.hashes import file_sha256
from mmrlaif.models.load import load_vlm
from mmrlaif.toyworld import WorldPaths

logger = logging.getLogger(__name__)


def benchmark_data(cfg: Config, world_dir: str | Path) -> dict[str, str]:
    """``eval.benchmarks.data`` with ``toyworld`` resolved to the world's AMBER-layout export."""

    amber = str(WorldPaths(Path(world_dir)).amber)
    return {k: amber if v == TOYWORLD_DATA else v for k, v in cfg.eval.benchmarks.data.items()}


def candidate_names(policy_run: str | Path) -> list[str]:
    """A DPO run's candidates in training order: its kept checkpoints, then ``final``."""
    folder = Path(policy_run) / CANDIDATES_SUBDIR
    steps = sorted(
        (p.name for p in folder.glob("step-*") if p.is_dir()) if folder.is_dir() else [],
        key=lambda name: int(name.removeprefix("step-")),
    )
    return [*steps, FINAL]


def selection_figures(
    cfg: Config,
    model_dir: Path,
    loaded: tuple[PreTrainedModel, ProcessorMixin],
    val_prompts: Path,
    data: Mapping[str, str],
    out_dir: Path,
) -> tuple[dict[str, float], EvalReport | None]:
    """The figures ``pipeline.select_metric`` reads for one model, written under ``out_dir``:
    its benchmark's held-out slice (the first ``pipeline.select_items`` items), else the toy
    validation split (whose report is returned too, so that it need not be computed again)."""
    name = selection_benchmark(cfg.pipeline.select_metric)
    if name is None:
        report = evaluate_stage(
            cfg.model,
            cfg.eval,
            model_dir,
            val_prompts,
            None,
            out_dir / artifacts.VAL_REPORT,
            loaded,
        )
        figures = {k: float(v) for k, v in report.objects.to_dict().items() if _is_number(v)}
        return figures, report
    figures, _ = run_benchmarks_on_policy(  # a non-reference figure is logged as such there
        cfg.eval.benchmarks,
        *loaded,
        out_dir,
        names=(name,),
        data={name: data[name]},
        limit=cfg.pipeline.select_items,
    )
    return figures, None


def evaluate_step(
    cfg: Config, policy_run: str | Path, world_dir: str | Path, out_dir: str | Path
) -> tuple[EvalReport, EvalReport]:
    """Evaluate a policy artifact: pick its best candidate, then report it.

    The candidates are the DPO run's kept checkpoints (``pipeline.select_every``) and its final
    model; each is scored on the selection figures (:func:`selection_figures`), written with
    the best one's name to ``select.json``. The best is then evaluated on the held-out eval
    split (with POPE) and on validation (``eval.json``, ``val.json``), and on the field's
    benchmarks (``eval.benchmarks.run``; a benchmark the selection uses leaves its selection
    slice out). ``data.json`` records what the figures were measured on.

    Returns:
        The eval-split report and the validation report of the best candidate.
    """
    world = WorldPaths(Path(world_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = benchmark_data(cfg, world_dir)
    metric = cfg.pipeline.select_metric
    bench = selection_benchmark(metric)
    val_reports: dict[str, EvalReport | None] = {}
    figures: dict[str, dict[str, float]] = {}
    loaded: dict[str, tuple[PreTrainedModel, ProcessorMixin]] = {}
    names = candidate_names(policy_run)
    for name in names:
        model = candidate_model(policy_run, name)
        loaded = {name: _load(cfg, model)}  # one model in memory at a time
        figures[name], val_reports[name] = selection_figures(
            cfg, model, loaded[name], world.prompts("val"), data, out_dir / "select" / name
        )
        logger.info("selection figures of %s: %s", name, figures[name])
    best = best_candidate(metric, figures) if len(names) > 1 else names[-1]
    selection = {"metric": metric, "benchmark": bench, "figures": figures, "best": best}
    if bench is not None:
        selection["items"] = cfg.pipeline.select_items
    write_json(selection, out_dir / SELECT_REPORT)
    model = candidate_model(policy_run, best)
    if best not in loaded:
        loaded = {best: _load(cfg, model)}
    held_out = evaluate_stage(
        cfg.model,
        cfg.eval,
        model,
        world.prompts("eval"),
        world.pope,
        out_dir / artifacts.EVAL_REPORT,
        loaded[best],
    )
    validation = val_reports.get(best)
    if validation is not None:
        write_json(validation.to_dict(), out_dir / artifacts.VAL_REPORT)
    else:
        validation = evaluate_stage(
            cfg.model,
            cfg.eval,
            model,
            world.prompts("val"),
            None,
            out_dir / artifacts.VAL_REPORT,
            loaded[best],
        )
    if cfg.eval.benchmarks.run:  # the field's benchmarks, on the same loaded policy
        skip = {bench: cfg.pipeline.select_items} if bench else {}
        bench_figures, notes = run_benchmarks_on_policy(
            cfg.eval.benchmarks, *loaded[best], out_dir / "benchmarks", data=data, skip=skip
        )
        held_out = dataclasses.replace(held_out, benchmarks=bench_figures, benchmark_notes=notes)
        write_json(held_out.to_dict(), out_dir / artifacts.EVAL_REPORT)
    # what the figures were measured on, so two reports can be told comparable or not
    hashes = {
        "eval_sha": file_sha256(world.prompts("eval")),
        "val_sha": file_sha256(world.prompts("val")),
    }
    if world.pope.is_file():
        hashes["pope_sha"] = file_sha256(world.pope)
    write_json(hashes, out_dir / artifacts.DATA_REPORT)
    return held_out, validation


def _load(cfg: Config, model: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    return load_vlm(model, cfg.model.dtype, cfg.model.trust_remote_code, family=cfg.model.family)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
