"""What the run report shows about a pipeline run, gathered from its output folder and its
iteration history (see :mod:`mmrlaif.tracking.report`).

The output folder is the ``kfp/<pipeline run>/<task>/<output>`` tree that ``kfp.local`` writes
(evaluation reports, stage statistics, pairs and feedback tables, ``dpo.json``); the history is
what the tracking steps pass along. Either may be missing: what is not found stays ``None``.

Each iteration's entry in the history indexes its artifact folders (``artifacts``: report,
candidate report, samples, feedback, pairs, trained policy); that index is followed first, so a
run resumed after a kill, whose earlier tasks ran in another pipeline run folder, is reported
whole. Without it (histories written before the index existed), output folders are recognised
by what they hold (``eval.json``, ``selection.json``, ``dpo.json``, ``<table>.parquet``) and the
iteration of each follows from the order KFP names repeated tasks in (``train-dpo``,
``train-dpo-2``...), which is the order the pipeline unrolls its iterations in.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrlaif import artifacts
from mmrlaif.evaluation.metrics import headline_of

logger = logging.getLogger(__name__)

_TASK = re.compile(r"(?P<base>.+?)(?:-(?P<n>\d+))?")
_TABLES = ("samples", "feedback", "pairs")


@dataclass
class IterationData:
    """What one iteration left behind; ``None`` where its artifact was not found.

    Attributes:
        iteration: 0 for the starting policy.
        headline: Headline figures of the policy carried forward from this iteration.
        candidate: Headline figures of the policy this iteration trained.
        kept_new: Whether the trained policy was carried forward.
        n_pairs: Pairs trained on (from the history when there is no ``dpo.json``).
        skipped_reason: Why training was skipped, if it was.
        sampling: Sampling statistics (``stats.json``).
        labeling: Labeling statistics.
        pairs: Pair building statistics.
        dpo: The DPO report (``dpo.json``: step history, pair counts, skip reason).
        pairs_table: The iteration's pairs table.
        feedback_table: The iteration's feedback table (RLAIF-V only).
        benchmark_notes: Field benchmark -> why its figures are not the reference script's.
    """

    iteration: int
    headline: dict[str, float] = field(default_factory=dict)
    benchmark_notes: dict[str, list[str]] = field(default_factory=dict)
    candidate: dict[str, float] | None = None
    kept_new: bool | None = None
    n_pairs: int | None = None
    skipped_reason: str | None = None
    sampling: dict[str, Any] | None = None
    labeling: dict[str, Any] | None = None
    pairs: dict[str, Any] | None = None
    dpo: dict[str, Any] | None = None
    pairs_table: Path | None = None
    feedback_table: Path | None = None


@dataclass
class RunData:
    """Everything the report shows about one pipeline run.

    Attributes:
        iterations: One entry per iteration, index 0 being the starting policy.
        pipeline_run: The ``kfp`` folder of the run the artifacts came from (``None``: none).
        method: ``rlaifv`` or ``povid`` when known.
        run_id: The MLflow parent run, when known.
        summary: The finish step's summary (``None`` before the run finished).
    """

    iterations: list[IterationData]
    pipeline_run: Path | None = None
    method: str | None = None
    run_id: str | None = None
    summary: dict[str, Any] | None = None


def find_pipeline_run(run_dir: str | Path, run_id: str | None = None) -> Path | None:
    """The folder of one pipeline run's task outputs under a run's output folder.

    Args:
        run_dir: A run's ``run.output_dir`` (runs under ``kfp/``), or one pipeline run folder.
        run_id: Only the pipeline run whose start-tracking task opened this MLflow run.

    Returns:
        ``run_dir`` itself when it holds task folders, else the matching (or the most recently
        changed) folder under ``run_dir/kfp``; ``None`` when there is none.
    """
    run_dir = Path(run_dir)
    if _is_pipeline_run(run_dir):
        return run_dir
    kfp = run_dir / "kfp"
    runs = [p for p in kfp.iterdir() if _is_pipeline_run(p)] if kfp.is_dir() else []
    if run_id is not None:
        runs = [p for p in runs if run_id in _parameter_outputs(p, "start-tracking")]
    return max(runs, key=lambda p: p.stat().st_mtime, default=None)


def parent_run_ids(run_dir: str | Path) -> list[str]:
    """The MLflow parent run ids opened by the pipeline runs under ``run_dir/kfp`` (the
    outputs of their start-tracking tasks), oldest pipeline run first."""
    kfp = Path(run_dir) / "kfp"
    if not kfp.is_dir():
        return []
    runs = sorted((p for p in kfp.iterdir() if _is_pipeline_run(p)), key=lambda p: p.name)
    return [v for run in runs for v in _parameter_outputs(run, "start-tracking")]


def collect_run(
    run_dir: str | Path | None,
    history: Sequence[Mapping[str, Any]] | None = None,
    *,
    run_id: str | None = None,
    method: str | None = None,
    summary: Mapping[str, Any] | None = None,
) -> RunData:
    """Gather a run's figures from its output folder and/or its iteration history.

    Args:
        run_dir: The run's output folder (see :func:`find_pipeline_run`); ``None``: history only.
        history: The tracking steps' entries (``iteration``, ``headline``, ``kept_new``,
            ``pairs``, ``skipped_reason``); read from the run folder when not given.
        run_id: The MLflow parent run (picks the pipeline run folder when there are several).
        method: ``rlaifv`` or ``povid``; from the summary when not given.
        summary: The finish step's summary; read from the run folder when not given.
    """
    run = find_pipeline_run(run_dir, run_id) if run_dir is not None else None
    outputs = _outputs(run) if run is not None else {}
    if run_dir is not None and summary is None:  # the finished run's, by `mmrlaif run`
        copied = _json(Path(run_dir) / artifacts.SUMMARY_FILE)
        if copied.get("iterations") and copied.get("run_id") == (run_id or copied["run_id"]):
            summary = copied
    if run is not None and summary is None:
        summary = _summary(run)
    summary = dict(summary) if summary else None
    if history is None:
        history = (summary or {}).get("iterations") or (_history(run) if run else [])
    entries = {int(e["iteration"]): e for e in history if "iteration" in e}
    evaluated, selected = outputs.get("evaluated", []), outputs.get("selected", [])
    n = max([len(history), len(evaluated), len(selected) + 1, len(outputs.get("trained", []))])
    iterations = []
    for i in range(n):
        entry = entries.get(i, {})
        it = IterationData(i, dict(entry.get("headline") or {}))
        it.kept_new, it.n_pairs = entry.get("kept_new"), entry.get("pairs")
        it.skipped_reason = entry.get("skipped_reason")
        folders = _iteration_folders(entry, outputs, i)
        report = folders.get("report")
        if report is not None:
            it.headline = _headline(report) or it.headline
            notes = _json(report / artifacts.EVAL_REPORT).get("benchmark_notes")
            it.benchmark_notes = notes if isinstance(notes, dict) else {}
            if i > 0 and (report / "selection.json").is_file():
                it.kept_new = _json(report / "selection.json").get("keep_new")
        candidate = folders.get("candidate_report")
        if candidate is not None:
            it.candidate = _headline(candidate) or None
        _fill_stage_outputs(it, folders)
        iterations.append(it)
    method = method or (summary or {}).get("method") or _method_of(run)
    if run_id is None:
        run_id = (summary or {}).get("run_id") or next(
            iter(_parameter_outputs(run, "start-tracking") if run else ()), None
        )
    return RunData(iterations, run, method, run_id, summary)


def _iteration_folders(
    entry: Mapping[str, Any], outputs: Mapping[str, list[Path]], i: int
) -> dict[str, Path]:
    """Iteration ``i``'s artifact folders by role (``report``, ``candidate_report``,
    ``samples``, ``feedback``, ``pairs``, ``trained``).

    From the index its history entry carries (``artifacts``, written by the tracking steps:
    right also when tasks were reused from an earlier, killed attempt of the run and so ran in
    another pipeline run folder); else found in the pipeline run folder by task order.
    """
    index = entry.get("artifacts")
    if isinstance(index, Mapping):
        return {role: Path(path) for role, path in index.items() if isinstance(path, str)}
    if i == 0:
        found = {"report": _at(outputs.get("evaluated", []), 0)}
    else:
        found = {
            "report": _at(outputs.get("selected", []), i - 1),
            "candidate_report": _at(outputs.get("evaluated", []), i),
            **{role: _at(outputs.get(role, []), i - 1) for role in (*_TABLES, "trained")},
        }
    return {role: path for role, path in found.items() if path is not None}


def _fill_stage_outputs(it: IterationData, folders: Mapping[str, Path]) -> None:
    """Fill an iteration's stage statistics, tables and DPO report."""
    for kind, attr in (("samples", "sampling"), ("feedback", "labeling"), ("pairs", "pairs")):
        folder = folders.get(kind)
        if folder is not None:
            setattr(it, attr, artifacts.read_stats(folder) or None)
            if kind in ("pairs", "feedback"):
                setattr(it, f"{kind}_table", folder / f"{kind}.parquet")
    trained = folders.get("trained")
    if trained is not None:
        it.dpo = _json(trained / "dpo.json")
        it.n_pairs = it.dpo.get("n_pairs", it.n_pairs)
        it.skipped_reason = it.dpo.get("skipped_reason", it.skipped_reason)


