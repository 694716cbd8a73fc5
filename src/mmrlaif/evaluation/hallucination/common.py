"""Shared pieces of the benchmark loaders: errors, data roots (local or S3), record readers.

* :class:`BenchmarkFormatError` - a benchmark file is malformed; names the file, the record and
  what is wrong.
* :class:`BenchmarkDataError` - benchmark data (a folder or file) is missing or not configured;
  a :class:`~mmrlaif.config.strict.ConfigError`, naming the benchmark and the path.
* :class:`DataRoot` - one benchmark's data folder, a local directory or an ``s3://`` prefix,
  read through :mod:`mmrlaif.io.s3` (files are fetched through a temporary local copy).
* :class:`Fields` - typed access to the fields of one JSON record, with errors that name the file
  and the record.
* :class:`Query` - one (image, prompt) the model is asked about.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, UnidentifiedImageError

from mmrlaif.config.strict import ConfigError
from mmrlaif.io import ImageError, s3

logger = logging.getLogger(__name__)

#: The model under test: a batch of (image, prompt) -> one answer per pair, in order.
AnswerFn = Callable[[Sequence[tuple[Image.Image, str]]], Sequence[str]]


class BenchmarkFormatError(ValueError):
    """A benchmark file is malformed.

    Attributes:
        file: Path or URI of the file.
        record: Which record (``"line 3"``, ``"record 2 (id 1005)"``), or ``None`` for the file
            as a whole.
        problem: What is wrong.
    """

    def __init__(self, file: str, record: str | None, problem: str) -> None:
        self.file = file
        self.record = record
        self.problem = problem
        where = f"{file}: {record}" if record else file
        super().__init__(f"{where}: {problem}")


class BenchmarkDataError(ConfigError):
    """Benchmark data is missing or not configured (a configuration error, not a crash).

    Attributes:
        benchmark: The benchmark (``"pope"``, ``"amber"``...).
        path: The missing folder or file (or the config key that should name it).
    """

    def __init__(self, benchmark: str, path: str, problem: str = "not found") -> None:
        self.benchmark = benchmark
        self.path = path
        super().__init__(f"benchmark {benchmark!r}: {problem}: {path}")


class DataRoot:
    """One benchmark's data folder: a local directory or an ``s3://bucket/prefix``.

    Paths inside the root are POSIX relative paths (``"data/annotations.json"``). On S3 the
    object keys under the prefix are listed once (on first use) and files are downloaded through
    a temporary local copy with :func:`mmrlaif.io.s3.download_file`.

    Args:
        location: The folder or ``s3://`` prefix.
        benchmark: Benchmark name, used in error messages.
        settings: S3 settings; ``s3.current_settings()`` when ``None``.

    Raises:
        BenchmarkDataError: If ``location`` is a malformed S3 URI.
    """

    def __init__(
        self, location: str | Path, benchmark: str, settings: s3.S3Settings | None = None
    ) -> None:
        self.benchmark = benchmark
        self._settings = settings
        self._keys: frozenset[str] | None = None
        self.is_s3 = s3.is_s3(location)
        if self.is_s3:
            try:
                bucket, key = s3.parse_s3(location)
            except ValueError as exc:
                raise BenchmarkDataError(benchmark, str(location), str(exc)) from exc
            key = key.strip("/")
            self.location = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
        else:
            self.location = str(Path(location))

    def __repr__(self) -> str:
        return f"DataRoot({self.location!r}, benchmark={self.benchmark!r})"

    def path(self, rel: str) -> str:
        """The full path or URI of ``rel`` (for messages and reading).

        Raises:
            BenchmarkDataError: If ``rel`` is absolute or climbs out of the root (``..``).
        """
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            raise BenchmarkDataError(self.benchmark, rel, "path leaves the data root")
        return f"{self.location}/{pure}" if str(pure) != "." else self.location

    def _all_keys(self) -> frozenset[str]:
        if self._keys is None:
            prefix = self.location + "/"
            uris = s3.list_prefix(prefix, self._settings)
            self._keys = frozenset(uri[len(prefix) :] for uri in uris)
        return self._keys

    def check(self) -> None:
        """Make sure the root exists (a folder, or a prefix with objects under it).

        Raises:
            BenchmarkDataError: Naming the benchmark and the location otherwise.
        """
        if self.is_s3:
            if not self._all_keys():
                raise BenchmarkDataError(self.benchmark, self.location, "no objects under prefix")
        elif not Path(self.location).is_dir():
            raise BenchmarkDataError(self.benchmark, self.location, "data folder not found")

    def exists(self, rel: str) -> bool:
        """Whether the file ``rel`` exists under the root."""
        full = self.path(rel)
        if self.is_s3:
            return full[len(self.location) + 1 :] in self._all_keys()
        return Path(full).is_file()

    def require(self, rel: str, what: str = "file not found") -> None:
        """Raise :class:`BenchmarkDataError` naming ``rel`` unless it exists."""
        if not self.exists(rel):
            raise BenchmarkDataError(self.benchmark, self.path(rel), what)

    def list_files(self, folder: str = ".") -> list[str]:
        """Relative paths of the files directly in ``folder`` (not in subfolders), sorted."""
        self.path(folder)  # refuses paths that leave the root
        folder = str(PurePosixPath(folder))
        if self.is_s3:
            prefix = "" if folder == "." else folder + "/"
            return sorted(
                k for k in self._all_keys() if k.startswith(prefix) and "/" not in k[len(prefix) :]
            )
        base = Path(self.path(folder))
        if not base.is_dir():
            return []
        return sorted(
            str(PurePosixPath(folder) / p.name) if folder != "." else p.name
            for p in base.iterdir()
            if p.is_file()
        )

    def read_bytes(self, rel: str) -> bytes:
        """The content of ``rel``.

        Raises:
            BenchmarkDataError: If it does not exist.
        """
        self.require(rel)
        if not self.is_s3:
            return Path(self.path(rel)).read_bytes()
        with tempfile.TemporaryDirectory(prefix="mmrlaif-bench-") as folder:
            local = s3.download_file(self.path(rel), Path(folder) / "f", self._settings)
            return local.read_bytes()

    def read_text(self, rel: str) -> str:
        """The content of ``rel`` as UTF-8 text (a BOM is dropped).

        Raises:
            BenchmarkDataError: If it does not exist.
            BenchmarkFormatError: If it is not UTF-8.
        """
        data = self.read_bytes(rel)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BenchmarkFormatError(self.path(rel), None, f"not UTF-8 text ({exc})") from exc


def load_json(root: DataRoot, rel: str) -> Any:
    """Parse the JSON file ``rel`` under ``root``.

    Raises:
        BenchmarkDataError: If it does not exist.
        BenchmarkFormatError: If it is not valid JSON (naming line and column).
    """
    text = root.read_text(rel)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchmarkFormatError(
            root.path(rel), f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}"
        ) from exc


def load_records(root: DataRoot, rel: str) -> list[tuple[str, Any]]:
    """Read a file of records: a JSON array, or JSON lines (one object per line).

    A file whose first non-blank character is ``[`` is read as an array, anything else as JSON
    lines (blank lines are skipped). POPE ships JSON lines under a ``.json`` name; both forms are
    accepted for every benchmark.

    Returns:
        ``(label, record)`` pairs, where the label names the record in errors: ``"record 3"``
        (0-based index) for arrays, ``"line 4"`` (1-based) for JSON lines.

    Raises:
        BenchmarkDataError: If the file does not exist.
        BenchmarkFormatError: Naming the file and the line when a record is not valid JSON.
    """
    text = root.read_text(rel)
    if text.lstrip().startswith("["):
        data = load_json(root, rel)
        return [(f"record {i}", record) for i, record in enumerate(data)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise BenchmarkFormatError(
                root.path(rel), f"line {number}", f"not valid JSON: {exc.msg}"
            ) from exc
    return records


class Fields:
    """Typed access to one JSON record's fields; errors name the file and the record.

    Args:
        file: Path or URI of the file.
        label: The record's label (from :func:`load_records`).
        record: The parsed record.
        id_key: A field that identifies the record; when present its value is added to the
            label (``"line 3 (question_id 17)"``).

    Raises:
        BenchmarkFormatError: If ``record`` is not a JSON object.
    """

    def __init__(self, file: str, label: str, record: Any, id_key: str | None = None) -> None:
        self.file = file
        self.label = label
        if not isinstance(record, dict):
            raise self.error(f"expected a JSON object, got {type(record).__name__}")
        self.record = record
        if id_key is not None and id_key in record:
            self.label = f"{label} ({id_key} {record[id_key]!r})"

    def error(self, problem: str) -> BenchmarkFormatError:
        """A :class:`BenchmarkFormatError` for this record."""
        return BenchmarkFormatError(self.file, self.label, problem)

    def _get(self, key: str) -> Any:
        if key not in self.record:
            raise self.error(f"missing field {key!r}")
        return self.record[key]

    def has(self, key: str) -> bool:
        """Whether the field is present (and not null)."""
        return self.record.get(key) is not None

    def string(self, key: str, allow_empty: bool = False) -> str:
        """A string field (non-empty unless ``allow_empty``)."""
        value = self._get(key)
        if not isinstance(value, str):
            raise self.error(f"field {key!r} must be a string, got {value!r}")
        if not allow_empty and not value.strip():
            raise self.error(f"field {key!r} is empty")
        return value

    def integer(self, key: str) -> int:
        """An integer field (booleans are refused)."""
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"field {key!r} must be an integer, got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        """A list-of-non-empty-strings field."""
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(f"field {key!r} must be a list of non-empty strings, got {value!r}")
        return tuple(value)

    def choice(self, key: str, choices: Sequence[str]) -> str:
        """A string field that must be one of ``choices``."""
        value = self._get(key)
        if value not in choices:
            raise self.error(f"field {key!r} must be one of {list(choices)}, got {value!r}")
        return value


@dataclass(frozen=True)
class Query:
    """One question to the model.

    Attributes:
        item: Identifies the benchmark item in errors and outputs (``"pope/random/17"``).
        prompt: The text prompt, as the benchmark gives it.
        image_path: Image file relative to the benchmark's data root, or ``None``.
        image_bytes: The encoded image itself (Object HalBench ships base64 images), or ``None``.
    """

    item: str
    prompt: str
    image_path: str | None = None
    image_bytes: bytes | None = field(default=None, repr=False)

    def load_image(self, root: DataRoot) -> Image.Image:
        """Decode the query's image as RGB.

        Raises:
            ImageError: Naming the item when the image cannot be read or decoded.
        """
        if self.image_bytes is not None:
            data, where = self.image_bytes, "embedded image"
        elif self.image_path is not None:
            where = root.path(self.image_path)
            try:
                data = root.read_bytes(self.image_path)
            except BenchmarkDataError as exc:
                raise ImageError(f"{self.item}: image not found: {where}") from exc
        else:
            raise ImageError(f"{self.item}: no image")
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (UnidentifiedImageError, OSError) as exc:
            raise ImageError(f"{self.item}: cannot decode {where} ({exc})") from exc
        return image.convert("RGB")


def check_images(root: DataRoot, queries: Sequence[Query]) -> None:
    """Make sure every query's image file exists, before any model call.

    Raises:
        BenchmarkDataError: Naming the benchmark, the first item without its image and the path.
    """
    for query in queries:
        if query.image_bytes is None and query.image_path is not None:
            root.require(query.image_path, f"image of {query.item} not found")
