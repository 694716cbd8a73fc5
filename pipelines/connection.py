"""Reaching a Kubeflow Pipelines API server: its address, authentication, time limits, errors.

:func:`connect` builds the ``kfp.Client`` that :mod:`mmrlaif.pipelines.client` submits and
schedules runs with; :func:`server_call` turns the REST client's errors into
:class:`KFPServerError`, naming the host and the operation.

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
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import urllib3

from mmrlaif.config import Config

logger = logging.getLogger(__name__)

#: Environment variable with an optional bearer token for the KFP API.
TOKEN_ENV = "KFP_TOKEN"
#: Environment variable with the KFP API endpoint, used when neither argument nor config has one.
HOST_ENV = "KFP_HOST"
#: ``(connect, read)`` timeout in seconds of every request to the server.
TIMEOUT_S: tuple[float, float] = (10.0, 120.0)
#: Retries of a request (urllib3): connection errors for any method, read errors for GETs.
RETRIES = 2
_SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
_SA_TOKEN_DEFAULT = "/var/run/secrets/kubeflow/pipelines/token"


class KFPServerError(RuntimeError):
    """The Kubeflow Pipelines server could not be reached or refused a request."""


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
        # lazy: kfp is heavy; only a command that talks to the server needs it
        from kfp.client import ServiceAccountTokenVolumeCredentials

        path = os.environ.get(_SA_TOKEN_ENV) or _SA_TOKEN_DEFAULT
        if not os.access(path, os.R_OK):
            raise KFPServerError(f"cannot read the ServiceAccount token file {path}")
        auth["credentials"] = ServiceAccountTokenVolumeCredentials(path)
        logger.debug("KFP auth: ServiceAccount token file %s", path)
    with server_call(host, "the health check"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This client only works", FutureWarning)
        return _client_class()(host=host, namespace=namespace, **auth)


def _client_class():
    """``kfp.Client`` with bounded retries and timeouts and a one-attempt health check.

    Overrides two members of kfp 2.17's client (``_load_config``, private, and
    ``get_kfp_healthz``) and wraps the request method of its REST client; kfp is pinned.
    """
    # lazy: kfp is heavy; only a command that talks to the server needs it
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
def server_call(host: str, operation: str) -> Iterator[None]:
    """Turn the REST client's errors into :class:`KFPServerError` naming host and operation."""
    # lazy: kfp is heavy; only a command that talks to the server needs it
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
def kfp_stdout() -> Iterator[io.StringIO]:
    """Capture what kfp prints (experiment / run links) and log it at debug level."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            yield out
    finally:
        for line in out.getvalue().splitlines():
            logger.debug("kfp: %s", line)
