"""Shared fixtures: settings, databases (SQLite, PostgreSQL, MariaDB), app, clients, factories.

Tests that take the ``any_db`` fixture run once per database backend. PostgreSQL and MariaDB runs
use a database created for this test session and dropped afterwards. A backend that cannot be
reached is skipped by name – unless the environment variable CI is set, where it fails the run.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import peewee as pw
import pytest

import models
import settings as settings_mod

PG_ADMIN_URL = os.environ.get("TRIPACT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN_URL = os.environ.get("TRIPACT_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
BACKENDS = ["sqlite", "postgres", "mysql"]
_RUN = uuid.uuid4().hex[:8]


def _unreachable(backend: str, exc: Exception) -> None:
    msg = f"{backend} not reachable for the test matrix: {str(exc).splitlines()[0] if str(exc) else exc!r}"
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI is set: every database of the matrix must run)")
    pytest.skip(msg)


def _server_database(backend: str) -> str:
    """Create a private database on the server for this session; return its URL."""
    name = f"tripact_test_{_RUN}"
    if backend == "postgres":
        import psycopg2

        try:
            conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=3)
        except psycopg2.Error as exc:
            _unreachable(backend, exc)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        conn.close()
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    import pymysql

    base = MYSQL_ADMIN_URL.removeprefix("mysql://")
    userhost, _, _db = base.partition("/")
    user, _, host = userhost.rpartition("@")
    host, _, port = host.partition(":")
    try:
        conn = pymysql.connect(host=host, port=int(port or 3306), user=user or "root", connect_timeout=3)
    except pymysql.Error as exc:
        _unreachable(backend, exc)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    conn.close()
    return MYSQL_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_server_database(backend: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    try:
        if backend == "postgres":
            import psycopg2

            conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=3)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.close()
        else:
            import pymysql

            base = MYSQL_ADMIN_URL.removeprefix("mysql://")
            user, _, host = base.partition("/")[0].rpartition("@")
            host, _, port = host.partition(":")
            conn = pymysql.connect(host=host, port=int(port or 3306), user=user or "root")
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.close()
    except Exception:  # noqa: BLE001 - cleanup is best effort
        pass


@pytest.fixture(scope="session")
def server_databases() -> Iterator[dict[str, str]]:
    """Lazily created per-session databases on the PostgreSQL and MariaDB servers."""
    created: dict[str, str] = {}
    yield created
    for backend, url in created.items():
        _drop_server_database(backend, url)


def _fresh_schema(url: str) -> None:
    """Bind the proxy to ``url`` and give it an empty, current schema."""
    models.init_db(url)
    models.db.connect(reuse_if_open=True)
    models.upgrade()  # idempotent; also creates tables registered by rooms imported since
    clean_tables()


def clean_tables() -> None:
    """Delete every row (fast enough for test-sized data, works on every backend)."""
    models.db.create_tables(models.EXTRA_MODELS, safe=True)  # rooms imported since the last upgrade
    tables = list(reversed(pw.sort_models(models.CORE_MODELS + models.EXTRA_MODELS)))
    with models.db.atomic():
        for m in tables:
            if m is models.SchemaVersion:
                continue
            m.delete().execute()


@pytest.fixture(params=BACKENDS)
def any_db(request: pytest.FixtureRequest, tmp_path: Path, server_databases: dict[str, str]) -> Iterator[str]:
    """A database URL with a fresh schema, once per backend."""
    backend = request.param
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        if backend not in server_databases:
            server_databases[backend] = _server_database(backend)
        url = server_databases[backend]
    _fresh_schema(url)
    yield url
    if not models.db.is_closed():
        models.db.close()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[str]:
    """An SQLite database URL with a fresh schema (tests that need not run on every backend)."""
    url = f"sqlite:///{tmp_path / 'test.db'}"
    _fresh_schema(url)
    yield url
    if not models.db.is_closed():
        models.db.close()


@pytest.fixture
def db_url(sqlite_db: str) -> str:
    """The database for app-level tests; override in a module to use ``any_db``."""
    return sqlite_db


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One platform CA for the whole test session (made as `tripact init` makes it)."""
    import documents

    directory = tmp_path_factory.mktemp("pki")
    s = settings_mod.defaults_for_tests(directory, signing={"pki_dir": str(directory)})
    documents.create_pki(s)
    return directory


@pytest.fixture
def settings(tmp_path: Path, db_url: str, pki_dir: Path) -> settings_mod.Settings:
    return settings_mod.defaults_for_tests(tmp_path, database={"url": db_url}, signing={"pki_dir": str(pki_dir)})


@pytest.fixture
def app(settings: settings_mod.Settings):  # type: ignore[no-untyped-def]
    from app import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    models.db.connect(reuse_if_open=True)
    return application


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def factory(app):  # type: ignore[no-untyped-def]
    """Factories that create real rows (see tests/factories.py)."""
    from tests import factories

    return factories


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Keep the database backends together so each server database is made once.
    def key(item: pytest.Item) -> int:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("any_db") if callspec else None
        return BACKENDS.index(backend) if backend in BACKENDS else -1
    items.sort(key=key)


__all__ = ["clean_tables", "pw"]
