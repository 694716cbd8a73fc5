"""Artifact tables and files: Parquet tables with images in the HF ``Image`` layout.

Tables flow between stages as Parquet files, one row per item. Image columns hold the Hugging
Face ``datasets.Image`` layout ``{"bytes": <png>, "path": None}`` and carry the ``huggingface``
schema metadata, so ``datasets.load_dataset("parquet", ...)`` decodes them as images.

Every write goes to a temporary name beside the target and is renamed into place last, so a
reader never sees a half-written file. Tables and JSON files may also live on S3
(``s3://bucket/key``): they are written locally, then published atomically by
:mod:`mmrlaif.io.s3`, and read back through a temporary local copy.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from mmrlaif.io import s3

logger = logging.getLogger(__name__)

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


class ImageError(ValueError):
    """An image cell is missing, empty, in the wrong layout, too large or cannot be decoded.

    Attributes:
        reason: ``missing``, ``wrong layout``, ``too large`` or ``undecodable`` (a skip reason).
    """

    def __init__(self, message: str, reason: str = "undecodable") -> None:
        super().__init__(message)
        self.reason = reason


#: PIL's own decompression-bomb warning threshold, the default pixel limit of imported images.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485


def image_to_cell(image: Image.Image) -> dict[str, Any]:
    """Encode a PIL image as an HF ``Image`` cell (PNG bytes, no path)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def cell_to_image(
    cell: Mapping[str, Any] | Image.Image | None, item: str, max_pixels: int | None = None
) -> Image.Image:
    """Decode an HF ``Image`` cell into an RGB PIL image.

    Args:
        cell: ``{"bytes": ..., "path": ...}``; bytes win over path.
        item: Name of the row (e.g. its ``prompt_id``), used in errors.
        max_pixels: Refuse images with more pixels (read from the header, before decoding);
            ``None``: PIL's own decompression-bomb limit only.

    Raises:
        ImageError: Naming ``item`` (and with a ``reason``) when the cell is missing, not in
            the ``{bytes, path}`` layout (e.g. raw bytes), empty, too large or undecodable.
    """
    if cell is None:
        raise ImageError(f"{item}: image is missing", "missing")
    if isinstance(cell, Image.Image):  # already decoded (a ``datasets`` Image column)
        return cell.convert("RGB")
    if not isinstance(cell, Mapping):
        raise ImageError(
            f"{item}: image cell is {type(cell).__name__}, not the HF Image layout "
            "{bytes, path} (write images with datasets.Image or as {'bytes': ..., 'path': None})",
            "wrong layout",
        )
    data = cell.get("bytes")
    path = cell.get("path")
    try:
        if data:
            image = Image.open(io.BytesIO(data))
        elif path:
            image = Image.open(path)
        else:
            raise ImageError(f"{item}: image cell has neither bytes nor path", "missing")
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageError(
                f"{item}: image {width}x{height} has {width * height} pixels, over the limit "
                f"of {max_pixels} (data.max_image_pixels)",
                "too large",
            )
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{item}: image too large ({exc})", "too large") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"{item}: image cannot be decoded ({exc})") from exc
    return image.convert("RGB")


def write_table(
    table: pa.Table | Sequence[Mapping[str, Any]],
    path: str | Path,
    image_columns: Sequence[str] = ("image", "images"),
) -> Path | str:
    """Write a table to Parquet atomically, tagging image columns for ``datasets``.

    Args:
        table: A pyarrow table, or rows as mappings.
        path: Target ``.parquet`` file (parent folders are created), or an ``s3://`` URI.
        image_columns: Columns in the HF ``Image`` layout, or lists of such cells (as TRL's
            ``images`` column); those absent are ignored.

    Returns:
        The written path (a ``Path``), or the URI (a ``str``) for S3.
    """
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pylist(list(table)) if table else pa.table({})
    present = [c for c in image_columns if c in table.column_names]
    if present:
        table = _tag_images(table, present)
    if s3.is_s3(path):
        uri = _s3_uri(path)
        with _s3_upload(uri, "t.parquet") as tmp:
            pq.write_table(table, tmp)
        logger.debug("wrote %d rows to %s", table.num_rows, uri)
        return uri
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    logger.debug("wrote %d rows to %s", table.num_rows, path)
    return path


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a Parquet table written by :func:`write_table` (or any Parquet file).

    Args:
        path: A local ``.parquet`` file, or an ``s3://`` URI (fetched to a temporary file).
        columns: Columns to read; all when ``None``.

    Raises:
        FileNotFoundError: Naming the path or URI when there is no such table.
    """
    if s3.is_s3(path):
        with tempfile.TemporaryDirectory(prefix="mmrlaif-s3-") as folder:
            local = s3.download_file(_s3_uri(path), Path(folder) / "t.parquet")
            # Read fully into memory before the temporary file goes away.
            return pq.read_table(local, columns=list(columns) if columns else None)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table not found: {path}")
    return pq.read_table(path, columns=list(columns) if columns else None)


def read_rows(path: str | Path, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Read a Parquet table (local path or ``s3://`` URI) as a list of row dicts."""
    return read_table(path, columns).to_pylist()


def write_json(data: Any, path: str | Path) -> Path | str:
    """Write JSON atomically (sorted keys, indented) to a local path or an ``s3://`` URI.

    Returns:
        The written path (a ``Path``), or the URI (a ``str``) for S3.
    """
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if s3.is_s3(path):
        uri = _s3_uri(path)
        with _s3_upload(uri, "data.json") as tmp:
            tmp.write_text(text)
        return uri
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def _s3_uri(path: str | Path) -> str:
    """The canonical ``s3://bucket/key`` of an object URI; ValueError when malformed."""
    bucket, key = s3.parse_s3(path, require_key=True)
    return f"s3://{bucket}/{key}"


@contextmanager
def _s3_upload(uri: str, name: str) -> Iterator[Path]:
    """Yield a temporary local file; upload it to ``uri`` atomically if the block succeeds."""
    with tempfile.TemporaryDirectory(prefix="mmrlaif-s3-") as folder:
        tmp = Path(folder) / name
        yield tmp
        s3.upload_file(tmp, uri)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On error the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def copy_tree(src: str | Path, dst: str | Path) -> Path:
    """Copy folder ``src`` to ``dst`` under a temporary name, then rename it into place."""

    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return dst


def _tag_images(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """Cast image columns (single images, or lists of images) to the HF layout and tag them."""
    # lazy: datasets takes seconds to import; only the image-column features need it
    from datasets import Features, Image, List

    features = Features.from_arrow_schema(table.schema)
    for name in columns:
        is_list = pa.types.is_list(table.schema.field(name).type) or pa.types.is_large_list(
            table.schema.field(name).type
        )
        features[name] = List(Image()) if is_list else Image()
    return table.cast(features.arrow_schema)
