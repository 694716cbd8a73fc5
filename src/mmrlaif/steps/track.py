"""The pipeline's tracking steps over its artifacts: start, log an iteration, finish, register.

The iteration history travels between steps as JSON text (one entry per iteration: the
headline figures of the policy carried forward), so the last step can plot and summarise the
whole run without querying the tracking server.

The steps read the artifacts and hand them to :mod:`mmrlaif.tracking`, which talks to MLflow:
:mod:`~mmrlaif.tracking.mlflow_run` (the runs), :mod:`~mmrlaif.tracking.lineage` (lineage
tags), :mod:`~mmrlaif.tracking.records` (what an iteration logs besides metrics) and
:mod:`~mmrlaif.tracking.versions` (the model versions registered and gated).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from mmrlaif import artifacts
from mmrlaif.artifacts import IMPORT_REPORT
from mmrlaif.config import Config, to_dict
from mmrlaif.continual import lineage
from mmrlaif.continual.partitions import REPORT, advance
from mmrlaif.evaluation.metrics import headline_of
from mmrlaif.evaluation.select import SELECT_METRICS, SELECT_REPORT, metric_value
from mmrlaif.io.hashes import file_sha256
from mmrlaif.tracking.lineage import (
    GIT_SHA_ENV,
    benchmark_tags,
    config_hash,
    log_lineage,
    prompt_import_tag,
    short,
)
from mmrlaif.tracking.mlflow_run import finish_pipeline_run, log_iteration, start_pipeline_run
from mmrlaif.tracking.records import checker_accuracy, flat_counters, pairs_sample
from mmrlaif.tracking.report import write_and_log_report
from mmrlaif.tracking.uri import redact_uri, tracking_uri
from mmrlaif.tracking.versions import register_final, register_policy

logger = logging.getLogger(__name__)


def start_step(cfg: Config, run_name: str | None = None, run_date: str = "") -> str:
    """Open the parent run of a pipeline run; returns its id.

    Args:
        cfg: The run's configuration (logged as parameters).
        run_name: Name of the run (default: pipeline name, method and the time).
        run_date: The scheduled date of a recurring run, tagged ``run_date`` when given.
    """
    name = run_name or f"{cfg.pipeline.name}-{cfg.pipeline.method}-{time.strftime('%Y%m%d-%H%M%S')}"
    tags = {
        "method": cfg.pipeline.method,
        "iterations": str(cfg.pipeline.iterations),
        "labeler": cfg.labeling.labeler,
        "config_hash": config_hash(cfg),
    }
    if os.environ.get(GIT_SHA_ENV):
        tags["git_sha"] = os.environ[GIT_SHA_ENV]
    if run_date:
        tags["run_date"] = run_date
    return start_pipeline_run(tracking_uri(cfg), cfg.tracking.experiment, name, to_dict(cfg), tags)


def record_lineage_step(
    cfg: Config, run_id: str, world_dir: str | Path, base_run: str | Path
) -> dict[str, str]:
    """Tag the parent run with where its starting policy came from and what data it consumed
    (:func:`mmrlaif.continual.lineage`); every version the run registers copies these tags.
    An import of ``data.align_prompts`` is logged too: metrics ``import/rows``, ``import/kept``,
    ``import/skipped/<reason>`` and the tag ``prompt_import`` (one line, for the summary;
    :func:`~mmrlaif.tracking.lineage.log_lineage`).

    Returns:
        The tags set.
    """
    tags = lineage(world_dir, base_run)
    stats = _read_json(Path(world_dir) / IMPORT_REPORT)
    return log_lineage(tracking_uri(cfg), run_id, tags, stats)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def log_iteration_step(
    cfg: Config,
    run_id: str,
    iteration: int,
    history: str,
    report_dir: str | Path,
    samples_dir: str | Path | None = None,
    feedback_dir: str | Path | None = None,
    pairs_dir: str | Path | None = None,
    trained_run: str | Path | None = None,
    candidate_report_dir: str | Path | None = None,
) -> str:
    """Log one iteration from its artifacts to the child run ``iteration-<i>``.

    Args:
        cfg: The run's configuration.
        run_id: The parent run.
        iteration: 0 for the starting policy.
        history: JSON list of the previous iterations' entries.
        report_dir: Reports of the policy carried forward (``selection.json`` inside when
            the iteration chose between two).
        samples_dir: Sampling output (stats).
        feedback_dir: Labeling output (stats, claims and verdicts of the logged pairs).
        pairs_dir: Pairs output (stats, the logged sample of pairs).
        trained_run: The DPO run folder (``dpo.json``: step history, skip reason).
        candidate_report_dir: Reports of the policy this iteration trained.

    Returns:
        The history with this iteration's entry appended, as JSON.
    """
    report_dir = Path(report_dir)
    headline = headline_of(_read_json(report_dir / artifacts.EVAL_REPORT))
    stats: dict[str, dict[str, float]] = {}
    for group, folder in (("sampling", samples_dir), ("labeling", feedback_dir)):
        if folder is not None:
            stats[group] = flat_counters(artifacts.read_stats(folder))
    if pairs_dir is not None:
        stats["pairs"] = flat_counters(artifacts.read_stats(pairs_dir))
    dpo = _read_json(Path(trained_run) / "dpo.json") if trained_run is not None else {}
    if dpo:
        stats["dpo"] = flat_counters({k: dpo[k] for k in ("n_pairs", "seconds", "sources")})
    selection = _read_json(report_dir / "selection.json")
    if selection:
        stats["selection"] = flat_counters(selection)
    if candidate_report_dir is not None:
        candidate = headline_of(_read_json(Path(candidate_report_dir) / artifacts.EVAL_REPORT))
        stats["candidate"] = candidate
        weighed = _read_json(Path(candidate_report_dir) / SELECT_REPORT)
        if weighed.get("metric") in SELECT_METRICS:  # each checkpoint's selection figure
            stats["checkpoints"] = {
                name: metric_value(weighed["metric"], figures)
                for name, figures in weighed["figures"].items()
            }
    entries = json.loads(history) if history else []
    checker = checker_accuracy(cfg, entries)
    if iteration > 0 and checker is not None:
        stats["checker"] = {"pope_adversarial_accuracy": checker}
    records = {}
    if pairs_dir is not None:
        feedback = artifacts.table(feedback_dir, "feedback") if feedback_dir else None
        records["pairs_sample"] = pairs_sample(
            artifacts.table(pairs_dir, "pairs"),
            feedback,
            cfg.tracking.pairs_sample,
            artifacts.iteration_seed(cfg.run.seed, iteration),
        )
    eval_report = _read_json(report_dir / artifacts.EVAL_REPORT)
    child_id = log_iteration(
        tracking_uri(cfg),
        run_id,
        iteration,
        tags=benchmark_tags(eval_report),
        stats=stats,
        step_history=dpo.get("history"),
        eval_report=eval_report,
        headline=headline,
        artifacts={"reports": report_dir},
        records=records,
        skipped_reason=dpo.get("skipped_reason"),
    )
    version = None
    if (
        cfg.tracking.register_iterations
        and trained_run is not None
        and candidate_report_dir is not None
        and not dpo.get("skipped_reason")
    ):
        version, _ = register_policy(
            cfg,
            child_id,
            run_id,
            trained_run,
            candidate_report_dir,
            {"iteration": str(iteration), "data.pairs_sha": _table_sha(pairs_dir, "pairs")},
        )
    entries.append(
        {
            "iteration": iteration,
            "headline": headline,
            "checker_accuracy": checker,
            "kept_new": selection.get("keep_new"),
            "pairs": dpo.get("n_pairs"),
            "skipped_reason": dpo.get("skipped_reason"),
            "version": version,
            # where the report finds this iteration's artifacts (tasks reused from a killed
            # attempt of the run ran in another pipeline run folder)
            "artifacts": {
                role: str(path)
                for role, path in (
                    ("report", report_dir),
                    ("candidate_report", candidate_report_dir),
                    ("samples", samples_dir),
                    ("feedback", feedback_dir),
                    ("pairs", pairs_dir),
                    ("trained", trained_run),
                )
                if path is not None
            },
        }
    )
    return json.dumps(entries)


def _table_sha(folder: str | Path | None, name: str) -> str:
    path = artifacts.table(folder, name) if folder is not None else None
    return short(file_sha256(path)) if path is not None and path.is_file() else ""


def finish_step(
    cfg: Config, run_id: str, history: str, registration: str = "", status: str = "FINISHED"
) -> dict:
    """Close the parent run: plot, summary, final figures, the run report. Returns the summary.

    The report (:mod:`mmrlaif.tracking.report`) goes to ``<run.output_dir>/report.html`` and
    to the parent run as the artifact ``report.html``; a failure to build it is only logged.

    Args:
        cfg: The run's configuration.
        run_id: The parent run.
        history: JSON list of the iterations' entries.
        registration: JSON of :func:`register_step`'s result ('' when nothing was registered).
        status: Final status of the parent run.
    """
    entries = json.loads(history)
    headlines = [e["headline"] for e in entries]
    summary = {
        "method": cfg.pipeline.method,
        "iterations": entries,
        "base": headlines[0] if headlines else {},
        "final": headlines[-1] if headlines else {},
        "tracking_uri": redact_uri(tracking_uri(cfg)),
        "run_id": run_id,
        "registration": json.loads(registration) if registration else None,
    }
    prompt_import = prompt_import_tag(tracking_uri(cfg), run_id)
    if prompt_import:
        summary["prompt_import"] = prompt_import
    write_and_log_report(tracking_uri(cfg), run_id, cfg.run.output_dir, entries, summary)
    finish_pipeline_run(tracking_uri(cfg), run_id, headlines, status, summary)
    return summary


def register_step(
    cfg: Config,
    run_id: str,
    history: str,
    policy_run: str | Path,
    report_dir: str | Path,
    world_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Register the final policy and run the promotion gate on it.

    The final policy is usually one of the iteration versions registered already (listed in
    ``history``, with the same ``model_sha``): that version is reused, not registered twice.
    A continual run (``data.prompts_prefix``) that found no new prompts registers nothing; one
    that did advances the watermark once the gate has decided (promoted or rejected: the run
    succeeded and its prompts are consumed).

    Args:
        cfg: The run's configuration.
        run_id: The parent run.
        history: JSON list of the iterations' entries.
        policy_run: The final policy's folder.
        report_dir: Its reports.
        world_dir: The world step's folder (``continual.json`` of a continual run).

    Returns:
        ``{"version": ..., "promoted": ..., "reason": ...}`` (``version`` ``None`` when
        ``tracking.registered_model`` is null or a continual run had nothing new).
    """
    name = cfg.tracking.registered_model
    if not name:
        logger.info("tracking.registered_model is null: nothing registered")
        return {"version": None, "promoted": False, "reason": "registration off"}
    consumed = Path(world_dir) / REPORT if world_dir is not None else None
    if consumed is not None and consumed.is_file():
        report = json.loads(consumed.read_text())
        if not report["new_prompts"]:
            logger.info("%s", report["message"])
            return {"version": None, "promoted": False, "reason": report["message"]}
    result = register_final(cfg, run_id, history, policy_run, report_dir)
    if consumed is not None and consumed.is_file():
        advanced = advance(cfg, consumed, run_id)
        result["watermark"] = advanced.watermark_after if advanced else None
    return result
