"""Lineage of a registered model version: content hashes of its data and weights, its figures.

Every version carries tags a reader (and the promotion gate) can rely on without opening any
artifact: ``git_sha``, ``config_hash``, ``data.*_sha`` (content hashes of the tables it was
trained and evaluated on), ``model_sha`` (content hash of its weight files) and ``metric.*``
(its headline figures on the eval split).

The parent run of a pipeline run carries the lineage every version it registers copies
(:func:`log_lineage`: where its starting policy came from, what data it consumed, an import of
prompts), and its own ``git_sha`` and ``config_hash`` (:func:`config_hash`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from mmrlaif.config import Config, config_to_yaml
from mmrlaif.config.selection import BENCHMARK_NAMES
from mmrlaif.tracking import mlflow_client as mf

#: Environment variable carrying the source revision into containers (set by the image build).
GIT_SHA_ENV = "MMRLAIF_GIT_SHA"
METRIC_PREFIX = "metric."
MODEL_SHA_TAG = "model_sha"
EVAL_SHA_TAG = "data.eval_sha"


def short(sha: str) -> str:
    """The first 16 hex digits of a hash (what tags carry)."""
    return sha[:16]


def metric_tags(headline: Mapping[str, float]) -> dict[str, str]:
    """``metric.<name>`` tags for a headline (exact ``repr`` of each float)."""
    return {f"{METRIC_PREFIX}{name}": repr(float(value)) for name, value in headline.items()}


def metrics_from_tags(tags: Mapping[str, str]) -> dict[str, float]:
    """The headline back from ``metric.*`` tags (other tags ignored)."""
    return {
        key[len(METRIC_PREFIX) :]: float(value)
        for key, value in tags.items()
        if key.startswith(METRIC_PREFIX)
    }


def config_hash(cfg: Config) -> str:
    """Short content hash of the resolved configuration."""
    return hashlib.sha256(config_to_yaml(cfg).encode()).hexdigest()[:12]


def benchmark_tags(eval_report: dict[str, Any]) -> dict[str, str]:
    """MLflow tags saying, per field benchmark of an ``eval.json``, whether its figures are the
    reference script's: ``benchmark.<name>.reference`` (``true``/``false``) and, when not,
    ``benchmark.<name>.approximate`` (why)."""
    notes = eval_report.get("benchmark_notes") or {}
    figures = eval_report.get("benchmarks") or {}
    ran = {n for n in BENCHMARK_NAMES if any(key.startswith(f"{n}_") for key in figures)}
    tags = {}
    names = ran | set(notes)
    for name in sorted(names):
        tags[f"benchmark.{name}.reference"] = "false" if name in notes else "true"
        if name in notes:
            tags[f"benchmark.{name}.approximate"] = "; ".join(notes[name])
    return tags


def import_line(stats: dict[str, Any]) -> str:
    """One line on an import of prompts: ``kept 98 of 100 rows from X; skipped: image too
    large 1, empty question 1``."""
    line = f"kept {stats['kept']} of {stats['rows']} rows from {stats['source']}"
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(stats["skipped"].items()))
    return f"{line}; skipped: {skipped}" if skipped else line


def log_lineage(
    uri: str, run_id: str, tags: dict[str, str], stats: dict[str, Any]
) -> dict[str, str]:
    """Tag the parent run with its lineage ``tags``; with the ``stats`` of an import of
    prompts (``align_import.json``; empty: none), also log the metrics ``import/rows``,
    ``import/kept``, ``import/skipped/<reason>`` and the tag ``prompt_import``
    (:func:`import_line`), which is added to ``tags``.

    Returns:
        The tags set.
    """
    client = mf.client(uri)
    if stats:
        tags["prompt_import"] = import_line(stats)
        metrics = [mf.metric("import/rows", stats["rows"]), mf.metric("import/kept", stats["kept"])]
        metrics += [mf.metric(f"import/skipped/{k}", v) for k, v in stats["skipped"].items()]
        mf.log_metrics(client, run_id, metrics)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    return tags


def prompt_import_tag(uri: str, run_id: str) -> str | None:
    """The parent run's ``prompt_import`` tag (:func:`log_lineage`); ``None`` when not set."""
    return mf.client(uri).get_run(run_id).data.tags.get("prompt_import")
