"""Alignment prompts from a Parquet dataset (local or ``s3://``): one image + question per row.

The rows become the pipeline's prompts table (``prompt_id``, ``image`` in the HF ``Image``
layout, ``question``, and ``objects`` / ``answer`` when the dataset has them, as POVID needs a
reference answer). A row whose image cannot be decoded or whose question is empty is skipped
and counted with its reason, as is an exact duplicate (same image and question); a missing
column, a repeated value of ``data.id_column`` or a dataset with no usable row is
an error naming the file and the row.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mmrlaif.io.tables import ImageError, cell_to_image, read_table, write_table

if TYPE_CHECKING:
    from mmrlaif.config import DataConfig

logger = logging.getLogger(__name__)

#: Optional ground-truth columns carried over when present.
OPTIONAL_COLUMNS = ("objects", "answer")


class PromptsError(ValueError):
    """The prompts dataset is unusable (missing column, duplicate id, no usable row)."""


@dataclass
class PromptImportStats:
    """What the import kept and skipped.

    Attributes:
        source: The dataset's URI.
        rows: Rows read (after ``limit``).
        kept: Rows written.
        skipped: Reason -> count.
    """

    source: str
    rows: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def prompt_id_of(image_bytes: bytes, question: str) -> str:
    """Content id of a prompt: the hash of its image bytes and question."""
    digest = hashlib.sha256(image_bytes)
    digest.update(b"\0" + question.encode())
    return digest.hexdigest()[:16]


def import_prompts(cfg: DataConfig, out: str | Path) -> PromptImportStats:
    """Read ``cfg.align_prompts`` and write it as a prompts table at ``out``.

    Raises:
        PromptsError: Naming the file (and row) for a missing column, a duplicate prompt id,
            or when no row is usable.
    """
    source = cfg.align_prompts
    if not source:
        raise PromptsError("data.align_prompts is not set")
    table = read_table(source)
    if cfg.limit is not None:
        table = table.slice(0, cfg.limit)
    stats = PromptImportStats(source, rows=table.num_rows)
    rows, skipped = prompt_rows(table, source, cfg)
    if not rows:
        raise PromptsError(
            f"{source}: no usable prompt in {table.num_rows} row(s) ({dict(skipped)})"
        )
    write_table(rows, out)
    stats.kept, stats.skipped = len(rows), dict(skipped)
    logger.info("imported %d of %d prompts from %s", stats.kept, stats.rows, source)
    return stats


def prompt_rows(
    table: pa.Table, source: str, cfg: DataConfig, seen: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The usable rows of one prompts file, in the prompts-table layout.

    Args:
        table: The file's rows.
        source: The file's URI (for messages).
        cfg: Column names.
        seen: Prompt id -> where it was first seen, shared across the files of one import
            (updated in place).

    Returns:
        The rows, and the skip reasons with their counts.

    Raises:
        PromptsError: A missing column, or a repeated value of ``cfg.id_column``.
    """
    needed = [cfg.image_column, cfg.question_column] + ([cfg.id_column] if cfg.id_column else [])
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise PromptsError(
            f"{source}: missing column(s) {', '.join(missing)} "
            f"(has: {', '.join(table.column_names)}; set data.image_column / question_column)"
        )
    seen = {} if seen is None else seen
    skipped: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for index, row in enumerate(table.to_pylist()):
        where = f"{source} row {index}"
        question = row[cfg.question_column]
        if not isinstance(question, str) or not question.strip():
            skipped["empty question"] += 1
            logger.warning("%s: empty question, skipped", where)
            continue
        cell = row[cfg.image_column]
        try:
            cell_to_image(cell, where, cfg.max_image_pixels)
        except ImageError as exc:
            skipped[f"image {exc.reason}"] += 1
            logger.warning("skipped: %s", exc)
            continue
        image_bytes = cell.get("bytes") or Path(cell["path"]).read_bytes()
        pid = str(row[cfg.id_column]) if cfg.id_column else prompt_id_of(image_bytes, question)
        if pid in seen and cfg.id_column:
            raise PromptsError(f"{where}: prompt id {pid!r} repeats {seen[pid]}")
        if pid in seen:
            skipped["duplicate of an earlier row"] += 1
            logger.warning("%s: same image and question as %s, skipped", where, seen[pid])
            continue
        seen[pid] = where
        out_row = {
            "prompt_id": pid,
            "image": {"bytes": image_bytes, "path": None},
            "question": question,
        }
        out_row.update({c: row[c] for c in OPTIONAL_COLUMNS if c in row})
        rows.append(out_row)
    return rows, skipped
