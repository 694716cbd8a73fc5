"""Small helpers over ``mlflow.MlflowClient``: the tracking modules and the continual ledger.

MLflow is imported inside functions, so importing :mod:`mmrlaif.tracking` stays cheap and has no
side effects.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrlaif.tracking.uri import redact_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

logger = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation): key length, entries per log_batch call.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000

_BAD_KEY_CHARS = re.compile(r"[^\w./ -]")


def client(uri: str) -> MlflowClient:
    """An ``MlflowClient`` bound to ``uri`` (no global tracking state is touched).

    When ``uri`` carries credentials (``http://user:pass@host``), MLflow's own printing of run
    and model URLs to stdout is switched off for this process (those URLs would carry them).
    """
    # lazy: mlflow takes seconds to import; importing mmrlaif.tracking stays cheap
    from mlflow import MlflowClient

    if redact_uri(uri) != uri:
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        os.environ["MLFLOW_PRINT_MODEL_URLS_ON_CREATION"] = "false"
    return MlflowClient(tracking_uri=uri)


def now_ms() -> int:
    """Wall-clock time in milliseconds, as MLflow timestamps are."""
    return int(time.time() * 1000)


def safe_key(key: str) -> str:
    """Make ``key`` a valid MLflow param/metric name.

    Characters outside ``[A-Za-z0-9_./ -]`` become ``_``; empty, ``.`` and ``..`` path parts,
    which MLflow refuses, are dropped or escaped; the result is cut to 250 characters.
    """
    parts = [p for p in _BAD_KEY_CHARS.sub("_", str(key)).split("/") if p not in ("", ".")]
    cleaned = "/".join("__" if p == ".." else p for p in parts) or "_"
    return cleaned[:MAX_KEY_LENGTH]


def as_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def metric(key: str, value: float, step: int = 0, timestamp: int | None = None) -> Metric:
    """Build an ``mlflow.entities.Metric`` with a sanitised key."""
    # lazy: mlflow takes seconds to import; importing mmrlaif.tracking stays cheap
    from mlflow.entities import Metric

    ts = now_ms() if timestamp is None else timestamp
    return Metric(key=safe_key(key), value=value, timestamp=ts, step=int(step))


def log_metrics(mlflow_client: MlflowClient, run_id: str, metrics: Iterable[Metric]) -> int:
    """Log metrics with ``log_batch`` in chunks MLflow accepts; return how many were logged."""
    batch: list[Metric] = []
    count = 0
    for m in metrics:
        batch.append(m)
        if len(batch) == MAX_METRICS_PER_BATCH:
            mlflow_client.log_batch(run_id, metrics=batch)
            count += len(batch)
            batch = []
    if batch:
        mlflow_client.log_batch(run_id, metrics=batch)
        count += len(batch)
    return count


def to_plain(value: Any) -> Any:
    """Turn ``value`` into JSON/YAML-safe data: mappings, lists, str, numbers, bools, None.

    Non-finite floats become strings (``"nan"``, ``"inf"``) so the output is strict JSON.
    """
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_plain(v) for v in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    number = as_number(value)  # numpy scalars and the like
    if number is not None:
        return int(number) if isinstance(value, numbers.Integral) else to_plain(number)
    return str(value)


def log_text_artifact(mlflow_client: MlflowClient, run_id: str, name: str, text: str) -> None:
    """Log ``text`` as the artifact file ``name`` (a relative path) of the run."""
    rel = Path(name)
    with tempfile.TemporaryDirectory(prefix="mmrlaif-mlflow-") as tmp:
        local = Path(tmp) / rel.name
        local.write_text(text, encoding="utf-8")
        parent = rel.parent.as_posix()
        mlflow_client.log_artifact(run_id, str(local), None if parent == "." else parent)


def log_json_artifact(mlflow_client: MlflowClient, run_id: str, name: str, data: Any) -> None:
    """Log ``data`` (made JSON-safe) as the indented JSON artifact ``name``."""
    text = json.dumps(to_plain(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    log_text_artifact(mlflow_client, run_id, name, text)
