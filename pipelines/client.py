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

Authentication comes from the environment only, never from the config or the command line:
a bearer token in ``KFP_TOKEN`` (passed to ``kfp.Client(existing_token=...)``), else a
projected ServiceAccount token file (``KF_PIPELINES_SA_TOKEN_PATH``, or kfp's default path
when it exists), else none (a port-forward or an in-cluster endpoint without auth). kfp's own
``~/.config/kfp/context.json`` (cookies / header) still applies. The token is never logged.

Time limits. Stock ``kfp.Client`` 2.17 sends requests without a timeout (a silently dropped
connection hangs forever), and when constructed with namespace ``kubeflow`` it calls healthz
up to 5 times, 5 s apart, on any HTTP error, then raises a ``TimeoutError`` that hides the
status. The client here (:class:`_Client`, a subclass) therefore sets urllib3 retries to
:data:`RETRIES` (connection errors are retried for any method, since nothing was sent; a POST
is never re-sent after a read error), a per-request ``(connect, read)`` timeout of
:data:`TIMEOUT_S`, and makes the health check a single attempt. A refused connection fails in
about 1 s (two retries, the second after 1 s backoff).

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

import contextlib
import datetime
import io
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml

from mmrlaif import __version__
from mmrlaif.config import Config, config_to_json, parse_config
from mmrlaif.config.shape import shape_differences, shape_text

logger = logging.getLogger(__name__)

#: Environment variable with an optional bearer token for the KFP API.
TOKEN_ENV = "KFP_TOKEN"
#: Environment variable with the KFP API endpoint, used when neither argument nor config has one.
HOST_ENV = "KFP_HOST"
#: ``(connect, read)`` timeout in seconds of every request to the server.
TIMEOUT_S: tuple[float, float] = (10.0, 120.0)
#: Retries of a request (urllib3): connection errors for any method, read errors for GETs.
RETRIES = 2
#: Argo ScheduledWorkflow macro: the date a scheduled run was scheduled for (Go time layout).
RUN_DATE_MACRO = "[[ScheduledTime.2006-01-02]]"
_SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
_SA_TOKEN_DEFAULT = "/var/run/secrets/kubeflow/pipelines/token"
_RUN_LINK = re.compile(r"Run details: (\S+)")


class KFPServerError(RuntimeError):
    """The Kubeflow Pipelines server could not be reached or refused a request."""


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


def resolve_host(host: str | None, cfg: Config | None = None) -> str:
    """The API endpoint: ``host``, else ``cfg.kfp.host``, else ``$KFP_HOST``.

    Raises:
        ValueError: None of them is set.
    """
    resolved = host or (cfg.kfp.host if cfg is not None else None) or os.environ.get(HOST_ENV)
    if not resolved:
        raise ValueError(
            "no Kubeflow Pipelines host: pass --host, set kfp.host in the config or "
            f"{HOST_ENV} in the environment (e.g. http://localhost:8888 with a port-forward)"
        )
    return resolved


