"""Shards of an iteration's prompts, and the cache that lets a rerun skip finished shards.

A shard is a contiguous slice of the prompts table (balanced: sizes differ by at most one).
Sampling seeds are per (prompt, sample), so the samples, verdicts and pairs do not depend on
the number of shards; merging sorts rows by ``(prompt_id, sample_idx)``.

:class:`ShardCache` keeps each finished shard's output folder under
``<root>/<stage>/<key>/``, the key a hash of everything the output depends on (the shard's
prompts or samples, the policy's weights, the stage's settings). A folder appears there only
when complete (a local copy is renamed into place; on S3 its manifest is written last), so an
interrupted shard is simply redone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from mmrlaif.io import copy_tree, read_rows, s3, write_table

logger = logging.getLogger(__name__)

T = TypeVar("T")


def shard_bounds(n: int, shard: int, shards: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``shard`` of ``shards`` over ``n`` rows.

    Raises:
        ValueError: ``shard`` outside ``[0, shards)``.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in [0, {shards})")
    return shard * n // shards, (shard + 1) * n // shards


def shard_rows(rows: Sequence[Any], shard: int, shards: int) -> list[Any]:
    """The rows of one shard."""
    start, stop = shard_bounds(len(rows), shard, shards)
    return list(rows[start:stop])


def content_key(*parts: Any) -> str:
    """A short hash of ``parts`` (strings, numbers, or JSON-able mappings and lists)."""
    digest = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else json.dumps(part, sort_keys=True, default=str)
        digest.update(text.encode() + b"\x1f")
    return digest.hexdigest()[:24]


def rows_key(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A hash of some columns of ``rows`` (image cells by their bytes' hash)."""
    digest = hashlib.sha256()
    for row in rows:
        for column in columns:
            value = row.get(column)
            if isinstance(value, Mapping) and "bytes" in value:
                value = hashlib.sha256(value.get("bytes") or b"").hexdigest()
            digest.update(json.dumps(value, sort_keys=True, default=str).encode() + b"\x1f")
        digest.update(b"\x1e")
    return digest.hexdigest()[:24]


class ShardCache:
    """Finished shards by key, in a folder or under an ``s3://`` prefix.

    Args:
        root: The cache's folder or prefix.
    """

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def _where(self, stage: str, key: str) -> str:
        return f"{self.root}/{stage}/{key}"

    def restore(self, stage: str, key: str, out_dir: str | Path) -> bool:
        """Copy a finished shard into ``out_dir``; ``False`` when there is none (or only a
        partial one)."""
        where = self._where(stage, key)
        out_dir = Path(out_dir)
        if s3.is_s3(where):
            try:
                s3.download_tree(where, out_dir)
            except (s3.IncompleteTreeError, FileNotFoundError):
                return False
        else:
            if not Path(where).is_dir():
                return False
            out_dir.mkdir(parents=True, exist_ok=True)
            for item in Path(where).iterdir():
                shutil.copy2(item, out_dir / item.name)
        logger.info("%s shard %s: reused from %s", stage, key, where)
        return True

    def publish(self, stage: str, key: str, out_dir: str | Path) -> str:
        """Keep ``out_dir`` (a finished shard) under its key; returns where."""
        where = self._where(stage, key)
        if s3.is_s3(where):
            s3.upload_tree(out_dir, where)
        else:
            Path(where).parent.mkdir(parents=True, exist_ok=True)
            copy_tree(out_dir, where)
        return where


def cached_shard(
    cache_root: str | None,
    stage: str,
    out_dir: str | Path,
    stats_type: type[T],
    key_parts: Callable[[], tuple[Any, ...]],
    compute: Callable[[], T],
) -> T:
    """A shard's outputs from the shard cache when it holds them, else computed and kept there.

    Args:
        cache_root: ``pipeline.shard_cache`` (``None``: no cache, always compute).
        stage: The cache's stage folder (``samples``, ``feedback``).
        out_dir: The task's output folder, which ``compute`` writes.
        stats_type: The stage's statistics dataclass (a reused shard's are read back as one).
        key_parts: The inputs the outputs depend on (hashed into the key; only asked for
            with a cache).
        compute: Writes the outputs to ``out_dir`` and returns their statistics.
    """
    if not cache_root:
        return compute()
    cache = ShardCache(cache_root)
    key = content_key(stage, *key_parts())
    if cache.restore(stage, key, out_dir):
        return reused_stats(out_dir, key, stats_type)
    stats = compute()
    cache.publish(stage, key, out_dir)
    return stats


def reused_stats(out_dir: str | Path, key: str, stats_type: type[T]) -> T:
    """A restored shard's statistics as ``stats_type`` (a dataclass; fields its ``stats.json``
    lacks keep their defaults), noting in that file that the shard was reused."""
    path = Path(out_dir) / "stats.json"
    stats = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**stats, "reused_shard": key}, indent=2))
    return stats_type(**{f.name: stats[f.name] for f in fields(stats_type) if f.name in stats})


def merge_tables(parts: Sequence[str | Path], name: str, out_dir: str | Path) -> int:
    """Concatenate the ``<name>.parquet`` of shard folders, sorted by (prompt_id, sample_idx).

    Returns:
        The number of rows written.
    """
    rows: list[dict[str, Any]] = []
    for part in parts:
        rows.extend(read_rows(Path(part) / f"{name}.parquet"))
    rows.sort(key=lambda r: (str(r.get("prompt_id")), int(r.get("sample_idx") or 0)))
    write_table(rows, Path(out_dir) / f"{name}.parquet")
    return len(rows)


def merge_stats(parts: Sequence[str | Path]) -> dict[str, Any]:
    """Sum the numeric entries (and count mappings) of the shards' ``stats.json``."""
    total: dict[str, Any] = {}
    for part in parts:
        path = Path(part) / "stats.json"
        stats = json.loads(path.read_text()) if path.is_file() else {}
        for key, value in stats.items():
            if key == "reused_shard":
                total.setdefault("reused_shards", []).append(value)
            elif isinstance(value, bool) or not isinstance(value, int | float | dict):
                total.setdefault(key, value)
            elif isinstance(value, dict):
                bucket = total.setdefault(key, {})
                for k, v in value.items():
                    if isinstance(v, int | float):
                        bucket[k] = bucket.get(k, 0) + v
            else:
                total[key] = total.get(key, 0) + value
    total["shards"] = len(parts)
    return total


def merge_step(
    sample_parts: Sequence[str | Path],
    feedback_parts: Sequence[str | Path],
    samples_out: str | Path,
    feedback_out: str | Path,
) -> dict[str, int]:
    """Merge the shards' samples and feedback folders into one of each (rows sorted, stats
    summed).

    Returns:
        Row counts: ``{"samples": ..., "feedback": ...}``.
    """
    counts = {}
    for name, parts, out in (
        ("samples", sample_parts, samples_out),
        ("feedback", feedback_parts, feedback_out),
    ):
        counts[name] = merge_tables(parts, name, out)
        (Path(out) / "stats.json").write_text(json.dumps(merge_stats(parts), indent=2))
    logger.info("merged %d shard(s): %s", len(sample_parts), counts)
    return counts
