"""The document store on both backends: a local folder and an S3 bucket.

The S3 backend talks real S3 over HTTP (boto3) to moto's S3 server on a loopback port, so every
request, error code and pagination goes through the same client code as against a real bucket.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import storage
from settings import defaults_for_tests

BUCKET = "tripact-test"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _s3_settings(tmp_path: Path, endpoint: str, bucket: str = BUCKET) -> Any:
    return defaults_for_tests(tmp_path, storage={
        "backend": "s3", "s3_bucket": bucket, "s3_endpoint_url": endpoint, "s3_region": "us-east-1",
        "s3_access_key": "test-access", "s3_secret_key": "test-secret"})


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> storage.Storage:
    if request.param == "local":
        return storage.make_storage(defaults_for_tests(tmp_path))
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"{BUCKET}-{abs(hash(request.node.name)) % 10**8}"  # a bucket per test
    s3 = storage.make_storage(_s3_settings(tmp_path, endpoint, bucket))
    s3.client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return s3


def test_put_get_exists_delete(store: storage.Storage) -> None:
    key = "agreements/2027/20271001931000001/final.pdf"
    assert not store.exists(key)
    store.put(key, b"%PDF-1.7 first", "application/pdf")
    store.put(key, b"%PDF-1.7 second", "application/pdf")  # overwrite
    assert store.exists(key) and store.get(key) == b"%PDF-1.7 second"
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(storage.NotFound):
        store.get(key)
    store.delete(key)  # deleting what is gone is not an error


def test_keys_lists_one_folder_only(store: storage.Storage) -> None:
    for key in ("a/pages/x-1.png", "a/pages/x-2.png", "a/pages/y-1.png", "a/final.pdf", "ab/pages/z-1.png"):
        store.put(key, b"data")
    assert store.keys("a/pages") == ["a/pages/x-1.png", "a/pages/x-2.png", "a/pages/y-1.png"]
    assert store.keys("a/pages/") == store.keys("a/pages")
    assert store.keys("a") == ["a/final.pdf", "a/pages/x-1.png", "a/pages/x-2.png", "a/pages/y-1.png"]
    assert store.keys("nothing/here") == []


def test_keys_leave_out_names_that_are_not_keys(store: storage.Storage) -> None:
    store.put("odd/a.png", b"x")
    if isinstance(store, storage.S3Storage):
        store.client.put_object(Bucket=store.bucket, Key="odd/folder/", Body=b"")  # a console's "folder"
        store.client.put_object(Bucket=store.bucket, Key="odd/.hidden", Body=b"")
    else:
        root = Path(store.root)  # type: ignore[attr-defined]
        (root / "odd" / ".DS_Store").write_bytes(b"finder")
        (root / "odd" / ".tmp-abc123").write_bytes(b"half a file")
    assert store.keys("odd") == ["odd/a.png"]


def test_s3_keys_pages_through_large_folders(tmp_path: Path, s3_endpoint: str) -> None:
    """S3 returns at most 1000 keys a page."""
    store = storage.make_storage(_s3_settings(tmp_path, s3_endpoint, "tripact-many"))
    store.client.create_bucket(Bucket="tripact-many")  # type: ignore[attr-defined]
    for n in range(1005):
        store.put(f"many/{n:05d}", b"")
    keys = store.keys("many")
    assert len(keys) == 1005 and keys[0] == "many/00000" and keys[-1] == "many/01004"


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/path", "a/../../b", "", "a//b", "a/b\x00", "é/x",
                                 "a" * 251])
def test_hostile_keys_are_refused(store: storage.Storage, key: str) -> None:
    for op in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.exists(key),
               lambda: store.delete(key), lambda: store.keys(key)):
        with pytest.raises(storage.StorageError):
            op()


def test_check_passes_on_a_working_store(store: storage.Storage) -> None:
    store.check()


def test_s3_failures_are_storage_errors(tmp_path: Path, s3_endpoint: str) -> None:
    missing_bucket = storage.make_storage(_s3_settings(tmp_path, s3_endpoint, "no-such-bucket-here"))
    # (a HEAD of a key in a missing bucket is a plain 404: exists() says False, as S3 does)
    for op in (missing_bucket.check, lambda: missing_bucket.put("a/b", b"x"), lambda: missing_bucket.keys("a")):
        with pytest.raises(storage.StorageError):
            op()
    unreachable = storage.make_storage(_s3_settings(tmp_path, "http://127.0.0.1:9"))
    unreachable.client.meta.config.retries = {"max_attempts": 1}  # type: ignore[attr-defined]
    with pytest.raises(storage.StorageError):
        unreachable.get("a/b")


def test_local_writes_are_atomic(tmp_path: Path) -> None:
    """A reader never sees half a file: many writers and readers on one key."""
    store = storage.make_storage(defaults_for_tests(tmp_path))
    blobs = [bytes([n]) * 200_000 for n in range(8)]
    store.put("k/v", blobs[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            data = store.get("k/v")
            seen.add(data[:1] + data[-1:] + len(data).to_bytes(4, "big"))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(20):
        for blob in blobs:
            store.put("k/v", blob)
    stop.set()
    reader.join()
    assert seen <= {bytes([n]) * 2 + (200_000).to_bytes(4, "big") for n in range(8)}
    assert store.keys("k") == ["k/v"]  # no temporary file left behind
