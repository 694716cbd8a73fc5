"""Artifacts on S3 (or any S3-compatible store) through boto3, published atomically.

A reader never sees a half-written artifact:

* :func:`upload_file` uploads under a hidden temporary key beside the target
  (``<dir>/.<name>.tmp-<uuid>``), copies it server-side to the final key, then deletes the
  temporary key. The final key appears in one step (``CopyObject`` or
  ``CompleteMultipartUpload``).
* :func:`upload_tree` (a model folder) uploads every file under a hidden staging prefix, then
  removes the earlier version's manifest and stale objects under the final prefix, copies the
  files there, and writes ``<prefix>/_MANIFEST.json`` (relative paths, sizes, sha256) last.
  :func:`download_tree` refuses a prefix without a manifest and checks every file against it.

Configuration comes from :class:`S3Settings` (:func:`current_settings` by default: the
config's ``storage.*`` under the ``MMRLAIF_S3_*`` variables).
Credentials come only from boto3's default chain (environment, shared files, instance or pod
role); they are never arguments and never logged. botocore retries single requests
(``standard`` mode); :func:`_retry` additionally retries whole operations on transient errors
that escape it (connection resets, 5xx, ``SlowDown``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, TypeVar

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from mmrlaif.io.hashes import file_sha256

S3Client = Any  # botocore builds the client class at run time

logger = logging.getLogger(__name__)

MANIFEST_NAME = "_MANIFEST.json"
MANIFEST_FORMAT = "mmrlaif-tree/1"
_MIB = 1024 * 1024
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
# ClientError codes worth retrying as a whole operation (besides any HTTP 5xx).
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
    }
)
_TRANSIENT_EXCEPTIONS = (
    botocore.exceptions.ConnectionError,  # EndpointConnectionError, ConnectionClosedError, ...
    botocore.exceptions.HTTPClientError,  # ReadTimeoutError, ...
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    ConnectionError,  # builtin: ConnectionResetError, BrokenPipeError, ...
    TimeoutError,
)

T = TypeVar("T")


class IncompleteTreeError(FileNotFoundError):
    """An S3 prefix has no ``_MANIFEST.json``: incomplete, or not written by mmrlaif."""


class IntegrityError(OSError):
    """Downloaded content does not match its manifest, or the manifest is malformed."""


# --------------------------------------------------------------------------------------------
# URIs and settings
# --------------------------------------------------------------------------------------------


def is_s3(uri: str | PurePath) -> bool:
    """Whether ``uri`` names an S3 location (``s3://bucket/key``).

    A ``Path`` built from an S3 URI (``Path("s3://b/k")`` reads ``s3:/b/k``) also counts, so an
    accidental ``Path(...)`` around a URI never turns into a local folder named ``s3:``.
    """
    text = str(uri)
    if isinstance(uri, PurePath):
        return text.startswith("s3:/")
    return text.startswith("s3://")


def parse_s3(uri: str | PurePath, *, require_key: bool = False) -> tuple[str, str]:
    """Split an S3 URI into ``(bucket, key)``.

    Args:
        uri: ``s3://bucket/key`` (the key may be empty: ``s3://bucket`` or ``s3://bucket/``).
        require_key: Refuse an empty key (an object, not a bucket, is needed).

    Returns:
        The bucket name and the key (no leading slash; a trailing slash is kept).

    Raises:
        ValueError: Naming ``uri`` when it is not a well-formed S3 URI.
    """
    text = str(uri)
    if isinstance(uri, PurePath) and text.startswith("s3:/") and not text.startswith("s3://"):
        text = "s3://" + text[len("s3:/") :]
    if not text.startswith("s3://"):
        raise ValueError(f"not an S3 URI (expected s3://bucket/key): {text!r}")
    bucket, _, key = text[len("s3://") :].partition("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ValueError(
            f"malformed S3 URI {text!r}: bucket name {bucket!r} is not a valid bucket name"
        )
    if require_key and not key.strip("/"):
        raise ValueError(f"malformed S3 URI {text!r}: no object key after the bucket")
    if key.startswith("/") or "//" in key:
        raise ValueError(f"malformed S3 URI {text!r}: empty path segment in the key")
    return bucket, key


def _uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


@dataclass(frozen=True)
class S3Settings:
    """How to reach the store and how to move data.

    Attributes:
        endpoint_url: S3-compatible endpoint (MinIO, Ceph, moto...). ``None`` lets boto3 decide
            (AWS, or its own ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` variables).
        region: Region name; ``None`` lets boto3 decide (``AWS_DEFAULT_REGION``, config file).
        max_attempts: botocore attempts per request, the first included (``standard`` retry
            mode; 1 = no botocore retry). Passed as ``total_max_attempts``: botocore's own
            ``max_attempts`` key counts retries only.
        multipart_threshold_mb: Files at least this large are uploaded (and copied) in parts.
        multipart_chunk_mb: Part size (S3's minimum part size is 5 MiB).
        max_concurrency: Parallel part transfers per file.
        retry_attempts: Attempts per whole operation (see :func:`_retry`).
        retry_base_delay_s: First backoff delay between whole-operation attempts; doubles.
    """

    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: int = 5
    multipart_threshold_mb: int = 64
    multipart_chunk_mb: int = 16
    max_concurrency: int = 4
    retry_attempts: int = 3
    retry_base_delay_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_attempts", "multipart_threshold_mb", "multipart_chunk_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"S3Settings.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_concurrency < 1 or self.retry_attempts < 1 or self.retry_base_delay_s < 0:
            raise ValueError(f"invalid S3Settings: {self}")

    @classmethod
    def from_env(
        cls, environ: dict[str, str] | None = None, base: S3Settings | None = None
    ) -> S3Settings:
        """Settings from ``MMRLAIF_S3_*`` environment variables; unset ones keep ``base``'s
        values (the config's ``storage.*``, see :func:`configure`), else the defaults.

        Reads ``MMRLAIF_S3_ENDPOINT_URL``, ``MMRLAIF_S3_REGION``, ``MMRLAIF_S3_MAX_ATTEMPTS``,
        ``MMRLAIF_S3_MULTIPART_THRESHOLD_MB``, ``MMRLAIF_S3_MULTIPART_CHUNK_MB``,
        ``MMRLAIF_S3_MAX_CONCURRENCY``, ``MMRLAIF_S3_RETRY_ATTEMPTS`` and
        ``MMRLAIF_S3_RETRY_BASE_DELAY_S``. Without ``MMRLAIF_S3_ENDPOINT_URL``, boto3's own
        ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` handling applies.

        Raises:
            ValueError: Naming the variable when a number does not parse.
        """
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        if env.get("MMRLAIF_S3_ENDPOINT_URL"):
            kwargs["endpoint_url"] = env["MMRLAIF_S3_ENDPOINT_URL"]
        if env.get("MMRLAIF_S3_REGION"):
            kwargs["region"] = env["MMRLAIF_S3_REGION"]
        numbers: dict[str, type] = {
            "max_attempts": int,
            "multipart_threshold_mb": int,
            "multipart_chunk_mb": int,
            "max_concurrency": int,
            "retry_attempts": int,
            "retry_base_delay_s": float,
        }
        for field, kind in numbers.items():
            var = f"MMRLAIF_S3_{field.upper()}"
            if env.get(var):
                try:
                    kwargs[field] = kind(env[var])
                except ValueError as exc:
                    raise ValueError(f"{var}={env[var]!r} is not a valid {kind.__name__}") from exc
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)

    def transfer_config(self) -> TransferConfig:
        """boto3 managed-transfer settings (multipart threshold, part size, concurrency)."""
        return TransferConfig(
            multipart_threshold=self.multipart_threshold_mb * _MIB,
            multipart_chunksize=self.multipart_chunk_mb * _MIB,
            max_concurrency=self.max_concurrency,
            use_threads=self.max_concurrency > 1,
        )


_configured: list[S3Settings] = []  # the process's storage settings, set by configure()


def configure(
    endpoint_url: str | None = None,
    region: str | None = None,
    max_attempts: int = 5,
    multipart_threshold_mb: int = 64,
    multipart_chunk_mb: int = 16,
) -> S3Settings:
    """Make the config's ``storage.*`` the base of every S3 client this process builds
    (``MMRLAIF_S3_*`` variables still win). Called where a config is loaded: the CLI and each
    pipeline task (:func:`mmrlaif.config.parse_config`).

    Returns:
        The settings a client built now would use.
    """
    _configured[:] = [
        S3Settings(
            endpoint_url=endpoint_url,
            region=region,
            max_attempts=max_attempts,
            multipart_threshold_mb=multipart_threshold_mb,
            multipart_chunk_mb=multipart_chunk_mb,
        )
    ]
    return current_settings()


def current_settings() -> S3Settings:
    """The settings of a client built now: ``MMRLAIF_S3_*`` over :func:`configure`'s."""
    return S3Settings.from_env(base=_configured[0] if _configured else None)


def _endpoint_overridden(settings: S3Settings) -> bool:
    return bool(
        settings.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )


def client(settings: S3Settings | None = None, *, cached: bool = True) -> S3Client:
    """A boto3 S3 client for ``settings`` (:func:`current_settings` when ``None``).

    Building a client parses botocore's S3 model (about 0.1 s), so clients are cached, keyed
    by ``settings`` and by a digest of the ``AWS_*`` environment variables: a change of
    credentials, region or endpoint in the environment gives a new client. Clients are
    thread-safe; refreshable credentials (pod or instance roles) refresh inside the client. Call
    :func:`clear_client_cache` after ``os.fork`` or to drop connections.

    With an endpoint override (ours or boto3's variables) the client uses path-style
    addressing, and computes request checksums only where the API requires them, which
    S3-compatible stores accept more widely than botocore's newer default.

    Args:
        settings: Endpoint, region and retry settings.
        cached: ``False`` builds a fresh client (own session) every time.
    """
    settings = settings or current_settings()
    if not cached:
        return _new_client(settings)
    digest = hashlib.sha256()
    for name in sorted(os.environ):
        if name.startswith("AWS_"):
            digest.update(f"{name}\0{os.environ[name]}\0".encode())
    return _cached_client(settings, digest.hexdigest())


@functools.lru_cache(maxsize=8)
def _cached_client(settings: S3Settings, environment: str) -> S3Client:
    return _new_client(settings)


def clear_client_cache() -> None:
    """Forget cached clients (see :func:`client`)."""
    _cached_client.cache_clear()


def _new_client(settings: S3Settings) -> S3Client:
    options: dict[str, Any] = {
        "retries": {"total_max_attempts": settings.max_attempts, "mode": "standard"},
        "max_pool_connections": max(10, settings.max_concurrency * 2),
    }
    if _endpoint_overridden(settings):
        options["s3"] = {"addressing_style": "path"}
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        config=Config(**options),
    )


# --------------------------------------------------------------------------------------------
# Retry of whole operations
# --------------------------------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and what it wraps (``__cause__``, ``__context__``, boto3's ``last_exception``)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(
            [
                current.__cause__,
                current.__context__,
                getattr(current, "last_exception", None),
            ]
        )


