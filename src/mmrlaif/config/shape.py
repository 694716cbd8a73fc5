"""The pipeline's shape: what of the config the compiled pipeline is built from.

A compiled pipeline fixes its shape (the method, the unrolled iterations, the shards, the
Kubernetes settings of its tasks, which tasks may be cached), while every task reads the
``config`` parameter it is given at run time. A run whose runtime config has another shape
would pair a graph built for one config with the values of another; :func:`shape_differences`
names the keys that differ, so that the first task (and ``submit``) refuses such a run.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mmrlaif.config.strict import to_dict

if TYPE_CHECKING:
    from mmrlaif.config import Config


def pipeline_shape(cfg: Config) -> dict[str, Any]:
    """The values of ``cfg`` the pipeline's graph is built from, by dotted key."""
    shape: dict[str, Any] = {
        f"pipeline.{key}": getattr(cfg.pipeline, key)
        for key in ("name", "method", "iterations", "shards", "max_parallel_shards")
    }
    shape |= _dotted("kubernetes", to_dict(cfg.kubernetes))
    # the prompts' and the starting policy's sources decide whether those tasks are cached
    shape["data.align_prompts / data.prompts_prefix (set)"] = bool(
        cfg.data.align_prompts or cfg.data.prompts_prefix
    )
    shape["model.name_or_path (registry or S3)"] = (cfg.model.name_or_path or "").startswith(
        ("models:/", "s3://")
    )
    return shape


def _dotted(prefix: str, value: Any) -> dict[str, Any]:
    """A nested mapping's leaves by dotted key (lists are leaves)."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out |= _dotted(f"{prefix}.{key}", item)
    return out


def shape_text(cfg: Config) -> str:
    """:func:`pipeline_shape` as one line of JSON (what a compiled pipeline records)."""
    return json.dumps(pipeline_shape(cfg), sort_keys=True, separators=(",", ":"))


def shape_differences(compiled: str | dict[str, Any], cfg: Config) -> list[str]:
    """The shape keys whose value in ``cfg`` differs from the ``compiled`` shape, each as
    ``key: compiled -> runtime`` (empty: same shape)."""
    before = json.loads(compiled) if isinstance(compiled, str) else compiled
    now = json.loads(shape_text(cfg))
    return [
        f"{key}: {json.dumps(before.get(key))} -> {json.dumps(now.get(key))}"
        for key in sorted(set(before) | set(now))
        if before.get(key) != now.get(key)
    ]
