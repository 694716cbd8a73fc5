"""The policy versions a pipeline run registers in ``tracking.registered_model``.

A policy folder becomes a model version tagged with its lineage and figures
(:func:`version_tags`), unless its own figures rule it out (:func:`register_policy`). The final
policy reuses the iteration version with the same weights when there is one, is tagged
``final`` and goes through the promotion gate (:func:`register_final`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from mmrlaif import artifacts
from mmrlaif.config import Config
from mmrlaif.evaluation.metrics import headline_of
from mmrlaif.io.hashes import tree_sha256
from mmrlaif.tracking import mlflow_client as mf
from mmrlaif.tracking.gate import promote_version, unfit_reasons
from mmrlaif.tracking.lineage import (
    GIT_SHA_ENV,
    MODEL_SHA_TAG,
    benchmark_tags,
    config_hash,
    metric_tags,
    short,
)
from mmrlaif.tracking.registry import register_model
from mmrlaif.tracking.uri import tracking_uri

logger = logging.getLogger(__name__)


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


def register_policy(
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


def register_final(
    cfg: Config, run_id: str, history: str, policy_run: str | Path, report_dir: str | Path
) -> dict[str, Any]:
    """Register the final policy, or reuse the iteration version with the same weights
    (``model_sha``) listed in ``history``; tag it ``final`` and run the promotion gate on it.

    Args:
        cfg: The run's configuration (``tracking.registered_model`` set).
        run_id: The parent run.
        history: JSON list of the iterations' entries (their registered ``version``).
        policy_run: The final policy's folder.
        report_dir: Its reports.

    Returns:
        ``{"version": ..., "promoted": ..., "reason": ...}`` (``version`` ``None`` when nothing
        was registered).
    """
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
        version, why_not = register_policy(cfg, run_id, run_id, policy_run, report_dir)
        if version is None:
            return {"version": None, "promoted": False, "reason": f"not registered: {why_not}"}
    client.set_model_version_tag(name, version, "final", "true")
    if not cfg.tracking.gate.enabled:
        return {"version": version, "promoted": False, "reason": "gate disabled"}
    decision = promote_version(uri, name, version, cfg.tracking.gate, running_run=run_id)
    return {"version": version, "promoted": decision.promoted, "reason": decision.reason}


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
