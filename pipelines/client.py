"""Submit and schedule the configured pipeline on a Kubeflow Pipelines server (``kfp.Client``).

:func:`submit_run` creates one run; :func:`schedule_run` creates a recurring run, replacing an
existing one of the same name in the experiment. Both compile the pipeline from the config
into a temporary file unless a compiled package is given, and both send the compiled spec
*inline* with the run (``create_run_from_pipeline_package`` / ``create_recurring_run`` with
``pipeline_package_path``) rather than uploading a pipeline and a version first: every run
then carries exactly the spec compiled from the config it was submitted with, and nothing is
left behind in the server's pipeline list (an upload would also fail with 409 on a second
submission of the same pipeline name unless versions were managed). The cost is that such
runs do not appear under a pipeline in the UI, only under their experiment.

How the server is reached (host, authentication from the environment only, time limits,
errors) is :mod:`mmrlaif.pipelines.connection`; what a run is created from and given (the
compiled package, the config and the typed ``--param`` values) is
:mod:`mmrlaif.pipelines.run_arguments`. :func:`connect`, :func:`resolve_host`,
:class:`KFPServerError` and :data:`RUN_DATE_MACRO` are importable from here too.

What was exercised, and what was not. ``tests/unit/pipelines/test_client.py`` drives the real
``kfp.Client`` 2.17 (and its generated ``kfp_server_api`` REST client) against
``tests/unit/pipelines/kfp_api.py``, a loopback HTTP server that speaks the subset of the
v2beta1 REST API these calls use and records every request: the bodies of the create-run and
create-recurring-run requests (spec, parameters, service account, experiment, cron, catch-up),
the delete-before-create of a recurring run of the same name, the ``Authorization`` header
(from ``KFP_TOKEN`` or a token file), the absence of credentials from every request, and the
error paths (refused connection, a server that never answers, HTTP 403 / 409 / 500), also
through ``mmrlaif submit`` / ``schedule``. Not exercised: a real KFP API server (its
validation of specs and parameters, multi-user namespace checks, its real error bodies), any
real authentication (Dex / OIDC / Istio, a projected ServiceAccount token being accepted), TLS,
and Argo / the ScheduledWorkflow controller (that ``[[ScheduledTime.2006-01-02]]`` is
substituted, that the run executes).
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrlaif import __version__
from mmrlaif.config import Config
from mmrlaif.pipelines.connection import (
    KFPServerError,
    connect,
    kfp_stdout,
    resolve_host,
    server_call,
)
from mmrlaif.pipelines.run_arguments import (
    RUN_DATE_MACRO,
    compiled_package,
    read_package,
    run_arguments,
)

logger = logging.getLogger(__name__)

__all__ = [
    "RUN_DATE_MACRO",
    "KFPServerError",
    "ScheduledRun",
    "SubmittedRun",
    "connect",
    "resolve_host",
    "schedule_run",
    "submit_run",
    "upload_version",
]

_RUN_LINK = re.compile(r"Run details: (\S+)")


@dataclass(frozen=True)
class SubmittedRun:
    """A run created on the server (``url``: the UI link kfp printed, if any)."""

    run_id: str
    experiment_id: str
    url: str | None = None


@dataclass(frozen=True)
class ScheduledRun:
    """A recurring run created on the server and the ids of those of its name it replaced."""

    recurring_run_id: str
    experiment_id: str
    replaced: tuple[str, ...] = ()
    pipeline_id: str | None = None
    pipeline_version_id: str | None = None


def submit_run(
    cfg: Config,
    *,
    host: str | None = None,
    namespace: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    service_account: str | None = None,
    pipeline_root: str | None = None,
    package: Path | None = None,
) -> SubmittedRun:
    """Create one run of the configured pipeline (arguments left None come from ``cfg.kfp``).

    The run's ``config`` parameter is ``cfg`` as one line of JSON; ``parameters`` are added
    on top (and may replace it). Unknown parameter names are refused before any request.

    Args:
        cfg: The configuration (also the ``config`` argument of the run).
        host: API endpoint (else ``cfg.kfp.host``, else ``$KFP_HOST``).
        namespace: Profile namespace.
        experiment: Experiment name (created if missing).
        run_name: Display name (default: ``<pipeline name>-<UTC time>``).
        parameters: Extra pipeline arguments, by name (strings are converted to the
            parameter's declared type).
        service_account: Kubernetes ServiceAccount of the run's pods.
        pipeline_root: Artifact root (``s3://...``); None: the server's default.
        package: A compiled pipeline YAML (default: compile ``cfg`` to a temporary file).

    Returns:
        The run's id, experiment id and UI link.

    Raises:
        ValueError: No host, or an unknown / ill-typed parameter.
        KFPServerError: The server cannot be reached or refuses a request.
    """
    kfp = cfg.kfp
    host = resolve_host(host, cfg)
    namespace = namespace or kfp.namespace
    with compiled_package(cfg, package) as path:
        name, declared = read_package(path)
        arguments = run_arguments(cfg, declared, parameters or {}, scheduled=False)
        run_name = run_name or f"{name}-{datetime.datetime.now(datetime.UTC):%Y%m%d-%H%M%S}"
        client = connect(host, namespace)
        experiment_id = _experiment_id(client, host, experiment or kfp.experiment, namespace)
        with server_call(host, f"creating the run {run_name!r}"), kfp_stdout() as out:
            result = client.create_run_from_pipeline_package(
                str(path),
                arguments=arguments,
                run_name=run_name,
                pipeline_root=pipeline_root or kfp.pipeline_root,
                service_account=service_account or kfp.service_account,
                experiment_id=experiment_id,
            )
    link = _RUN_LINK.search(out.getvalue())
    run = SubmittedRun(result.run_id, experiment_id, link.group(1) if link else None)
    logger.info("created run %s (%s) in experiment %s", run.run_id, run_name, experiment_id)
    return run


def schedule_run(
    cfg: Config,
    *,
    host: str | None = None,
    namespace: str | None = None,
    experiment: str | None = None,
    name: str | None = None,
    cron: str | None = None,
    max_concurrency: int | None = None,
    catchup: bool | None = None,
    parameters: Mapping[str, Any] | None = None,
    service_account: str | None = None,
    pipeline_root: str | None = None,
    package: Path | None = None,
    upload_pipeline: str | None = None,
) -> ScheduledRun:
    """Create the recurring run, replacing those of the same name in the experiment.

    Arguments left None come from ``cfg.kfp`` / ``cfg.kfp.schedule``. Existing recurring runs
    named ``name`` in the experiment are deleted first, then the new one is created: should
    the creation fail, the error says which were already deleted. If the pipeline declares a
    ``run_date`` parameter it gets :data:`RUN_DATE_MACRO` (each run's scheduled date,
    substituted by the ScheduledWorkflow controller) unless ``parameters`` sets it.

    Args:
        cfg: The configuration (also the ``config`` argument of every run).
        host: API endpoint (else ``cfg.kfp.host``, else ``$KFP_HOST``).
        namespace: Profile namespace.
        experiment: Experiment name (created if missing).
        name: Display name of the recurring run.
        cron: Six-field cron expression, seconds first (``0 0 3 * * 1``).
        max_concurrency: Runs of the schedule allowed at once (>= 1).
        catchup: Backfill intervals missed while paused (sent as ``no_catchup=not catchup``).
        parameters: Extra pipeline arguments, by name.
        service_account: Kubernetes ServiceAccount of the runs' pods.
        pipeline_root: Artifact root; None: ``cfg.kfp.pipeline_root``, else the server's.
        package: A compiled pipeline YAML (default: compile ``cfg``).
        upload_pipeline: Upload the package as a new version of this (shared) pipeline,
            created if missing, and run that version; None: the recurring run carries the
            spec inline. A version is named ``<release>-<UTC time>``.

    Returns:
        The new recurring run's id, its experiment id, the ids it replaced and, when
        uploaded, the pipeline and version it runs.

    Raises:
        ValueError: No host, a cron without 6 fields, ``max_concurrency`` < 1, or an unknown /
            ill-typed parameter (all before any request).
        KFPServerError: The server cannot be reached or refuses a request.
    """
    kfp, schedule = cfg.kfp, cfg.kfp.schedule
    host = resolve_host(host, cfg)
    name = name or schedule.name
    cron = cron or schedule.cron
    if len(cron.split()) != 6:
        raise ValueError(
            f"cron {cron!r} must have 6 fields, seconds first (e.g. '0 0 3 * * 1': Mondays 03:00)"
        )
    max_concurrency = schedule.max_concurrency if max_concurrency is None else max_concurrency
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
    catchup = schedule.catchup if catchup is None else catchup
    namespace = namespace or kfp.namespace
    with compiled_package(cfg, package) as path:
        _, declared = read_package(path)
        arguments = run_arguments(cfg, declared, parameters or {}, scheduled=True)
        client = connect(host, namespace)
        experiment_id = _experiment_id(client, host, experiment or kfp.experiment, namespace)
        source: dict[str, str] = {"pipeline_package_path": str(path)}
        if upload_pipeline:
            source = upload_version(client, host, path, upload_pipeline)
        replaced = _delete_recurring_runs(client, host, experiment_id, name)
        what = f"creating the recurring run {name!r}"
        if replaced:
            what += f" (after deleting the previous one(s): {', '.join(replaced)})"
        with server_call(host, what):
            created = client.create_recurring_run(
                experiment_id=experiment_id,
                job_name=name,
                description=f"mmrlaif {cfg.pipeline.method} on cron {cron}",
                cron_expression=cron,
                max_concurrency=max_concurrency,
                no_catchup=not catchup,
                params=arguments,
                pipeline_root=pipeline_root or kfp.pipeline_root,
                service_account=service_account or kfp.service_account,
                **source,
            )
    logger.info("created recurring run %s (%s, cron %s)", created.recurring_run_id, name, cron)
    return ScheduledRun(
        created.recurring_run_id,
        experiment_id,
        tuple(replaced),
        source.get("pipeline_id"),
        source.get("version_id"),
    )


def upload_version(client, host: str, path: Path, pipeline: str) -> dict[str, str]:
    """Upload ``path`` as a new version of the shared pipeline ``pipeline`` (created if missing).

    Returns:
        ``{"pipeline_id": ..., "version_id": ...}`` of the uploaded version.

    Raises:
        KFPServerError: The server cannot be reached or refuses a request.
    """
    version = f"{__version__}-{datetime.datetime.now(datetime.UTC):%Y%m%d-%H%M%S}"
    with server_call(host, f"looking up the pipeline {pipeline!r}"):
        pipeline_id = client.get_pipeline_id(pipeline)
    if pipeline_id is None:
        with server_call(host, f"uploading the pipeline {pipeline!r}"), kfp_stdout():
            pipeline_id = client.upload_pipeline(
                str(path), pipeline_name=pipeline, description=f"mmrlaif {__version__}"
            ).pipeline_id
        with server_call(host, f"listing the versions of {pipeline!r}"):
            versions = client.list_pipeline_versions(pipeline_id).pipeline_versions or []
        if len(versions) != 1:
            raise KFPServerError(
                f"{host}: the new pipeline {pipeline!r} has {len(versions)} versions, expected 1"
            )
        version_id = versions[0].pipeline_version_id
    else:
        with server_call(host, f"uploading version {version!r} of {pipeline!r}"), kfp_stdout():
            version_id = client.upload_pipeline_version(
                str(path), version, pipeline_id=pipeline_id
            ).pipeline_version_id
    logger.info("pipeline %s: version %s uploaded", pipeline, version_id)
    return {"pipeline_id": pipeline_id, "version_id": version_id}


# ---- internals -------------------------------------------------------------------------------


def _experiment_id(client, host: str, name: str, namespace: str | None) -> str:
    """The id of the experiment ``name`` (created if missing)."""
    with server_call(host, f"getting or creating the experiment {name!r}"), kfp_stdout():
        return client.create_experiment(name=name, namespace=namespace).experiment_id


def _delete_recurring_runs(client, host: str, experiment_id: str, name: str) -> list[str]:
    """Delete the recurring runs named ``name`` in the experiment; their ids."""
    filter_ = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )
    found: list[str] = []
    token = ""
    with server_call(host, f"listing the recurring runs named {name!r}"):
        while True:
            page = client.list_recurring_runs(
                page_token=token, page_size=100, experiment_id=experiment_id, filter=filter_
            )
            found += [
                r.recurring_run_id for r in page.recurring_runs or [] if r.display_name == name
            ]
            token = page.next_page_token
            if not token:
                break
    for run_id in found:
        with server_call(host, f"deleting the recurring run {run_id} ({name!r})"):
            client.delete_recurring_run(run_id)
        logger.info("deleted recurring run %s (%s)", run_id, name)
    return found
