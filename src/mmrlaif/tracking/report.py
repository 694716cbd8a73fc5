"""A report per pipeline run: one self-contained HTML page that people read.

The page is built from the run's output folder, the ``kfp/<pipeline run>/<task>/<output>``
tree that ``kfp.local`` writes (evaluation reports, stage statistics, pairs and feedback tables,
``dpo.json``), and from the iteration history the tracking steps pass along. Either may be
missing: a section without its data says "not available" instead of failing the page. Plots
are PNGs drawn with matplotlib's Agg canvas (no pyplot, no global backend switch) and embedded
as ``data:`` URIs, so the file has no external references and no scripts.

This module is the report's public face: :func:`write_report`, :func:`write_and_log_report`
and :func:`render_report`. What the report shows is gathered by
:mod:`mmrlaif.tracking.report_data` (:func:`collect_run`), rendered by
:mod:`mmrlaif.tracking.report_html`, with figures from :mod:`mmrlaif.tracking.plotting` and
example pairs from :mod:`mmrlaif.tracking.report_pairs`; their public names are importable
from here.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmrlaif.io import atomic_path, is_s3, read_rows
from mmrlaif.tracking import mlflow_client as mf
from mmrlaif.tracking import report_html as page
from mmrlaif.tracking.report_data import IterationData, RunData, collect_run, find_pipeline_run
from mmrlaif.tracking.report_pairs import example_pairs, examples_section

logger = logging.getLogger(__name__)

#: File name of the report, written in the run's output folder.
REPORT_NAME = "report.html"


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
    return examples_section(shown) if shown else page.not_available("the run built no pairs")


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
