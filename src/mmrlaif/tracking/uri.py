"""Where a pipeline run is tracked: the MLflow tracking URI and how to look at it.

A run that names no tracking server keeps its own SQLite store inside the run folder, with
artifacts beside it, so nothing lands in the working directory's ``./mlruns``.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from mmrlaif.config import Config

logger = logging.getLogger(__name__)

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
LOCAL_DB_NAME = "mlflow.db"
LOCAL_ARTIFACTS_NAME = "mlartifacts"

_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:'\"]+)(:[^/@\s'\"]*)?@")


def redact_uri(text: str) -> str:
    """``text`` with the credentials of every URI in it replaced: ``http://user:pass@host`` ->
    ``http://***@host`` (for logs, params, tags, summaries and reports)."""
    return _USERINFO.sub(r"\1***@", text)


def resolve_tracking_uri(configured: str | None, run_dir: str | Path) -> str:
    """Pick the tracking URI for a pipeline run.

    Order: the ``MLFLOW_TRACKING_URI`` environment variable when set and non-empty, then
    ``configured`` when non-empty, then a SQLite store ``<run_dir>/mlflow.db``.

    Args:
        configured: The URI from the pipeline config, or ``None``.
        run_dir: The run's folder; created when the local store is chosen.

    Returns:
        The tracking URI, e.g. ``sqlite:////abs/run/mlflow.db``.
    """
    from_env = os.environ.get(ENV_TRACKING_URI, "").strip()
    if from_env:
        logger.debug("tracking URI from $%s: %s", ENV_TRACKING_URI, redact_uri(from_env))
        return from_env
    if configured and configured.strip():
        return configured.strip()
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{run_dir / LOCAL_DB_NAME}"


def tracking_uri(cfg: Config) -> str:
    """The run's tracking URI (environment, then config, then a local store in the run folder)."""
    return resolve_tracking_uri(cfg.tracking.uri, cfg.run.output_dir)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or ``None`` for any other URI."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def default_artifact_root(uri: str) -> Path | None:
    """Where a local SQLite store keeps artifacts: ``mlartifacts`` beside the database.

    Returns ``None`` for other stores, whose server decides.
    """
    db = sqlite_path(uri)
    return db.resolve().parent / LOCAL_ARTIFACTS_NAME if db is not None else None


def open_ui_command(uri: str) -> str:
    """Say how a user looks at the runs tracked at ``uri``.

    Args:
        uri: A tracking URI.

    Returns:
        For a tracking server (``http(s)://``) a sentence naming the address; for a database or
        file store the shell command that starts the MLflow UI on it.
    """
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        return f"open {redact_uri(uri)} in a browser"
    if scheme.split("+", 1)[0] in _DB_SCHEMES:
        return f"mlflow ui --backend-store-uri {shlex.quote(uri)}"
    if scheme in ("", "file"):
        # MLflow 3 refuses file stores unless this opt-out is set.
        return f"MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {shlex.quote(uri)}"
    return f"open the MLflow experiment at {redact_uri(uri)}"
