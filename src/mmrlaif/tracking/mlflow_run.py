"""Log a pipeline run to MLflow: a parent run with one nested child run per iteration.

Each KFP component runs in its own process, so every function takes the tracking URI and
explicit run ids and talks to MLflow through ``MlflowClient``; nothing relies on MLflow's
process-global active run.

Layout of one pipeline run::

    <run_name>            params (flattened config), config.yaml, eval/<key> by iteration,
    |                     final/<key>, change/..., hallucination_vs_iteration.png, summary.json
    +- iteration-0        eval/<key> of the base policy
    +- iteration-1        pairs/..., dpo/... by step, eval/<key>, eval.json, records, files
    +- ...
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mmrlaif.tracking import mlflow_client as mf
from mmrlaif.tracking.plotting import DEFAULT_PLOT_KEYS, plot_iterations
from mmrlaif.tracking.uri import default_artifact_root, redact_uri

logger = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
ITERATION_TAG = "iteration"
PLOT_NAME = "hallucination_vs_iteration.png"
_STEP_KEYS = frozenset({"step", "epoch"})
_TERMINAL_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})


def iteration_run_name(iteration: int) -> str:
    """The name of the child run of ``iteration``: ``iteration-<i>``."""
    return f"iteration-{iteration}"


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings into dotted keys with string values, as MLflow params.

    ``{"sft": {"trainer": {"learning_rate": 1e-4}}}`` gives ``{"sft.trainer.learning_rate":
    "0.0001"}``. Lists and tuples are kept whole as their ``str``; values longer than MLflow's
    6000-character limit are cut.

    Args:
        params: The (nested) config.
        prefix: Key prefix, used in recursion.

    Returns:
        Flat ``{dotted_key: value}``.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, name))
        else:
            flat[name] = str(value)[: mf.MAX_PARAM_VALUE_LENGTH]
    return flat


def start_pipeline_run(
    uri: str,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
    artifact_root: str | Path | None = None,
) -> str:
    """Create the parent run of a pipeline run, left RUNNING, with its config logged.

    Args:
        uri: Tracking URI (see :func:`~mmrlaif.tracking.uri.resolve_tracking_uri`).
        experiment: Experiment name; created when missing.
        run_name: Name of the parent run.
        params: The pipeline config; logged flattened as params and whole as ``config.yaml``.
        tags: Extra run tags.
        artifact_root: Artifact location of the experiment when it is created here. For a local
            SQLite store it defaults to ``mlartifacts`` beside the database, so artifacts stay in
            the run folder instead of ``./mlruns`` under the working directory. An existing
            experiment keeps its own location.

    Returns:
        The parent run id.
    """
    # lazy: mlflow takes seconds to import; importing mmrlaif.tracking stays cheap
    from mlflow.entities import Param

    client = mf.client(uri)
    experiment_id = _get_or_create_experiment(client, uri, experiment, artifact_root)
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
    run_id = run.info.run_id
    flat = {mf.safe_key(k): redact_uri(v) for k, v in flatten_params(params).items()}
    items = [Param(k, v) for k, v in flat.items()]
    for start in range(0, len(items), mf.MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + mf.MAX_PARAMS_PER_BATCH])
    text = yaml.safe_dump(mf.to_plain(params), sort_keys=False, allow_unicode=True)
    mf.log_text_artifact(client, run_id, "config.yaml", redact_uri(text))
    logger.info(
        "MLflow run %s (%s) in experiment %r at %s", run_id, run_name, experiment, redact_uri(uri)
    )
    return run_id


def log_iteration(
    uri: str,
    parent_run_id: str,
    iteration: int,
    *,
    stats: Mapping[str, Mapping[str, float | int]] | None = None,
    step_history: Sequence[Mapping[str, float]] | None = None,
    eval_report: Mapping[str, Any] | None = None,
    headline: Mapping[str, float] | None = None,
    artifacts: Mapping[str, str | Path] | None = None,
    records: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    skipped_reason: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Log one iteration to its child run ``iteration-<i>`` under the parent.

    The child run is reused when it exists, so several components of one iteration can each log
    their part. It is left FINISHED afterwards (FAILED if logging raised).

    Args:
        uri: Tracking URI.
        parent_run_id: Id from :func:`start_pipeline_run`.
        iteration: Iteration index; 0 is the base policy.
        stats: Groups of counters, ``{"pairs": {"n_pairs": 12}}`` -> metric ``pairs/n_pairs``.
            Non-numeric values are skipped.
        step_history: The Trainer's ``log_history``; each numeric entry (other than ``step``)
            becomes metric ``dpo/<key>`` at that entry's ``step``, ``epoch`` as ``dpo/epoch``.
        eval_report: Full evaluation report, logged as ``eval.json``.
        headline: Headline measures, e.g. ``{"object_hal": 0.11}``, logged as ``eval/<key>`` with
            ``step=iteration`` on the child and on the parent (the parent shows the curve).
        artifacts: ``{name: path}``; each file or folder is logged under the artifact folder
            ``name``.
        records: ``{name: rows}``; each logged as the JSON artifact ``<name>.json``.
        skipped_reason: Why the iteration was skipped; tag ``skipped_reason`` and metric
            ``skipped`` = 1 on the child.
        tags: Tags set on the child run (e.g. whether benchmark figures are the reference's).

    Returns:
        The child run id.

    Raises:
        FileNotFoundError: An ``artifacts`` path does not exist.
    """
    client = mf.client(uri)
    child_id = _get_or_create_child(client, parent_run_id, iteration)
    client.update_run(child_id, status="RUNNING")
    try:
        metrics = list(_iteration_metrics(iteration, stats, step_history, headline))
        for key, value in (tags or {}).items():
            client.set_tag(child_id, key, value)
        if skipped_reason is not None:
            client.set_tag(child_id, "skipped_reason", skipped_reason)
            metrics.append(mf.metric("skipped", 1.0, step=iteration))
        mf.log_metrics(client, child_id, metrics)
        if headline:
            mf.log_metrics(client, parent_run_id, _eval_metrics(headline, iteration))
        if eval_report is not None:
            mf.log_json_artifact(client, child_id, "eval.json", eval_report)
        for name, rows in (records or {}).items():
            mf.log_json_artifact(client, child_id, f"{name}.json", list(rows))
        for name, path in (artifacts or {}).items():
            _log_path(client, child_id, name, Path(path))
    except BaseException:
        client.set_terminated(child_id, status="FAILED")
        raise
    client.set_terminated(child_id, status="FINISHED")
    logger.info("logged iteration %d to MLflow run %s", iteration, child_id)
    return child_id


