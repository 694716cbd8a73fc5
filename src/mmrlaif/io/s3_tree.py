"""Folders (model directories) on S3, published whole or not at all.

:func:`upload_tree` uploads every file under a hidden staging prefix, then removes the earlier
version's manifest and stale objects under the final prefix, copies the files there, and writes
``<prefix>/_MANIFEST.json`` (relative paths, sizes, sha256) last. :func:`download_tree` refuses
a prefix without a manifest and checks every file against it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any, TypeVar

import botocore.exceptions

from mmrlaif.io.hashes import file_sha256
from mmrlaif.io.s3_client import S3Settings, _uri, client, current_settings, parse_s3
from mmrlaif.io.s3_ops import (
    _abort_uploads,
    _cleanup,
    _copy,
    _delete_keys,
    _is_not_found,
    _list_keys,
    _retrying,
    _temp_key,
)

logger = logging.getLogger(__name__)

MANIFEST_NAME = "_MANIFEST.json"
MANIFEST_FORMAT = "mmrlaif-tree/1"

T = TypeVar("T")


class IncompleteTreeError(FileNotFoundError):
    """An S3 prefix has no ``_MANIFEST.json``: incomplete, or not written by mmrlaif."""


class IntegrityError(OSError):
    """Downloaded content does not match its manifest, or the manifest is malformed."""


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
