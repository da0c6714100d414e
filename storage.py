"""Document and image store: a local folder (default) or an S3-compatible bucket.

Keys are relative paths like ``agreements/2026/ABC.pdf``; a key never escapes the store.
Writes are atomic (write to a temporary name, then rename) so a reader never sees half a file.
"""
from __future__ import annotations

import logging
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any, Protocol

from settings import Settings

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*")  # fullmatch: "$" allows "\n"


class StorageError(Exception):
    """A store operation failed or a key is not acceptable."""


class NotFound(StorageError):
    """No object under that key."""


def _is_key(key: str) -> bool:
    try:
        check_key(key)
        return True
    except StorageError:
        return False


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise StorageError."""
    if not isinstance(key, str) or len(key) > 250 or not _KEY_RE.fullmatch(key) or ".." in key.split("/"):
        raise StorageError(f"invalid storage key: {key!r}")
    return key


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def keys(self, prefix: str) -> list[str]: ...
    def check(self) -> None: ...


class LocalStorage:
    """Files under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        """Every key under the folder ``prefix`` (a key itself), sorted; names that are not valid keys
        (half-written ``.tmp-`` files, ``.DS_Store``…) are left out."""
        base = self._path(prefix.rstrip("/"))
        if not base.is_dir():
            return []
        found = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in found if _is_key(k))  # not .tmp- files, .DS_Store and the like

    def check(self) -> None:
        """Write, read back and delete a probe object."""
        key = f"healthz/{uuid.uuid4().hex}"
        self.put(key, b"ok")
        if self.get(key) != b"ok":
            raise StorageError("read-back mismatch")
        self.delete(key)


class S3Storage:
    """Objects in an S3-compatible bucket (boto3, the `s3` extra)."""

    def __init__(self, settings: Settings) -> None:
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise StorageError("the s3 backend needs the `s3` extra: pip install 'tripact[s3]'") from exc
        s = settings.storage
        self.bucket = s.s3_bucket
        kwargs: dict[str, Any] = {}
        if s.s3_endpoint_url:
            kwargs["endpoint_url"] = s.s3_endpoint_url
        if s.s3_region:
            kwargs["region_name"] = s.s3_region
        if s.s3_access_key:
            kwargs["aws_access_key_id"] = s.s3_access_key
            kwargs["aws_secret_access_key"] = s.s3_secret_key
        self.client = boto3.client("s3", **kwargs)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type)
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"cannot write {key}: {type(exc).__name__}") from exc

    def get(self, key: str) -> bytes:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=check_key(key))
            return obj["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise NotFound(key) from exc
        except Exception as exc:  # noqa: BLE001 - botocore/network errors become one storage error
            raise StorageError(f"cannot read {key}: {type(exc).__name__}") from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=check_key(key))
            return True
        except Exception as exc:  # noqa: BLE001 - botocore: ClientError 404 means "no such key"
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"cannot check {key}: {type(exc).__name__}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=check_key(key))
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"cannot delete {key}: {type(exc).__name__}") from exc

    def keys(self, prefix: str) -> list[str]:
        """Every key under the folder ``prefix``, sorted."""
        folder = check_key(prefix.rstrip("/")) + "/"
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
            found = (obj["Key"] for page in pages for obj in page.get("Contents", []))
            return sorted(k for k in found if _is_key(k))  # not "folder/" markers and the like
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"cannot list {prefix}: {type(exc).__name__}") from exc

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"bucket {self.bucket} not reachable: {type(exc).__name__}") from exc


def _error_code(exc: Exception) -> str:
    """botocore's error code of a ClientError ("" for anything else)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


_current: Storage | None = None


def make_storage(settings: Settings) -> Storage:
    if settings.storage.backend == "s3":
        return S3Storage(settings)
    return LocalStorage(settings.storage_path)


def configure(settings: Settings) -> Storage:
    """Make the process-wide store from settings (CLI, scheduler, app)."""
    global _current
    _current = make_storage(settings)
    return _current


def get_storage() -> Storage:
    if _current is None:
        raise StorageError("storage not configured")
    return _current
