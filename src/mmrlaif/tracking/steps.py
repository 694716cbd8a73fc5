"""The pipeline's tracking steps over its artifacts: start, log an iteration, finish, register.

The iteration history travels between steps as JSON text (one entry per iteration: the
headline figures of the policy carried forward), so the last step can plot and summarise the
whole run without querying the tracking server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from mmrlaif import artifacts
from mmrlaif.config import Config, config_to_yaml, to_dict
from mmrlaif.tracking.mlflow_run import finish_pipeline_run, log_iteration, start_pipeline_run
from mmrlaif.tracking.records import flat_counters, pairs_sample
from mmrlaif.tracking.registry import register_model
from mmrlaif.tracking.uri import resolve_tracking_uri

logger = logging.getLogger(__name__)

#: Environment variable carrying the source revision into containers (set by the image build).
GIT_SHA_ENV = "MMRLAIF_GIT_SHA"


def tracking_uri(cfg: Config) -> str:
    """The run's tracking URI (environment, then config, then a local store in the run folder)."""
    return resolve_tracking_uri(cfg.tracking.uri, cfg.run.output_dir)


def config_hash(cfg: Config) -> str:
    """Short content hash of the resolved configuration."""
    return hashlib.sha256(config_to_yaml(cfg).encode()).hexdigest()[:12]


def start_step(cfg: Config, run_name: str | None = None) -> str:
    """Open the parent run of a pipeline run; returns its id."""
    name = run_name or f"{cfg.pipeline.name}-{cfg.pipeline.method}-{time.strftime('%Y%m%d-%H%M%S')}"
    tags = {
        "method": cfg.pipeline.method,
        "iterations": str(cfg.pipeline.iterations),
        "labeler": cfg.labeling.labeler,
        "config_hash": config_hash(cfg),
    }
    if os.environ.get(GIT_SHA_ENV):
        tags["git_sha"] = os.environ[GIT_SHA_ENV]
    return start_pipeline_run(tracking_uri(cfg), cfg.tracking.experiment, name, to_dict(cfg), tags)


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
    from mmrlaif.evaluation.metrics import headline_of

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
    records = {}
    if pairs_dir is not None:
        feedback = artifacts.table(feedback_dir, "feedback") if feedback_dir else None
        records["pairs_sample"] = pairs_sample(
            artifacts.table(pairs_dir, "pairs"),
            feedback,
            cfg.tracking.pairs_sample,
            artifacts.iteration_seed(cfg.run.seed, iteration),
        )
    log_iteration(
        tracking_uri(cfg),
        run_id,
        iteration,
        stats=stats,
        step_history=dpo.get("history"),
        eval_report=_read_json(report_dir / artifacts.EVAL_REPORT),
        headline=headline,
        artifacts={"reports": report_dir},
        records=records,
        skipped_reason=dpo.get("skipped_reason"),
    )
    entries = json.loads(history) if history else []
    entries.append(
        {
            "iteration": iteration,
            "headline": headline,
            "kept_new": selection.get("keep_new"),
            "pairs": dpo.get("n_pairs"),
            "skipped_reason": dpo.get("skipped_reason"),
        }
    )
    return json.dumps(entries)


def finish_step(cfg: Config, run_id: str, history: str, status: str = "FINISHED") -> dict:
    """Close the parent run: plot, summary, final figures. Returns the summary."""
    entries = json.loads(history)
    headlines = [e["headline"] for e in entries]
    summary = {
        "method": cfg.pipeline.method,
        "iterations": entries,
        "base": headlines[0] if headlines else {},
        "final": headlines[-1] if headlines else {},
        "tracking_uri": tracking_uri(cfg),
        "run_id": run_id,
    }
    finish_pipeline_run(tracking_uri(cfg), run_id, headlines, status, summary)
    return summary


def register_step(cfg: Config, run_id: str, policy_run: str | Path) -> str | None:
    """Register the final policy under ``tracking.registered_model``; returns the version."""
    if not cfg.tracking.registered_model:
        logger.info("tracking.registered_model is null: nothing registered")
        return None
    tags = {"method": cfg.pipeline.method, "config_hash": config_hash(cfg)}
    return register_model(
        tracking_uri(cfg),
        run_id,
        artifacts.model_dir(policy_run),
        cfg.tracking.registered_model,
        tags,
    )
