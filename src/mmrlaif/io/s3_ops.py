"""The building blocks of the atomic transfers of :mod:`mmrlaif.io.s3` (internal to
:mod:`mmrlaif.io`).

botocore retries single requests (``standard`` mode); :func:`_retry` additionally retries whole
operations on transient errors that escape it (connection resets, 5xx, ``SlowDown``). The
key-level helpers build the hidden temporary keys, list and delete keys in batches, abort
unfinished multipart uploads, clean up after a failure and copy server-side.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TypeVar

import botocore.exceptions

from mmrlaif.io.s3_client import S3Client, S3Settings

logger = logging.getLogger(__name__)

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
# Key-level helpers
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