def _outputs(run: Path) -> dict[str, list[Path]]:
    """Output folders by kind, in task order: ``evaluated`` (base first), ``selected``,
    ``trained``, ``samples``, ``feedback``, ``pairs``."""
    found: dict[str, list[tuple[int, str, Path]]] = {}
    for task in run.iterdir():
        if not task.is_dir():
            continue
        n = int(_TASK.fullmatch(task.name)["n"] or 1)
        for out in task.iterdir():
            kind = _kind(out)
            if kind is not None:
                found.setdefault(kind, []).append((n, task.name, out))
    return {kind: [p for *_, p in sorted(folders)] for kind, folders in found.items()}


def _kind(out: Path) -> str | None:
    if not out.is_dir():
        return None
    if (out / "dpo.json").is_file():
        return "trained"
    if (out / artifacts.EVAL_REPORT).is_file():
        return "selected" if (out / "selection.json").is_file() else "evaluated"
    return next((t for t in _TABLES if (out / f"{t}.parquet").is_file()), None)


def _is_pipeline_run(path: Path) -> bool:
    return path.is_dir() and any((t / "executor_output.json").is_file() for t in path.iterdir())


def _parameter_outputs(run: Path, base: str | None = None) -> Iterable[str]:
    """String outputs of the run's tasks (of tasks named ``base``, ``base-2``... if given)."""
    for task in sorted(run.iterdir()):
        if base is not None and _TASK.fullmatch(task.name)["base"] != base:
            continue
        data = _json(task / "executor_output.json")
        value = data.get("parameterValues", {}).get("Output")
        if isinstance(value, str):
            yield value