def finish_pipeline_run(
    uri: str,
    parent_run_id: str,
    headlines: Sequence[Mapping[str, float]],
    status: str = "FINISHED",
    summary: Mapping[str, Any] | None = None,
) -> None:
    """Close the parent run: plot, summary, final and relative-change metrics, status.

    Logged on the parent: ``hallucination_vs_iteration.png`` (when there are headlines),
    ``summary.json``, ``final/<key>`` for each measure of the last headline,
    ``change/<key>_rel`` = (last - first) / first for ``object_hal`` and ``response_hal`` when
    first > 0, and ``change/cover_pts`` = (last - first) * 100.

    Args:
        uri: Tracking URI.
        parent_run_id: Id from :func:`start_pipeline_run`.
        headlines: Headline measures by iteration, index 0 being the base policy.
        status: Final run status: ``FINISHED``, ``FAILED`` or ``KILLED``.
        summary: Extra entries for ``summary.json``.

    Raises:
        ValueError: ``status`` is not a terminal MLflow run status.
    """
    status = status.upper()
    if status not in _TERMINAL_STATUSES:
        raise ValueError(f"status must be one of {sorted(_TERMINAL_STATUSES)}, got {status!r}")
    client = mf.client(uri)
    final, change = summarize_headlines(headlines)
    last_step = max(len(headlines) - 1, 0)
    metrics = [mf.metric(f"final/{k}", v, step=last_step) for k, v in final.items()]
    metrics += [mf.metric(f"change/{k}", v, step=last_step) for k, v in change.items()]
    mf.log_metrics(client, parent_run_id, metrics)
    if headlines:
        with tempfile.TemporaryDirectory(prefix="mmrlaif-mlflow-") as tmp:
            plot = plot_iterations(headlines, Path(tmp) / PLOT_NAME, keys=DEFAULT_PLOT_KEYS)
            client.log_artifact(parent_run_id, str(plot))
    report: dict[str, Any] = {
        "status": status,
        "headlines": [dict(h) for h in headlines],
        "final": final,
        "change": change,
    }
    report.update(summary or {})
    mf.log_json_artifact(client, parent_run_id, "summary.json", report)
    client.set_terminated(parent_run_id, status=status)
    logger.info("MLflow run %s ended %s", parent_run_id, status)


