"""Continual retraining: each run starts from the registry's champion (or any resolvable
policy reference) and consumes only prompts that arrived since the last successful run.

- :mod:`mmrlaif.continual.source` resolves the starting policy (hub id, folder, ``s3://``,
  ``models:/<name>@<alias>``);
- :mod:`mmrlaif.continual.partitions` selects the new prompts (date partitions after the
  watermark, minus prompts used before, plus a replay) and advances the watermark on success.

:func:`lineage` is what every model version registered by such a run carries.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmrlaif.continual.partitions import REPORT

#: The base policy's record of where it came from (next to its ``model/``).
POLICY_SOURCE = "policy_source.json"


def lineage(world_dir: str | Path, base_run: str | Path) -> dict[str, str]:
    """Lineage tags of a run: the parent policy it started from and the data it consumed.

    Args:
        world_dir: The world step's folder (``continual.json`` when prompts are partitioned).
        base_run: The base policy's folder (``policy_source.json`` when a model was resolved).

    Returns:
        ``lineage.*`` tags: ``parent_source``, ``parent_version`` (registry sources),
        ``partitions``, ``watermark``, ``new_prompts``, ``replayed`` (continual runs).
    """

    tags: dict[str, str] = {}
    source = Path(base_run) / POLICY_SOURCE
    if source.is_file():
        resolved = json.loads(source.read_text())
        tags["lineage.parent_source"] = resolved["spec"]
        if resolved.get("version"):
            tags["lineage.parent_version"] = resolved["version"]
    report = Path(world_dir) / REPORT
    if report.is_file():
        consumed = json.loads(report.read_text())
        tags["lineage.partitions"] = ",".join(consumed["partitions"]) or "none"
        tags["lineage.watermark"] = consumed["watermark_after"] or "none"
        tags["lineage.new_prompts"] = str(consumed["new_prompts"])
        tags["lineage.replayed"] = str(consumed["replayed"])
    return tags