def _history(run: Path) -> list[dict[str, Any]]:
    """The longest iteration history a tracking task of the run returned."""
    best: list[dict[str, Any]] = []
    for value in _parameter_outputs(run):
        try:
            entries = json.loads(value)
        except ValueError:
            continue
        if isinstance(entries, list) and all(
            isinstance(e, dict) and "iteration" in e for e in entries
        ):
            best = max(best, entries, key=len)
    return best


def _method_of(run: Path | None) -> str | None:
    """The method from the pipeline run's name (``<pipeline.name>-rlaifv-<time>``).

    Runs before ``summary.json`` named the method; ``rlaif-v`` is the name they had then.
    """
    name = run.name if run is not None else ""
    if "-povid-" in name:
        return "povid"
    return "rlaifv" if "-rlaifv-" in name or "-rlaif-v-" in name else None


def _summary(run: Path) -> dict[str, Any] | None:
    for path in sorted(run.glob("*/summary")):
        data = _json(path)
        if "iterations" in data:
            return data
    return None


def _headline(report_dir: Path) -> dict[str, float]:
    """Headline figures of a report folder's ``eval.json`` (empty when it has none)."""
    try:
        return headline_of(_json(report_dir / artifacts.EVAL_REPORT))
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning("no headline figures in %s: %r", report_dir, exc)
        return {}


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        logger.warning("not JSON, left out of the report: %s", path)
        return {}
    return data if isinstance(data, dict) else {}


def _at(items: Sequence[Path], index: int) -> Path | None:
    return items[index] if 0 <= index < len(items) else None