def summarize_headlines(
    headlines: Sequence[Mapping[str, float]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Final measures and changes from the first to the last headline.

    Returns:
        ``(final, change)``: ``final`` holds the numeric measures of the last headline;
        ``change`` holds ``object_hal_rel`` / ``response_hal_rel`` (relative, when first > 0) and
        ``cover_pts`` (percentage points), for the keys present in both first and last.
    """
    if not headlines:
        return {}, {}
    first, last = headlines[0], headlines[-1]
    final = {k: v for k, v in ((k, mf.as_number(v)) for k, v in last.items()) if v is not None}
    change: dict[str, float] = {}
    for key in ("object_hal", "response_hal"):
        a, b = mf.as_number(first.get(key)), mf.as_number(last.get(key))
        if a is not None and b is not None and a > 0:
            change[f"{key}_rel"] = (b - a) / a
    a, b = mf.as_number(first.get("cover")), mf.as_number(last.get("cover"))
    if a is not None and b is not None:
        change["cover_pts"] = (b - a) * 100
    return final, change


def _get_or_create_experiment(
    client: Any, uri: str, name: str, artifact_root: str | Path | None
) -> str:
    """Id of experiment ``name``, creating it (race-safe) with ``artifact_root`` if missing."""
    # lazy: mlflow takes seconds to import; importing mmrlaif.tracking stays cheap
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    root = artifact_root if artifact_root is not None else default_artifact_root(uri)
    location = _artifact_location(root) if root is not None else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        # Another process created it between our lookup and create.
        return client.get_experiment_by_name(name).experiment_id


def _artifact_location(root: str | Path) -> str:
    """A URI (``s3://...``) as given; a local path made absolute and created."""
    if isinstance(root, str) and "://" in root:
        return root
    path = Path(root).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _get_or_create_child(client: Any, parent_run_id: str, iteration: int) -> str:
    """Id of the child run ``iteration-<i>`` of the parent, created when missing.

    Two processes may create it at once; both then settle on the earliest run and the other
    one is deleted, so the iteration keeps a single child.
    """
    parent = client.get_run(parent_run_id)
    experiment_id = parent.info.experiment_id
    found = _find_children(client, experiment_id, parent_run_id, iteration)
    if found:
        return found[0].info.run_id
    tags = {PARENT_TAG: parent_run_id, ITERATION_TAG: str(iteration)}
    run = client.create_run(experiment_id, run_name=iteration_run_name(iteration), tags=tags)
    mine = run.info.run_id
    found = _find_children(client, experiment_id, parent_run_id, iteration)
    winner = found[0].info.run_id if found else mine
    if winner != mine:
        logger.debug("child run %s lost a creation race to %s; deleting it", mine, winner)
        client.delete_run(mine)
    return winner


def _find_children(client: Any, experiment_id: str, parent_run_id: str, iteration: int) -> list:
    """Active child runs of ``iteration`` under the parent, earliest first."""
    query = (
        f"tags.`{PARENT_TAG}` = '{parent_run_id}' "
        f"and attributes.run_name = '{iteration_run_name(iteration)}'"
    )
    runs = client.search_runs([experiment_id], filter_string=query, max_results=100)
    return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def _iteration_metrics(
    iteration: int,
    stats: Mapping[str, Mapping[str, Any]] | None,
    step_history: Sequence[Mapping[str, Any]] | None,
    headline: Mapping[str, Any] | None,
) -> Iterator[Any]:
    """The metrics of one iteration's child run."""
    for group, values in (stats or {}).items():
        for key, value in values.items():
            number = mf.as_number(value)
            if number is not None:
                yield mf.metric(f"{group}/{key}", number, step=iteration)
    for entry in step_history or ():
        step = mf.as_number(entry.get("step"))
        if step is None:
            continue
        for key, value in entry.items():
            number = mf.as_number(value)
            if number is not None and key not in _STEP_KEYS:
                yield mf.metric(f"dpo/{key}", number, step=int(step))
        epoch = mf.as_number(entry.get("epoch"))
        if epoch is not None:
            yield mf.metric("dpo/epoch", epoch, step=int(step))
    if headline:
        yield from _eval_metrics(headline, iteration)


def _eval_metrics(headline: Mapping[str, Any], iteration: int) -> Iterator[Any]:
    """``eval/<key>`` metrics at ``step=iteration`` for the numeric headline measures."""
    for key, value in headline.items():
        number = mf.as_number(value)
        if number is not None:
            yield mf.metric(f"eval/{key}", number, step=iteration)


def _log_path(client: Any, run_id: str, name: str, path: Path) -> None:
    """Log a file or a folder under the artifact folder ``name``."""
    if not path.exists():
        raise FileNotFoundError(f"artifact {name!r} not found: {path}")
    if path.is_dir():
        client.log_artifacts(run_id, str(path), name)
    else:
        client.log_artifact(run_id, str(path), name)
