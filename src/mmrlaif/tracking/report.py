"""A report per pipeline run: one self-contained HTML page that people read.

The page is built from the run's output folder, the ``kfp/<pipeline run>/<task>/<output>``
tree that ``kfp.local`` writes (evaluation reports, stage statistics, pairs and feedback tables,
``dpo.json``), and from the iteration history the tracking steps pass along. Either may be
missing: a section without its data says "not available" instead of failing the page. Plots
are PNGs drawn with matplotlib's Agg canvas (no pyplot, no global backend switch) and embedded
as ``data:`` URIs, so the file has no external references and no scripts.

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
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrlaif import artifacts
from mmrlaif.evaluation.metrics import headline_of
from mmrlaif.io import atomic_path, read_rows, read_table
from mmrlaif.tracking import _report_html as page

logger = logging.getLogger(__name__)

#: File name of the report, written in the run's output folder.
REPORT_NAME = "report.html"

_TASK = re.compile(r"(?P<base>.+?)(?:-(?P<n>\d+))?")
_TABLES = ("samples", "feedback", "pairs")
_VERDICTS = ("prompt_id", "sample_idx", "claims", "questions", "p_yes", "accepted", "score")


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


def write_report(
    run_dir: str | Path | None,
    out: str | Path | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    *,
    run_id: str | None = None,
    method: str | None = None,
    summary: Mapping[str, Any] | None = None,
    examples: int = 3,
) -> Path:
    """Build the report of a run and write it atomically.

    Args:
        run_dir: The run's output folder; ``None`` builds from ``history`` alone.
        out: The HTML file (default ``<run_dir>/report.html``).
        history: See :func:`collect_run`.
        run_id: See :func:`collect_run`.
        method: See :func:`collect_run`.
        summary: See :func:`collect_run`.
        examples: Example pairs shown per iteration.

    Returns:
        The written path.

    Raises:
        FileNotFoundError: ``run_dir`` is given but is not a folder.
        ValueError: Neither ``run_dir`` nor ``out`` is given.
    """
    if run_dir is not None and not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    if out is None and run_dir is None:
        raise ValueError("write_report needs run_dir or out")
    path = Path(out) if out is not None else Path(run_dir) / REPORT_NAME
    data = collect_run(run_dir, history, run_id=run_id, method=method, summary=summary)
    text = render_report(data, examples=examples)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)  # a page to read (the temporary file is created private)
    logger.info("wrote the run report (%d iterations) to %s", len(data.iterations), path)
    return path


def write_and_log_report(
    uri: str,
    run_id: str,
    output_dir: str | Path,
    history: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any] | None = None,
) -> Path | None:
    """The finish step's report: write ``<output_dir>/report.html``, log it on the MLflow run.

    Where ``output_dir`` holds no local pipeline run (a cluster run, whose artifacts live in
    object storage) the report is built from ``history`` alone; an ``s3://`` output folder gets
    it on MLflow only. A failure is logged, never raised: the report must not fail a run whose
    models are trained and registered already.

    Args:
        uri: Tracking URI.
        run_id: The parent run; the report is logged as its artifact ``report.html``.
        output_dir: The run's ``run.output_dir``.
        history: The iterations' entries.
        summary: The finish step's summary (method, registration).

    Returns:
        The written file (``None`` when it could not be written or was written to a temporary
        folder only).
    """
    import tempfile

    from mmrlaif.io import is_s3
    from mmrlaif.tracking import _mlflow as mf

    try:
        local = not is_s3(str(output_dir))
        with tempfile.TemporaryDirectory(prefix="mmrlaif-report-") as tmp:
            out = Path(output_dir if local else tmp) / REPORT_NAME
            run_dir = output_dir if local and Path(output_dir).is_dir() else None
            path = write_report(run_dir, out, history, run_id=run_id, summary=summary)
            mf.client(uri).log_artifact(run_id, str(path))
        return path if local else None
    except Exception:
        logger.warning("the run report could not be written or logged", exc_info=True)
        return None


def render_report(data: RunData, examples: int = 3) -> str:
    """The report of ``data`` as one HTML document (no external references, no scripts)."""
    sections = [
        ("Hallucination by iteration", lambda: page.hallucination_section(data.iterations)),
        ("POPE by iteration", lambda: page.pope_section(data.iterations)),
        ("Pairs by iteration", lambda: page.pairs_section(data.iterations)),
        ("AI feedback (labeling)", lambda: _labeling(data)),
        ("DPO training", lambda: page.dpo_section(data.iterations)),
        ("Example pairs", lambda: _examples(data, examples)),
    ]
    if any(k.startswith("bench_") for it in data.iterations for k in it.headline):
        sections.insert(2, ("Field benchmarks", lambda: page.benchmarks_section(data.iterations)))
    body = [page.header(data, time.strftime("%Y-%m-%d %H:%M:%S"))]
    body += [_section(title, build) for title, build in sections]
    return page.document(f"mmrlaif run report: {data.method or 'pipeline'}", "\n".join(body))


def _section(title: str, build: Callable[[], str | None]) -> str:
    """A titled section; a builder that returns ``None`` or raises gives "not available"."""
    try:
        content = build()
    except Exception as exc:  # a broken artifact costs its section, not the page
        logger.warning("report section %r not available: %s", title, exc, exc_info=True)
        content = page.not_available(f"could not be built ({type(exc).__name__}: {exc})")
    return page.section(title, content if content is not None else page.not_available())


def _labeling(data: RunData) -> str | None:
    rows = []
    for it in data.iterations[1:]:
        if it.labeling is None and it.feedback_table is None:
            continue
        stats = dict(it.labeling or {})
        if it.feedback_table is not None:
            verdicts = [
                v for r in read_rows(it.feedback_table, ["accepted"]) for v in r["accepted"] or ()
            ]
            stats["rejected_claims"] = (
                sum(not v for v in verdicts) / len(verdicts) if verdicts else None
            )
        rows.append((it.iteration, stats))
    if not rows:
        reason = "this run has no labeling feedback"
        return page.not_available(
            f"{reason} (POVID builds its pairs without it)" if data.method == "povid" else reason
        )
    return page.labeling_table(rows)


def _examples(data: RunData, k: int) -> str | None:
    tables = [(it.iteration, it) for it in data.iterations[1:] if it.pairs_table is not None]
    if not tables:
        return None
    shown = [
        (i, row)
        for i, it in tables
        for row in example_pairs(it.pairs_table, it.feedback_table, k, seed=i)
    ]
    return page.examples_section(shown) if shown else page.not_available("the run built no pairs")


def example_pairs(
    pairs_table: str | Path, feedback_table: str | Path | None, k: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Up to ``k`` pairs to show, seeded: pairs whose rejected answer has a rejected claim
    first, one per prompt before any prompt repeats.

    Returns:
        Pair rows (image columns left out) with ``image`` (the first image's bytes or ``None``)
        and, for RLAIF-V pairs, ``chosen_feedback`` / ``rejected_feedback``: the answer's claims,
        questions, P(yes), verdicts and score.
    """
    import pyarrow.parquet as pq

    names = pq.read_schema(pairs_table).names
    rows = read_rows(pairs_table, [c for c in names if c not in ("images", "image")])
    feedback: dict[tuple[str, int], dict[str, Any]] = {}
    if feedback_table is not None and Path(feedback_table).is_file():
        for row in read_rows(feedback_table, _VERDICTS):
            feedback[(str(row["prompt_id"]), int(row["sample_idx"]))] = row
    for row in rows:
        for side in ("chosen", "rejected"):
            idx = row.get(f"{side}_idx")
            verdict = feedback.get((str(row["prompt_id"]), int(idx))) if idx is not None else None
            if verdict is not None:
                row[f"{side}_feedback"] = verdict
    rng = random.Random(seed)
    flagged = [i for i, r in enumerate(rows) if _has_rejected_claim(r)]
    rest = sorted(set(range(len(rows))) - set(flagged))
    order = rng.sample(flagged, len(flagged)) + rng.sample(rest, len(rest))
    first: list[int] = []
    repeats: list[int] = []
    seen: set[str] = set()
    for i in order:
        prompt = str(rows[i].get("prompt_id"))
        (repeats if prompt in seen else first).append(i)
        seen.add(prompt)
    picked = sorted((first + repeats)[: max(k, 0)])
    images = _images(pairs_table, names, picked)
    return [rows[i] | {"image": image} for i, image in zip(picked, images, strict=True)]


def _has_rejected_claim(row: Mapping[str, Any]) -> bool:
    return False in ((row.get("rejected_feedback") or {}).get("accepted") or [])


def _images(pairs_table: str | Path, names: Sequence[str], indices: Sequence[int]) -> list:
    column = "images" if "images" in names else "image" if "image" in names else None
    if column is None or not indices:
        return [None] * len(indices)
    cells = read_table(pairs_table, [column]).column(column).take(list(indices)).to_pylist()
    out = []
    for cell in cells:
        cell = cell[0] if isinstance(cell, list) and cell else cell
        out.append(cell.get("bytes") if isinstance(cell, Mapping) else None)
    return out


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
    """The method from the pipeline run's name (``<pipeline.name>-rlaif-v-<time>``)."""
    name = run.name if run is not None else ""
    return "povid" if "-povid-" in name else "rlaifv" if "-rlaif-v-" in name else None


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


__all__ = [
    "REPORT_NAME",
    "IterationData",
    "RunData",
    "collect_run",
    "example_pairs",
    "find_pipeline_run",
    "render_report",
    "write_and_log_report",
    "write_report",
]