def connect(host: str | None, namespace: str, token_env: str = TOKEN_ENV):
    """A ``kfp.Client`` for ``host`` (or ``$KFP_HOST``) with bounded retries and timeouts.

    Args:
        host: API endpoint, e.g. ``http://ml-pipeline-ui.kubeflow:80`` (None: ``$KFP_HOST``).
        namespace: Kubeflow profile namespace of the runs.
        token_env: Environment variable holding an optional bearer token.

    Returns:
        The client (constructing it may already call healthz, for namespace ``kubeflow``).

    Raises:
        ValueError: No host.
        KFPServerError: The server cannot be reached or refuses the health check, or a
            ServiceAccount token file is named but unreadable.
    """
    host = resolve_host(host)
    auth: dict[str, Any] = {}
    token = os.environ.get(token_env)
    if token:
        auth["existing_token"] = token
        logger.debug("KFP auth: bearer token from $%s", token_env)
    elif os.environ.get(_SA_TOKEN_ENV) or os.path.exists(_SA_TOKEN_DEFAULT):
        from kfp.client import ServiceAccountTokenVolumeCredentials

        path = os.environ.get(_SA_TOKEN_ENV) or _SA_TOKEN_DEFAULT
        if not os.access(path, os.R_OK):
            raise KFPServerError(f"cannot read the ServiceAccount token file {path}")
        auth["credentials"] = ServiceAccountTokenVolumeCredentials(path)
        logger.debug("KFP auth: ServiceAccount token file %s", path)
    with _server_call(host, "the health check"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This client only works", FutureWarning)
        return _client_class()(host=host, namespace=namespace, **auth)


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
    with _package(cfg, package) as path:
        name, declared = _read_package(path)
        arguments = _arguments(cfg, declared, parameters or {}, scheduled=False)
        run_name = run_name or f"{name}-{datetime.datetime.now(datetime.UTC):%Y%m%d-%H%M%S}"
        client = connect(host, namespace)
        experiment_id = _experiment_id(client, host, experiment or kfp.experiment, namespace)
        with _server_call(host, f"creating the run {run_name!r}"), _kfp_stdout() as out:
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
    with _package(cfg, package) as path:
        _, declared = _read_package(path)
        arguments = _arguments(cfg, declared, parameters or {}, scheduled=True)
        client = connect(host, namespace)
        experiment_id = _experiment_id(client, host, experiment or kfp.experiment, namespace)
        source: dict[str, str] = {"pipeline_package_path": str(path)}
        if upload_pipeline:
            source = upload_version(client, host, path, upload_pipeline)
        replaced = _delete_recurring_runs(client, host, experiment_id, name)
        what = f"creating the recurring run {name!r}"
        if replaced:
            what += f" (after deleting the previous one(s): {', '.join(replaced)})"
        with _server_call(host, what):
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
    with _server_call(host, f"looking up the pipeline {pipeline!r}"):
        pipeline_id = client.get_pipeline_id(pipeline)
    if pipeline_id is None:
        with _server_call(host, f"uploading the pipeline {pipeline!r}"), _kfp_stdout():
            pipeline_id = client.upload_pipeline(
                str(path), pipeline_name=pipeline, description=f"mmrlaif {__version__}"
            ).pipeline_id
        with _server_call(host, f"listing the versions of {pipeline!r}"):
            versions = client.list_pipeline_versions(pipeline_id).pipeline_versions or []
        if len(versions) != 1:
            raise KFPServerError(
                f"{host}: the new pipeline {pipeline!r} has {len(versions)} versions, expected 1"
            )
        version_id = versions[0].pipeline_version_id
    else:
        with _server_call(host, f"uploading version {version!r} of {pipeline!r}"), _kfp_stdout():
            version_id = client.upload_pipeline_version(
                str(path), version, pipeline_id=pipeline_id
            ).pipeline_version_id
    logger.info("pipeline %s: version %s uploaded", pipeline, version_id)
    return {"pipeline_id": pipeline_id, "version_id": version_id}


# ---- internals -------------------------------------------------------------------------------


def _client_class():
    """``kfp.Client`` with bounded retries and timeouts and a one-attempt health check.

    Overrides two members of kfp 2.17's client (``_load_config``, private, and
    ``get_kfp_healthz``) and wraps the request method of its REST client; kfp is pinned.
    """
    import kfp

    class _Client(kfp.Client):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)  # may call get_kfp_healthz (below)
            rest = self._healthz_api.api_client.rest_client  # shared by all the service APIs
            request = rest.request

            def bounded(method, url, *a, _request_timeout=None, **kw):
                timeout = _request_timeout or TIMEOUT_S
                return request(method, url, *a, _request_timeout=timeout, **kw)

            rest.request = bounded

        def _load_config(self, *args: Any, **kwargs: Any):
            config = super()._load_config(*args, **kwargs)
            config.retries = urllib3.Retry(total=RETRIES, backoff_factor=0.5)
            return config

        def get_kfp_healthz(self, sleep_duration: int = 5):
            # stock: 5 attempts, 5 s apart, then a TimeoutError without the HTTP status
            return self._healthz_api.healthz_service_get_healthz(_request_timeout=TIMEOUT_S)

    return _Client


@contextlib.contextmanager
def _server_call(host: str, operation: str) -> Iterator[None]:
    """Turn the REST client's errors into :class:`KFPServerError` naming host and operation."""
    import kfp_server_api

    try:
        yield
    except kfp_server_api.ApiException as exc:
        if not exc.status:  # status 0: TLS failure or a request that could not be built
            raise KFPServerError(
                f"cannot reach Kubeflow Pipelines at {host}: {exc.reason}"
            ) from exc
        raise KFPServerError(
            f"Kubeflow Pipelines at {host} refused {operation}: "
            f"HTTP {exc.status} {exc.reason}: {_short_body(exc.body)}"
        ) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc  # MaxRetryError wraps the last error
        raise KFPServerError(f"cannot reach Kubeflow Pipelines at {host}: {reason}") from exc


