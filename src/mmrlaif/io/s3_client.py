"""Reaching the store: S3 URIs, the settings of a client, and cached boto3 clients.

Configuration comes from :class:`S3Settings` (:func:`current_settings` by default: the
config's ``storage.*`` under the ``MMRLAIF_S3_*`` variables).
Credentials come only from boto3's default chain (environment, shared files, instance or pod
role); they are never arguments and never logged. botocore retries single requests
(``standard`` mode).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

S3Client = Any  # botocore builds the client class at run time

_MIB = 1024 * 1024
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


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
        retry_attempts: Attempts per whole operation (see :func:`~mmrlaif.io.s3_ops._retry`).
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
