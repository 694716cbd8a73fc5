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

This module is the public face of S3 I/O: single objects are here; URIs, settings and clients
are in :mod:`mmrlaif.io.s3_client`, folders in :mod:`mmrlaif.io.s3_tree`, the retry of whole
operations and the key-level helpers in :mod:`mmrlaif.io.s3_ops`. All are importable from here.

Configuration comes from :class:`S3Settings` (:func:`current_settings` by default: the
config's ``storage.*`` under the ``MMRLAIF_S3_*`` variables).
Credentials come only from boto3's default chain (environment, shared files, instance or pod
role); they are never arguments and never logged. botocore retries single requests
(``standard`` mode); :func:`~mmrlaif.io.s3_ops._retry` additionally retries whole operations on
transient errors that escape it (connection resets, 5xx, ``SlowDown``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import botocore.exceptions

from mmrlaif.io.s3_client import (
    S3Client,
    S3Settings,
    _uri,
    clear_client_cache,
    client,
    configure,
    current_settings,
    is_s3,
    parse_s3,
)
from mmrlaif.io.s3_ops import (
    _abort_uploads,
    _cleanup,
    _copy,
    _is_not_found,
    _list_keys,
    _retrying,
    _temp_key,
)
from mmrlaif.io.s3_tree import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    IncompleteTreeError,
    IntegrityError,
    download_tree,
    read_manifest,
    upload_tree,
)

logger = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "IncompleteTreeError",
    "IntegrityError",
    "S3Client",
    "S3Settings",
    "clear_client_cache",
    "client",
    "configure",
    "current_settings",
    "download_file",
    "download_tree",
    "exists",
    "is_s3",
    "list_prefix",
    "parse_s3",
    "read_manifest",
    "upload_file",
    "upload_tree",
]


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