def _short_body(body: bytes | str | None, limit: int = 300) -> str:
    """The server's error message (``message`` of a JSON body), on one line, truncated."""
    if not body:
        return "(no body)"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    with contextlib.suppress(ValueError, AttributeError):
        data = json.loads(text)
        text = data.get("message") or data.get("error_message") or data.get("error") or text
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _kfp_stdout() -> Iterator[io.StringIO]:
    """Capture what kfp prints (experiment / run links) and log it at debug level."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            yield out
    finally:
        for line in out.getvalue().splitlines():
            logger.debug("kfp: %s", line)


@contextlib.contextmanager
def _package(cfg: Config, package: Path | None) -> Iterator[Path]:
    """``package``, or ``cfg``'s pipeline compiled into a temporary file."""
    if package is not None:
        package = Path(package)
        if not package.is_file():
            raise FileNotFoundError(f"no pipeline package {package}")
        yield package
        return
    from mmrlaif.pipelines.build import compile_pipeline

    with tempfile.TemporaryDirectory(prefix="mmrlaif-kfp-") as tmp:
        yield compile_pipeline(cfg, Path(tmp) / "pipeline.yaml")


def _read_package(path: Path) -> tuple[str, dict[str, Any]]:
    """The pipeline's name and its declared input parameters (name -> spec)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x faster
    spec = next(yaml.load_all(path.read_text(), Loader=loader))
    spec = spec.get("pipeline_spec", spec)  # the JSON form nests it
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return spec["pipelineInfo"]["name"], dict(params)


def _arguments(
    cfg: Config, declared: Mapping[str, Any], given: Mapping[str, Any], *, scheduled: bool
) -> dict[str, Any]:
    """The run's arguments: the config, ``run_date`` for a schedule, then ``given``."""
    args: dict[str, Any] = {}
    if "config" in declared:
        args["config"] = config_to_json(cfg)
    if scheduled and "run_date" in declared:
        args["run_date"] = RUN_DATE_MACRO
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(
            f"unknown pipeline parameter(s) {', '.join(unknown)}; "
            f"the pipeline takes: {', '.join(sorted(declared)) or 'none'}"
        )
    if isinstance(given.get("config"), str):  # a config of another shape: another pipeline
        differences = shape_differences(shape_text(cfg), parse_config(given["config"]))
        if differences:
            raise ValueError(
                "--param config= changes what the pipeline is compiled from: "
                f"{'; '.join(differences)}; set these in the config the pipeline is "
                "compiled from instead"
            )
    for key, value in given.items():
        args[key] = _typed(key, value, declared[key].get("parameterType", "STRING"))
    return args


def _typed(key: str, value: Any, kind: str) -> Any:
    """A string ``--param`` value converted to the parameter's declared type."""
    if not isinstance(value, str) or kind == "STRING":
        return value
    try:
        if kind == "NUMBER_INTEGER":
            return int(value)
        if kind == "NUMBER_DOUBLE":
            return float(value)
        if kind == "BOOLEAN":
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        return json.loads(value)  # LIST, STRUCT
    except ValueError as exc:
        raise ValueError(f"pipeline parameter {key}: expected {kind}, got {value!r}") from exc


def _experiment_id(client, host: str, name: str, namespace: str | None) -> str:
    """The id of the experiment ``name`` (created if missing)."""
    with _server_call(host, f"getting or creating the experiment {name!r}"), _kfp_stdout():
        return client.create_experiment(name=name, namespace=namespace).experiment_id


def _delete_recurring_runs(client, host: str, experiment_id: str, name: str) -> list[str]:
    """Delete the recurring runs named ``name`` in the experiment; their ids."""
    filter_ = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )
    found: list[str] = []
    token = ""
    with _server_call(host, f"listing the recurring runs named {name!r}"):
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
        with _server_call(host, f"deleting the recurring run {run_id} ({name!r})"):
            client.delete_recurring_run(run_id)
        logger.info("deleted recurring run %s (%s)", run_id, name)
    return found
