"""The promotion gate: move the registry alias (``champion``) only to a better model.

A candidate version takes the alias only if it beats the current holder on the primary
hallucination metric (lower is better) and does not lose more than the configured tolerances
on Cover and POPE. Otherwise the version is tagged rejected with the reason. The figures are
read from the versions' ``metric.*`` tags, written when they were registered
(:func:`mmrlaif.tracking.lineage.metric_tags`), so the gate needs no artifacts.

The comparison is fair only when both versions were evaluated on the same data: the versions'
``data.eval_sha`` tags are compared and a difference is named in the reason.

Absolutes come before the comparison (:func:`unfit_reasons`): a model whose figures are not
finite, or whose Cover or POPE figure is under its floor, is never registered or promoted, and
a version whose pipeline run did not finish (still running, failed or killed) is never
promoted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from mmrlaif.config import GateConfig
from mmrlaif.tracking import mlflow_client as mf
from mmrlaif.tracking.lineage import EVAL_SHA_TAG, metrics_from_tags

logger = logging.getLogger(__name__)

DECISION_TAG = "gate.decision"
REASON_TAG = "gate.reason"
AGAINST_TAG = "gate.against_version"


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided about one candidate.

    Attributes:
        promoted: Whether the candidate took the alias.
        reason: Why, in words (every failed check is named).
        version: The candidate version ('' when decided on figures alone).
        champion_version: The version that held the alias before (``None``: none did).
    """

    promoted: bool
    reason: str
    version: str = ""
    champion_version: str | None = None


def unfit_reasons(figures: Mapping[str, float], gate: GateConfig) -> list[str]:
    """Why a model's own figures rule it out, whatever the champion: a gate figure (``metric``,
    ``cover``, ``pope_metric``) that is not finite, or Cover / POPE under their floors."""
    reasons = []
    for name in (gate.metric, "cover", gate.pope_metric):
        if name in figures and not math.isfinite(figures[name]):
            reasons.append(f"{name} is not finite ({figures[name]})")
    for name, floor in (("cover", gate.cover_floor), (gate.pope_metric, gate.pope_floor)):
        value = figures.get(name)
        if value is not None and math.isfinite(value) and value < floor:
            reasons.append(f"{name} {value:.4f} is under its floor {floor:g}")
    return reasons


def decide(
    candidate: Mapping[str, float], champion: Mapping[str, float] | None, gate: GateConfig
) -> GateDecision:
    """Compare a candidate's figures with the champion's.

    Args:
        candidate: The candidate's headline figures (``object_hal``, ``cover``, POPE...).
        champion: The champion's, or ``None`` when no version holds the alias yet.
        gate: Metric, required improvement and tolerances.

    Returns:
        The decision; a candidate without its primary metric is never promoted.
    """
    metric = gate.metric
    if metric not in candidate:
        return GateDecision(False, f"candidate has no {metric} figure")
    unfit = unfit_reasons(candidate, gate)
    if unfit:
        return GateDecision(False, "; ".join(unfit))
    if champion is None:
        return GateDecision(True, f"no {gate.alias} yet; {metric} {candidate[metric]:.4f}")
    if metric not in champion:
        return GateDecision(True, f"the {gate.alias} has no {metric} figure")
    failures: list[str] = []
    passes: list[str] = []
    new, old = candidate[metric], champion[metric]
    if new < old - gate.min_improvement:
        passes.append(f"{metric} {old:.4f} -> {new:.4f}")
    else:
        need = f" by more than {gate.min_improvement:g}" if gate.min_improvement else ""
        failures.append(f"{metric} {new:.4f} does not beat {old:.4f}{need}")
    for name, tolerance in (
        ("cover", gate.cover_tolerance),
        (gate.pope_metric, gate.pope_tolerance),
    ):
        if name not in champion:
            continue
        if name not in candidate:
            failures.append(f"candidate has no {name} figure (the {gate.alias} has)")
        elif candidate[name] < champion[name] - tolerance:
            failures.append(
                f"{name} fell {champion[name]:.4f} -> {candidate[name]:.4f} "
                f"(tolerance {tolerance:g})"
            )
        else:
            passes.append(f"{name} {champion[name]:.4f} -> {candidate[name]:.4f}")
    if failures:
        return GateDecision(False, "; ".join(failures))
    return GateDecision(True, "; ".join(passes))


def promote_version(
    uri: str, name: str, version: str, gate: GateConfig, running_run: str | None = None
) -> GateDecision:
    """Run the gate on version ``version`` of registered model ``name``.

    Promoted: the alias moves to it. Rejected: the version is tagged ``gate.decision=rejected``
    and ``gate.reason``. Both outcomes record the version they were compared against. A version
    whose pipeline run (tag ``pipeline_run_id``) is not ``FINISHED`` is rejected.

    Args:
        uri: Tracking (and registry) URI.
        name: Registered model name.
        version: Candidate version.
        gate: The gate's settings.
        running_run: The pipeline run that is registering now (its own end step), which may
            still be ``RUNNING``.

    Returns:
        The decision.

    Raises:
        ValueError: The model or version does not exist.
    """
    # lazy: mlflow takes seconds to import; importing mmrlaif.tracking stays cheap
    from mlflow.exceptions import MlflowException

    client = mf.client(uri)
    try:
        candidate = client.get_model_version(name, version)
    except MlflowException as exc:
        raise ValueError(f"registered model {name!r} has no version {version}: {exc}") from exc
    try:
        holder = client.get_model_version_by_alias(name, gate.alias)
    except MlflowException:
        holder = None
    if holder is not None and str(holder.version) == str(version):
        return GateDecision(True, f"already the {gate.alias}", str(version), str(version))
    unfinished = _unfinished_run(client, candidate.tags.get("pipeline_run_id"), running_run)
    if unfinished:
        decision = GateDecision(False, unfinished)
    else:
        decision = decide(
            metrics_from_tags(candidate.tags),
            metrics_from_tags(holder.tags) if holder is not None else None,
            gate,
        )
    reason = decision.reason
    if holder is not None and holder.tags.get(EVAL_SHA_TAG) != candidate.tags.get(EVAL_SHA_TAG):
        reason += (
            f" (note: evaluated on different data than version {holder.version}: "
            f"{EVAL_SHA_TAG} {holder.tags.get(EVAL_SHA_TAG)} vs {candidate.tags.get(EVAL_SHA_TAG)})"
        )
    against = str(holder.version) if holder is not None else None
    client.set_model_version_tag(
        name, version, DECISION_TAG, "promoted" if decision.promoted else "rejected"
    )
    client.set_model_version_tag(name, version, REASON_TAG, reason[:5000])
    client.set_model_version_tag(name, version, AGAINST_TAG, against or "none")
    if decision.promoted:
        client.set_registered_model_alias(name, gate.alias, version)
        logger.info("%s version %s promoted to %s: %s", name, version, gate.alias, reason)
    else:
        logger.info("%s version %s rejected: %s", name, version, reason)
    return GateDecision(decision.promoted, reason, str(version), against)


def _unfinished_run(client, run_id: str | None, running_run: str | None) -> str | None:
    """Why the version's pipeline run disqualifies it (``None``: it finished)."""
    # lazy: mlflow takes seconds to import; importing mmrlaif.tracking stays cheap
    from mlflow.exceptions import MlflowException

    if not run_id or run_id == running_run:
        return None
    try:
        status = client.get_run(run_id).info.status
    except MlflowException:
        return f"made by pipeline run {run_id}, which the tracking server does not know"
    if status != "FINISHED":
        return f"made by pipeline run {run_id}, which did not finish (status {status})"
    return None
