"""The folder layout of pipeline artifacts, shared by the stage steps and the components.

- a *policy run* folder holds the model under ``model/`` and its training report;
- a *table* folder holds ``<name>.parquet`` and the stage's ``stats.json``;
- a *report* folder holds ``eval.json`` (held-out eval split), ``val.json`` (validation) and
  ``data.json`` (content hashes of the data both were measured on).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmrlaif.io import write_json

MODEL_SUBDIR = "model"
STATS_FILE = "stats.json"
EVAL_REPORT = "eval.json"
VAL_REPORT = "val.json"
#: Content hashes of the data a report was measured on (``eval_sha``, ``val_sha``, ``pope_sha``).
DATA_REPORT = "data.json"
#: The candidate name of a DPO run's final model (checkpoints are ``step-<n>``).
FINAL = "final"
#: Where a DPO run keeps its intermediate checkpoints as loadable models (``select_every``).
CANDIDATES_SUBDIR = "candidates"
#: A finished local run's summary, copied into ``run.output_dir`` by ``mmrlaif run`` (what the
#: report and the ablation read, rather than kfp.local's task folder names).
SUMMARY_FILE = "summary.json"
#: Where the world folder records the import of external prompts (``data.align_prompts``).
IMPORT_REPORT = "align_import.json"
#: Root of DPO checkpoints shared by the attempts of a task: a shared volume on Kubernetes
#: (set by the pipeline's Kubernetes settings), ``<run.output_dir>/checkpoints`` locally.
CHECKPOINT_DIR_ENV = "MMRLAIF_CHECKPOINT_DIR"
#: The key of a local run (``mmrlaif run``), the same when a killed run is rerun in its
#: folder: part of every cacheable task's cache key and of the DPO checkpoint folder's name.
RUN_KEY_ENV = "MMRLAIF_RUN_KEY"


def log_metrics(artifact: Any, values: Mapping[str, float]) -> None:
    """Log ``values`` to a KFP ``Metrics`` output and write them to its path as JSON.

    The file matters: ``kfp.local`` takes a cached task's outputs only while every output's
    path exists, and a ``Metrics`` output it has no file for would make its task run again
    whenever a killed run resumes.
    """
    for key, value in values.items():
        artifact.log_metric(key, float(value))
    write_json({key: float(value) for key, value in values.items()}, artifact.path)


def model_dir(policy_run: str | Path) -> Path:
    """The model folder inside a policy run folder.

    Raises:
        FileNotFoundError: Naming the folder when it holds no model.
    """
    path = Path(policy_run) / MODEL_SUBDIR
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no model in policy artifact {policy_run} (expected {path})")
    return path


def table(folder: str | Path, name: str) -> Path:
    """``<folder>/<name>.parquet`` (the folder is created)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / f"{name}.parquet"


def write_stats(folder: str | Path, stats: Any) -> Path:
    """Write a stage's statistics (a dataclass or a mapping) as ``stats.json``."""
    data = dataclasses.asdict(stats) if dataclasses.is_dataclass(stats) else dict(stats)
    return write_json(data, Path(folder) / STATS_FILE)


def read_stats(folder: str | Path) -> dict[str, Any]:
    """A stage's ``stats.json`` (empty when the stage wrote none)."""
    path = Path(folder) / STATS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def iteration_seed(seed: int, iteration: int) -> int:
    """A distinct, reproducible seed per iteration (fresh draws every iteration)."""
    return seed + 1_000_003 * iteration
