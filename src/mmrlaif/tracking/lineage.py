"""Lineage of a registered model version: content hashes of its data and weights, its figures.

Every version carries tags a reader (and the promotion gate) can rely on without opening any
artifact: ``git_sha``, ``config_hash``, ``data.*_sha`` (content hashes of the tables it was
trained and evaluated on), ``model_sha`` (content hash of its weight files) and ``metric.*``
(its headline figures on the eval split).
"""

from __future__ import annotations

from collections.abc import Mapping

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