def _is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is worth retrying: connection trouble, 5xx, throttle."""
    for cause in _causes(exc):
        if isinstance(cause, _TRANSIENT_EXCEPTIONS):
            return True
        if isinstance(cause, botocore.exceptions.ClientError):
            error = cause.response.get("Error", {})
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return error.get("Code") in _TRANSIENT_CODES or int(status or 0) >= 500
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:300]}"


def _retry(
    fn: Callable[[], T],
    what: str,
    attempts: int = 3,
    base_delay: float = 1.0,
) -> T:
    """Call ``fn``; on a transient error, wait and call it again, up to ``attempts`` times.

    Args:
        fn: The whole operation; it must be safe to repeat (ours clean up after themselves).
        what: What is being done, for the log (a URI, never credentials).
        attempts: Total attempts (1 = no retry).
        base_delay: Seconds before the second attempt; doubles each time, with jitter.

    Returns:
        What ``fn`` returns.

    Raises:
        The last error, when it is not transient or the attempts are spent.
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= attempts or not _is_transient(exc):
                raise
            delay = base_delay * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
            logger.warning(
                "%s failed (attempt %d/%d, %s); retrying in %.2f s",
                what,
                attempt,
                attempts,
                _describe(exc),
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _retrying(settings: S3Settings, fn: Callable[[], T], what: str) -> T:
    return _retry(fn, what, settings.retry_attempts, settings.retry_base_delay_s)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _is_not_found(exc: botocore.exceptions.ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in {"404", "NoSuchKey", "NotFound"} or status == 404


def _temp_key(key: str, tag: str) -> str:
    """A hidden key beside ``key``: ``<dir>/.<name>.<tag>-<uuid>``."""
    folder, _, name = key.rstrip("/").rpartition("/")
    hidden = f".{name}.{tag}-{uuid.uuid4().hex}"
    return f"{folder}/{hidden}" if folder else hidden


def _list_keys(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def _delete_keys(s3: S3Client, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        response = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise OSError(
                f"could not delete {len(errors)} object(s) under s3://{bucket}/, first "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )


def _abort_uploads(s3: S3Client, bucket: str, prefix: str) -> None:
    """Abort multipart uploads in progress under ``prefix`` (ours: the prefix is unique)."""
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            logger.debug("aborted multipart upload of s3://%s/%s", bucket, upload["Key"])


def _cleanup(what: str, fn: Callable[[], object]) -> None:
    """Best-effort cleanup after a failure: log, never mask the original error."""
    try:
        fn()
    except Exception as exc:
        logger.warning("cleanup of %s failed: %s", what, _describe(exc))


def _copy(s3: S3Client, bucket: str, src: str, dst: str, settings: S3Settings) -> None:
    """Server-side copy (multipart above the threshold, so objects over 5 GB copy too)."""
    s3.copy(
        {"Bucket": bucket, "Key": src},
        bucket,
        dst,
        Config=settings.transfer_config(),
    )


# --------------------------------------------------------------------------------------------
# Single objects
# --------------------------------------------------------------------------------------------


def upload_file(local: str | Path, uri: str, settings: S3Settings | None = None) -> str:
    """Upload a local file to ``uri`` atomically: the final key is never half-written.

    The file goes to a hidden temporary key beside the target (in parts above the multipart
    threshold), is copied server-side to ``uri``, and the temporary key is deleted. On failure
    the temporary key and any unfinished multipart upload are removed and the error re-raised;
    transient errors retry the whole sequence.

    Args:
        local: The file to upload.
        uri: Target ``s3://bucket/key``.
        settings: Endpoint and transfer settings; :func:`current_settings` when ``None``.

    Returns:
        ``uri``.

    Raises:
        FileNotFoundError: ``local`` is not a file.
        ValueError: ``uri`` is malformed.
    """
    settings = settings or current_settings()
    bucket, key = parse_s3(uri, require_key=True)
    local = Path(local)
    if not local.is_file():
        raise FileNotFoundError(f"cannot upload {local} to {uri}: not a file")
    s3 = client(settings)

    def once() -> None:
        tmp = _temp_key(key, "tmp")
        try:
            s3.upload_file(str(local), bucket, tmp, Config=settings.transfer_config())
            _copy(s3, bucket, tmp, key, settings)
        except BaseException:
            _cleanup(_uri(bucket, tmp), lambda: _abort_uploads(s3, bucket, tmp))
            _cleanup(_uri(bucket, tmp), lambda: s3.delete_object(Bucket=bucket, Key=tmp))
            raise
        _cleanup(_uri(bucket, tmp), lambda: s3.delete_object(Bucket=bucket, Key=tmp))

    _retrying(settings, once, f"upload of {local} to {uri}")
    logger.debug("uploaded %s to %s", local, uri)
    return uri


def download_file(uri: str, local: str | Path, settings: S3Settings | None = None) -> Path:
    """Download ``uri`` to ``local`` under a temporary name, renamed into place last.

    Raises:
        FileNotFoundError: Naming ``uri`` when the object does not exist.
    """
    settings = settings or current_settings()
    bucket, key = parse_s3(uri, require_key=True)
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    s3 = client(settings)

    def once() -> None:
        fd, name = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".tmp", dir=local.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            s3.download_file(bucket, key, str(tmp), Config=settings.transfer_config())
            os.replace(tmp, local)
        except botocore.exceptions.ClientError as exc:
            if _is_not_found(exc):
                raise FileNotFoundError(f"S3 object not found: {uri}") from exc
            raise
        finally:
            tmp.unlink(missing_ok=True)

    _retrying(settings, once, f"download of {uri}")
    logger.debug("downloaded %s to %s", uri, local)
    return local


def exists(uri: str, settings: S3Settings | None = None) -> bool:
    """Whether the object ``uri`` exists (for a URI ending in ``/``: anything under it)."""
    settings = settings or current_settings()
    bucket, key = parse_s3(uri)
    s3 = client(settings)
    if not key or key.endswith("/"):
        response = _retrying(
            settings,
            lambda: s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1),
            f"listing of {uri}",
        )
        return bool(response.get("KeyCount", 0))

    def head() -> bool:
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    return _retrying(settings, head, f"existence check of {uri}")


def list_prefix(uri: str, settings: S3Settings | None = None) -> list[str]:
    """URIs of all objects whose key starts with the key of ``uri``, sorted.

    The prefix is a plain string prefix, as in S3: ``s3://b/model`` also matches
    ``s3://b/model-v2/...``; end it with ``/`` to list one folder.
    """
    settings = settings or current_settings()
    bucket, key = parse_s3(uri)
    s3 = client(settings)
    keys = _retrying(settings, lambda: _list_keys(s3, bucket, key), f"listing of {uri}")
    return sorted(_uri(bucket, k) for k in keys)


# --------------------------------------------------------------------------------------------
# Folders (model directories)
# --------------------------------------------------------------------------------------------


def _folder_key(uri: str) -> tuple[str, str]:
    """``(bucket, "key/")`` for a folder URI; refuses the bucket root."""
    bucket, key = parse_s3(uri, require_key=True)
    return bucket, key.rstrip("/") + "/"


def _scan(local_dir: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(local_dir.rglob("*")):
        if path.is_dir():
            continue
        if not path.is_file():
            raise ValueError(f"cannot upload {path}: not a regular file")
        rel = path.relative_to(local_dir).as_posix()
        if rel == MANIFEST_NAME:
            raise ValueError(f"{local_dir} holds {MANIFEST_NAME}, a name reserved for mmrlaif")
        entries.append({"path": rel, "size": path.stat().st_size, "sha256": file_sha256(path)})
    return entries


def upload_tree(local_dir: str | Path, uri_prefix: str, settings: S3Settings | None = None) -> str:
    """Publish a folder (e.g. a saved model) under ``uri_prefix``, manifest last.

    Steps: upload every file under a hidden staging prefix beside the target
    (``<parent>/.<name>.staging-<uuid>/``); delete the target's old ``_MANIFEST.json``, then
    objects under the target that the new version does not have; copy the staged files into
    place; write ``<prefix>/_MANIFEST.json`` (relative paths, sizes, sha256); delete the staging
    prefix. A prefix without a manifest is incomplete: if this fails before the old manifest is
    deleted, the earlier version stays whole; after that, no manifest claims completeness until a
    later upload succeeds. The staging prefix is cleaned up on failure.

    Args:
        local_dir: The folder to upload (nested files included).
        uri_prefix: Target ``s3://bucket/prefix`` (not the bucket root).
        settings: Endpoint and transfer settings; :func:`current_settings` when ``None``.

    Returns:
        ``uri_prefix`` without a trailing slash.

    Raises:
        NotADirectoryError: ``local_dir`` is not a folder.
        ValueError: ``uri_prefix`` is malformed, or the folder holds ``_MANIFEST.json``.
    """
    settings = settings or current_settings()
    bucket, prefix = _folder_key(uri_prefix)
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise NotADirectoryError(f"cannot upload {local_dir} to {uri_prefix}: not a folder")
    entries = _scan(local_dir)
    manifest = {
        "format": MANIFEST_FORMAT,
        "files": entries,
        "total_bytes": sum(e["size"] for e in entries),
    }
    s3 = client(settings)
    tc = settings.transfer_config()
    staging = _temp_key(prefix, "staging") + "/"
    manifest_key = prefix + MANIFEST_NAME
    target = _uri(bucket, prefix)

    def step(fn: Callable[[], T], what: str) -> T:
        return _retrying(settings, fn, what)

    try:
        for entry in entries:
            rel = entry["path"]
            step(
                lambda rel=rel: s3.upload_file(
                    str(local_dir / rel), bucket, staging + rel, Config=tc
                ),
                f"staging upload of {local_dir / rel} for {target}",
            )
        # Publish: nothing claims completeness from here until the new manifest lands.
        step(
            lambda: s3.delete_object(Bucket=bucket, Key=manifest_key),
            f"removal of old manifest {_uri(bucket, manifest_key)}",
        )
        wanted = {prefix + e["path"] for e in entries}
        existing = step(lambda: _list_keys(s3, bucket, prefix), f"listing of {target}")
        stale = sorted(k for k in existing if k not in wanted)
        if stale:
            logger.info("removing %d stale object(s) under %s", len(stale), target)
            step(lambda: _delete_keys(s3, bucket, stale), f"removal of stale objects in {target}")
        for entry in entries:
            rel = entry["path"]
            step(
                lambda rel=rel: _copy(s3, bucket, staging + rel, prefix + rel, settings),
                f"publish of {_uri(bucket, prefix + rel)}",
            )
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        step(
            lambda: s3.put_object(
                Bucket=bucket, Key=manifest_key, Body=body, ContentType="application/json"
            ),
            f"manifest write {_uri(bucket, manifest_key)}",
        )
    finally:
        _cleanup(_uri(bucket, staging), lambda: _abort_uploads(s3, bucket, staging))
        _cleanup(
            _uri(bucket, staging),
            lambda: _delete_keys(s3, bucket, _list_keys(s3, bucket, staging)),
        )
    logger.info(
        "uploaded %s to %s (%d files, %d bytes)",
        local_dir,
        target,
        len(entries),
        manifest["total_bytes"],
    )
    return target.rstrip("/")


def read_manifest(uri_prefix: str, settings: S3Settings | None = None) -> dict[str, Any]:
    """The ``_MANIFEST.json`` of a folder published by :func:`upload_tree`.

    Raises:
        IncompleteTreeError: Naming the prefix when it has no manifest.
        IntegrityError: When the manifest is malformed or names unsafe paths.
    """
    settings = settings or current_settings()
    bucket, prefix = _folder_key(uri_prefix)
    s3 = client(settings)
    target = _uri(bucket, prefix)

    def get() -> bytes:
        try:
            return s3.get_object(Bucket=bucket, Key=prefix + MANIFEST_NAME)["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if _is_not_found(exc):
                raise IncompleteTreeError(
                    f"{target} has no {MANIFEST_NAME}: the folder is incomplete or not "
                    "written by mmrlaif"
                ) from exc
            raise

    raw = _retrying(settings, get, f"manifest read of {target}")
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
        for entry in files:
            rel = entry["path"]
            parts = PurePath(rel).parts
            if (
                not isinstance(rel, str)
                or not rel
                or rel.startswith("/")
                or "\\" in rel
                or ".." in parts
                or not isinstance(entry["size"], int)
                or not isinstance(entry["sha256"], str)
            ):
                raise IntegrityError(f"{target}{MANIFEST_NAME}: unsafe or malformed entry {entry}")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{target}{MANIFEST_NAME} is malformed: {exc}") from exc
    if manifest.get("format") != MANIFEST_FORMAT:
        raise IntegrityError(
            f"{target}{MANIFEST_NAME}: unknown format {manifest.get('format')!r}, "
            f"expected {MANIFEST_FORMAT!r}"
        )
    return manifest


def download_tree(
    uri_prefix: str, local_dir: str | Path, settings: S3Settings | None = None
) -> Path:
    """Download a folder published by :func:`upload_tree`, checked against its manifest.

    Only the files the manifest lists are fetched, into a temporary folder beside
    ``local_dir``; each file's size and sha256 are checked; the folder is then renamed into
    place (replacing an existing ``local_dir``).

    Raises:
        IncompleteTreeError: Naming the prefix when ``_MANIFEST.json`` is missing.
        IntegrityError: When a file's size or sha256 differs from the manifest.
    """
    settings = settings or current_settings()
    bucket, prefix = _folder_key(uri_prefix)
    manifest = read_manifest(uri_prefix, settings)
    s3 = client(settings)
    tc = settings.transfer_config()
    local_dir = Path(local_dir)
    local_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{local_dir.name}.", suffix=".tmp", dir=local_dir.parent))
    try:
        for entry in manifest["files"]:
            rel = entry["path"]
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = _uri(bucket, prefix + rel)
            try:
                _retrying(
                    settings,
                    lambda rel=rel, dest=dest: s3.download_file(
                        bucket, prefix + rel, str(dest), Config=tc
                    ),
                    f"download of {src}",
                )
            except botocore.exceptions.ClientError as exc:
                if _is_not_found(exc):
                    raise IntegrityError(
                        f"{src} is listed in the manifest of {uri_prefix} but missing"
                    ) from exc
                raise
            size = dest.stat().st_size
            if size != entry["size"]:
                raise IntegrityError(
                    f"{src}: {size} bytes, the manifest of {uri_prefix} says {entry['size']}"
                )
            if file_sha256(dest) != entry["sha256"]:
                raise IntegrityError(f"{src}: sha256 differs from the manifest of {uri_prefix}")
        if local_dir.exists():
            shutil.rmtree(local_dir)
        tmp.rename(local_dir)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    logger.info("downloaded %s to %s (%d files)", uri_prefix, local_dir, len(manifest["files"]))
    return local_dir
