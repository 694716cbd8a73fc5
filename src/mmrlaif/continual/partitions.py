"""New prompts for a continual run: date partitions after the watermark, minus prompts used
before, plus an optional replay of older ones; and the watermark's advance after success.

Layout of ``data.prompts_prefix`` (a folder or an ``s3://`` prefix)::

    <prefix>/dt=2026-11-16/part-0.parquet     image + question per row (data.* columns)
    <prefix>/dt=2026-11-23/part-0.parquet

State between runs: the watermark (the newest partition date consumed by the last successful
run) is a tag of ``tracking.registered_model``; the ids (content hashes) of every consumed
prompt are in the ledger (``data.ledger``), one Parquet file per successful run.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmrlaif.config import Config, ConfigError
from mmrlaif.io import read_table, s3, write_json, write_table
from mmrlaif.io.prompts import prompt_rows
from mmrlaif.tracking.uri import tracking_uri

logger = logging.getLogger(__name__)

#: Registered-model tags holding the watermark and the prefix it belongs to.
WATERMARK_TAG = "continual.watermark"
PREFIX_TAG = "continual.prefix"
#: What the world step writes next to its tables.
REPORT = "continual.json"

_PARTITION = re.compile(r"(?:^|/)dt=([^/]+)/[^/]+\.parquet$")


@dataclass(frozen=True)
class Partition:
    """One date partition: its date and its Parquet files."""

    date: str
    files: tuple[str, ...]


@dataclass
class ContinualReport:
    """What a run consumed (written as ``continual.json``).

    Attributes:
        prefix: ``data.prompts_prefix``.
        watermark_before: The watermark the run started from (``None``: first run).
        watermark_after: The watermark once this run succeeds.
        partitions: Dates of the partitions read as new.
        new_prompts: New prompts used.
        replayed: Older prompts mixed in.
        skipped: Reason -> count (used before, bad rows, ...).
        new_ids: Ids of the new prompts (added to the ledger on success).
        message: One line for people.
    """

    prefix: str
    watermark_before: str | None
    watermark_after: str | None
    partitions: list[str] = field(default_factory=list)
    new_prompts: int = 0
    replayed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    new_ids: list[str] = field(default_factory=list)
    message: str = ""


def list_partitions(prefix: str) -> list[Partition]:
    """The ``dt=YYYY-MM-DD`` partitions under ``prefix``, oldest first.

    Raises:
        ConfigError: A partition name that is not a date, or no such folder.
    """
    if s3.is_s3(prefix):
        root = prefix.rstrip("/") + "/"
        files = [(uri, uri[len(root) :]) for uri in s3.list_prefix(root)]
    else:
        base = Path(prefix)
        if not base.is_dir():
            raise ConfigError(f"data.prompts_prefix: no such folder {prefix!r}")
        files = [(str(p), p.relative_to(base).as_posix()) for p in sorted(base.rglob("*.parquet"))]
    by_date: dict[str, list[str]] = {}
    for uri, rel in files:
        match = _PARTITION.match(rel)
        if not match or rel.startswith("_"):
            continue
        try:
            datetime.date.fromisoformat(match[1])
        except ValueError as exc:
            raise ConfigError(f"{uri}: partition dt={match[1]!r} is not a YYYY-MM-DD date") from exc
        by_date.setdefault(match[1], []).append(uri)
    return [Partition(d, tuple(sorted(f))) for d, f in sorted(by_date.items())]


def read_watermark(cfg: Config) -> str | None:
    """The watermark of the last successful run (``None`` before the first one)."""
    model = _tracked_model(cfg)
    # lazy: mlflow takes seconds to import; only a ledger on MLflow needs it
    from mlflow.exceptions import MlflowException

    # lazy: mlflow takes seconds to import; only a ledger on MLflow needs it
    from mmrlaif.tracking import mlflow_client as mf

    try:
        tags = mf.client(tracking_uri(cfg)).get_registered_model(model).tags
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if tags.get(PREFIX_TAG) not in (None, cfg.data.prompts_prefix):
        logger.warning(
            "the watermark %s belongs to %s, not %s: starting over",
            tags.get(WATERMARK_TAG),
            tags[PREFIX_TAG],
            cfg.data.prompts_prefix,
        )
        return None
    return tags.get(WATERMARK_TAG)


def read_ledger(uri: str) -> set[str]:
    """Ids of every prompt consumed by a successful run."""
    if s3.is_s3(uri):
        files = [u for u in s3.list_prefix(uri.rstrip("/") + "/") if u.endswith(".parquet")]
    else:
        files = [str(p) for p in sorted(Path(uri).glob("*.parquet"))] if Path(uri).is_dir() else []
    ids: set[str] = set()
    for file in files:
        ids.update(read_table(file, ["prompt_id"]).column("prompt_id").to_pylist())
    return ids


def select_prompts(cfg: Config, out_table: str | Path, report_path: str | Path) -> ContinualReport:
    """Write this run's align prompts: new partitions' unused prompts plus the replay.

    Writes ``out_table`` (possibly empty: then the run trains nothing and registers nothing)
    and the report at ``report_path``.
    """
    data = cfg.data
    prefix = data.prompts_prefix
    if not prefix:
        raise ConfigError("data.prompts_prefix is not set")
    watermark = read_watermark(cfg)
    used = read_ledger(data.ledger)
    partitions = list_partitions(prefix)
    new = [p for p in partitions if watermark is None or p.date > watermark]
    old = [p for p in partitions if p not in new]
    report = ContinualReport(prefix, watermark, watermark, [p.date for p in new])
    skipped: Counter[str] = Counter()
    seen: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for part in new:
        for file in part.files:
            got, why = prompt_rows(read_table(file), file, data, seen)
            skipped.update(why)
            for row in got:
                if row["prompt_id"] in used:
                    skipped["used by an earlier run"] += 1
                else:
                    rows.append(row)
    if data.limit is not None and len(rows) > data.limit:
        skipped["over data.limit"] += len(rows) - data.limit
        rows = rows[: data.limit]
    replay = _replay(old, data, round(data.replay_fraction * len(rows)), seen) if rows else []
    write_table(rows + replay, out_table)
    report.new_prompts, report.replayed = len(rows), len(replay)
    report.new_ids = [r["prompt_id"] for r in rows]
    report.skipped = dict(skipped)
    if new:
        report.watermark_after = new[-1].date
    since = f"after {watermark}" if watermark else "at all"
    report.message = (
        f"{len(rows)} new prompt(s) from partition(s) {', '.join(report.partitions)}"
        + (f" + {len(replay)} replayed" if replay else "")
        if rows
        else f"no new prompts {since} under {prefix}: nothing to train, nothing registered"
    )
    logger.info("%s (skipped: %s)", report.message, dict(skipped) or "none")
    write_json(asdict(report), report_path)
    return report


def _replay(
    old: list[Partition], data: Any, count: int, seen: dict[str, str]
) -> list[dict[str, Any]]:
    """``count`` prompts drawn (seeded) from the partitions at or before the watermark."""
    if count <= 0 or not old:
        return []
    pool: list[dict[str, Any]] = []
    for part in old:
        for file in part.files:
            pool.extend(prompt_rows(read_table(file), file, data, seen)[0])
    return random.Random(data.seed).sample(pool, min(count, len(pool)))


def advance(cfg: Config, report_path: str | Path, run_id: str) -> ContinualReport | None:
    """After a successful run: add its new prompts to the ledger, then move the watermark.

    The ledger file is written first (atomically): should moving the tag fail, the next run
    re-reads those partitions but skips their prompts as used.

    Returns:
        The run's report, or ``None`` when it consumed nothing (the watermark stays).
    """
    report = ContinualReport(**json.loads(Path(report_path).read_text()))
    if not report.new_prompts:
        return None
    ledger = cfg.data.ledger
    write_table(
        [{"prompt_id": i} for i in report.new_ids],
        f"{ledger.rstrip('/')}/{run_id}.parquet",
        # lazy: mlflow takes seconds to import; only a ledger on MLflow needs it
    )
    from mmrlaif.tracking import mlflow_client as mf

    client = mf.client(tracking_uri(cfg))
    model = _tracked_model(cfg)
    client.set_registered_model_tag(model, PREFIX_TAG, report.prefix)
    client.set_registered_model_tag(model, WATERMARK_TAG, report.watermark_after)
    logger.info("watermark of %s moved to %s", model, report.watermark_after)
    return report


def _tracked_model(cfg: Config) -> str:
    if not cfg.tracking.registered_model:
        raise ConfigError(
            "data.prompts_prefix needs tracking.registered_model (it keeps the watermark)"
        )
    return cfg.tracking.registered_model
