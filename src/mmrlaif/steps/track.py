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
from mmrlaif.config.selection import BENCHMARK_NAMES
from mmrlaif.evaluation.metrics import headline_of
from mmrlaif.evaluation.select import SELECT_METRICS, SELECT_REPORT, metric_value
from mmrlaif.io.hashes import file_sha256, tree_sha256
from mmrlaif.tracking import _mlflow as mf
from mmrlaif.tracking.lineage import MODEL_SHA_TAG, metric_tags, short
from mmrlaif.tracking.mlflow_run import finish_pipeline_run, log_iteration, start_pipeline_run
from mmrlaif.tracking.records import flat_counters, pairs_sample
from mmrlaif.tracking.registry import register_model
from mmrlaif.tracking.report import write_and_log_report
from mmrlaif.tracking.uri import redact_uri, tracking_uri

logger = logging.getLogger(__name__)

#: Environment variable carrying the source revision into containers (set by the image build).
GIT_SHA_ENV = "MMRLAIF_GIT_SHA"


def config_hash(cfg: Config) -> str:
    """Short content hash of the resolved configuration."""
    return hashlib.sha256(config_to_yaml(cfg).encode()).hexdigest()[:12]


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
    ``import/skipped/<reason>`` and the tag ``prompt_import`` (one line, for the summary).

    Returns:
        The tags set.
    """
    from mmrlaif.artifacts import IMPORT_REPORT
    from mmrlaif.continual import lineage

    tags = lineage(world_dir, base_run)
    stats = _read_json(Path(world_dir) / IMPORT_REPORT)
    client = mf.client(tracking_uri(cfg))
    if stats:
        tags["prompt_import"] = import_line(stats)
        metrics = [mf.metric("import/rows", stats["rows"]), mf.metric("import/kept", stats["kept"])]
        metrics += [mf.metric(f"import/skipped/{k}", v) for k, v in stats["skipped"].items()]
        mf.log_metrics(client, run_id, metrics)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    return tags


def import_line(stats: dict[str, Any]) -> str:
    """One line on an import of prompts: ``kept 98 of 100 rows from X; skipped: image too
    large 1, empty question 1``."""
    line = f"kept {stats['kept']} of {stats['rows']} rows from {stats['source']}"
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(stats["skipped"].items()))
    return f"{line}; skipped: {skipped}" if skipped else line


def benchmark_tags(eval_report: dict[str, Any]) -> dict[str, str]:
    """MLflow tags saying, per field benchmark of an ``eval.json``, whether its figures are the
    reference script's: ``benchmark.<name>.reference`` (``true``/``false``) and, when not,
    ``benchmark.<name>.approximate`` (why)."""
    notes = eval_report.get("benchmark_notes") or {}
    figures = eval_report.get("benchmarks") or {}
    ran = {n for n in BENCHMARK_NAMES if any(key.startswith(f"{n}_") for key in figures)}
    tags = {}
    names = ran | set(notes)
    for name in sorted(names):
        tags[f"benchmark.{name}.reference"] = "false" if name in notes else "true"
        if name in notes:
            tags[f"benchmark.{name}.approximate"] = "; ".join(notes[name])
    return tags


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
        version, _ = _register(
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


def checker_accuracy(cfg: Config, entries: list[dict[str, Any]]) -> float | None:
    """POPE adversarial accuracy of the model that labeled this iteration's answers.

    The frozen starting policy (``labeling.labeler: initial``) is iteration 0's policy; the
    current policy (``policy``) is the one the previous iteration carried forward. A separate
    labeler (a checkpoint or an endpoint) is not evaluated here: ``None``.
    """
    if not entries or "pope_adversarial_accuracy" not in entries[0]["headline"]:
        return None
    if cfg.labeling.labeler == "initial":
        return entries[0]["headline"]["pope_adversarial_accuracy"]
    if cfg.labeling.labeler == "policy":
        return entries[-1]["headline"].get("pope_adversarial_accuracy")
    return None


def _table_sha(folder: str | Path | None, name: str) -> str:
    path = artifacts.table(folder, name) if folder is not None else None
    return short(file_sha256(path)) if path is not None and path.is_file() else ""


def version_tags(
    cfg: Config, pipeline_run_id: str, model: Path, report_dir: str | Path
) -> dict[str, str]:
    """Tags of a model version: lineage (git sha, config and data hashes) and its figures."""
    tags = {
        "method": cfg.pipeline.method,
        "config_hash": config_hash(cfg),
        "pipeline_run_id": pipeline_run_id,
        MODEL_SHA_TAG: short(tree_sha256(model)),
    }
    if os.environ.get(GIT_SHA_ENV):
        tags["git_sha"] = os.environ[GIT_SHA_ENV]
    data = _read_json(Path(report_dir) / artifacts.DATA_REPORT)
    tags.update({f"data.{k}": short(v) for k, v in data.items()})
    report = _read_json(Path(report_dir) / artifacts.EVAL_REPORT)
    tags.update(metric_tags(headline_of(report)))
    tags.update(benchmark_tags(report))
    parent = mf.client(tracking_uri(cfg)).get_run(pipeline_run_id).data.tags
    tags.update({k: v for k, v in parent.items() if k.startswith("lineage.")})
    return tags


def _register(
    cfg: Config,
    run_id: str,
    pipeline_run_id: str,
    policy_run: str | Path,
    report_dir: str | Path,
    extra: dict[str, str] | None = None,
) -> tuple[str | None, str]:
    """Register a policy folder as a version of ``tracking.registered_model`` (if set), unless
    its figures rule it out (:func:`~mmrlaif.tracking.gate.unfit_reasons`: not finite, or under
    the gate's floors), which is logged and tagged on ``run_id`` instead.

    Returns:
        The version (``None`` when nothing was registered) and why not ('' when it was).
    """
    from mmrlaif.tracking.gate import unfit_reasons

    if not cfg.tracking.registered_model:
        return None, "tracking.registered_model is null"
    unfit = unfit_reasons(
        headline_of(_read_json(Path(report_dir) / artifacts.EVAL_REPORT)), cfg.tracking.gate
    )
    if unfit:
        reason = "; ".join(unfit)
        logger.warning("%s not registered: %s", policy_run, reason)
        mf.client(tracking_uri(cfg)).set_tag(run_id, "not_registered", reason)
        return None, reason
    model = artifacts.model_dir(policy_run)
    tags = version_tags(cfg, pipeline_run_id, model, report_dir) | dict(extra or {})
    name = cfg.tracking.registered_model
    return register_model(tracking_uri(cfg), run_id, model, name, tags), ""


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
    prompt_import = mf.client(tracking_uri(cfg)).get_run(run_id).data.tags.get("prompt_import")
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
    from mmrlaif.continual.prompts import REPORT, advance

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
    result = _register_and_gate(cfg, run_id, history, policy_run, report_dir)
    if consumed is not None and consumed.is_file():
        advanced = advance(cfg, consumed, run_id)
        result["watermark"] = advanced.watermark_after if advanced else None
    return result


def _register_and_gate(
    cfg: Config, run_id: str, history: str, policy_run: str | Path, report_dir: str | Path
) -> dict[str, Any]:
    from mmrlaif.tracking.gate import promote_version

    name = cfg.tracking.registered_model
    uri = tracking_uri(cfg)
    client = mf.client(uri)
    sha = short(tree_sha256(artifacts.model_dir(policy_run)))
    registered = [str(e["version"]) for e in json.loads(history or "[]") if e.get("version")]
    version = next(
        (v for v in registered if client.get_model_version(name, v).tags.get(MODEL_SHA_TAG) == sha),
        None,
    )
    if version is None:
        version, why_not = _register(cfg, run_id, run_id, policy_run, report_dir)
        if version is None:
            return {"version": None, "promoted": False, "reason": f"not registered: {why_not}"}
    client.set_model_version_tag(name, version, "final", "true")
    if not cfg.tracking.gate.enabled:
        return {"version": version, "promoted": False, "reason": "gate disabled"}
    decision = promote_version(uri, name, version, cfg.tracking.gate, running_run=run_id)
    return {"version": version, "promoted": decision.promoted, "reason": decision.reason}


def close_unfinished_runs(cfg: Config, status: str, reason: str) -> list[str]:
    """Close the MLflow parent runs of ``run.output_dir``'s pipeline runs that are still
    ``RUNNING`` (a task failed, the run was interrupted, or an earlier run was killed):
    status ``status`` (``FAILED`` or ``KILLED``) and tag ``terminated_reason``.

    Returns:
        The run ids closed.
    """
    from mlflow.exceptions import MlflowException

    from mmrlaif.tracking.report import parent_run_ids

    ids = parent_run_ids(cfg.run.output_dir)
    if not ids:
        return []
    client = mf.client(tracking_uri(cfg))
    closed = []
    for run_id in ids:
        try:
            if client.get_run(run_id).info.status != "RUNNING":
                continue
            client.set_tag(run_id, "terminated_reason", reason)
            client.set_terminated(run_id, status=status)
        except MlflowException as exc:
            logger.warning("could not close MLflow run %s: %s", run_id, exc)
            continue
        logger.warning("MLflow run %s closed as %s: %s", run_id, status, reason)
        closed.append(run_id)
    return closed
