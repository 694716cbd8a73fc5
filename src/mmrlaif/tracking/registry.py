"""Register a trained policy (a Hugging Face model folder) in the MLflow model registry."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from mmrlaif.tracking import mlflow_client as mf

logger = logging.getLogger(__name__)

MODEL_ARTIFACT_PATH = "model"


def register_model(
    uri: str,
    run_id: str,
    model_dir: str | Path,
    name: str,
    tags: Mapping[str, str] | None = None,
    alias: str | None = None,
    *,
    timeout_s: float = 300.0,
) -> str:
    """Log ``model_dir`` to a run and register it as a new version of model ``name``.

    The folder's files are logged under the run's ``model/`` artifact folder; the registered
    model is created when missing; the version's source is ``<run artifact uri>/model``.

    Args:
        uri: Tracking URI (its registry is used too).
        run_id: The run that produced the model (e.g. an iteration's child run).
        model_dir: Folder written by ``save_pretrained`` (weights, config, processor).
        name: Registered model name.
        tags: Tags of the new model version.
        alias: Alias moved to the new version (e.g. ``"champion"``), if given.
        timeout_s: How long to wait for the version to become READY.

    Returns:
        The new version, as a string (``"1"``, ``"2"``, ...).

    Raises:
        NotADirectoryError: ``model_dir`` is not a folder.
        RuntimeError: Registration failed or did not finish within ``timeout_s``.
    """
    # lazy: mlflow takes seconds to import; importing mmrlaif.tracking stays cheap
    from mlflow.exceptions import MlflowException

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise NotADirectoryError(f"model folder not found: {model_dir}")
    client = mf.client(uri)
    client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT_PATH}"
    mv = client.create_model_version(name, source=source, run_id=run_id, tags=dict(tags or {}))
    # The SQLite store hands back an int here, a server a str.
    version = str(mv.version)
    _wait_ready(client, name, version, mv.status, timeout_s)
    if alias:
        client.set_registered_model_alias(name, alias, version)
    logger.info("registered %s version %s from run %s", name, version, run_id)
    return version


def _wait_ready(client: object, name: str, version: str, status: str, timeout_s: float) -> None:
    """Poll the model version until READY; raise if it fails or times out."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while status != "READY":
        if status == "FAILED_REGISTRATION":
            raise RuntimeError(f"registering {name} version {version} failed")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} version {version} not READY after {timeout_s:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
        status = client.get_model_version(name, version).status  # type: ignore[attr-defined]
