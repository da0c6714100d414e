"""Schema versions and the database-level guarantees the workflow relies on."""
from __future__ import annotations

import peewee as pw
import pytest

import models
from tests import factories as f


@pytest.fixture
def db_url(any_db: str) -> str:
    return any_db


def test_upgrade_is_idempotent_and_refuses_a_newer_schema(app) -> None:  # type: ignore[no-untyped-def]
    assert models.schema_version() == models.LATEST
    assert models.upgrade() == []
    models.SchemaVersion.create(version=models.LATEST + 1)
    with pytest.raises(RuntimeError, match="newer than this release"):
        models.upgrade()
    models.SchemaVersion.delete().where(models.SchemaVersion.version > models.LATEST).execute()


def test_upgrade_from_an_empty_database(app) -> None:  # type: ignore[no-untyped-def]
    models.drop_all()
    assert models.schema_version() == 0
    assert models.upgrade() == [v for v, _ in models.MIGRATIONS]
    assert models.schema_version() == models.LATEST
    assert models.db.table_exists("agreement") and models.db.table_exists("wechat_message_seen")


def test_one_live_agreement_per_student_is_enforced_by_the_database(app) -> None:  # type: ignore[no-untyped-def]
    world = f.World()
    a = world.agreement_at("applied")
    clone = {k: v for k, v in a.__data__.items() if k != "id"}
    clone.update(number=a.number + "X", verify_code="ZZZZZZZZZZZZZZZZ")
    with pytest.raises(pw.IntegrityError), models.db.atomic():
        models.Agreement.create(**clone)


def test_lease_has_one_holder_at_a_time(app) -> None:  # type: ignore[no-untyped-def]
    assert models.Lease.acquire("scheduler", "a", 30)
    assert not models.Lease.acquire("scheduler", "b", 30)
    assert models.Lease.acquire("scheduler", "a", 30)  # renewal
    models.Lease.update(expires_at=models.utcnow() - __import__("datetime").timedelta(seconds=1)).execute()
    assert models.Lease.acquire("scheduler", "b", 30)


def test_upgrade_from_version_1_adds_the_hash_indexes(app) -> None:  # type: ignore[no-untyped-def]
    """A database made by the first release (no hash indexes) is brought up to date in place."""
    db = models.db.obj
    for table in ("agreement", "agreement_signature"):
        q = db.quote
        index = f"{table}_document_sha256"
        on_table = f" ON {q[0]}{table}{q[1]}" if isinstance(db, pw.MySQLDatabase) else ""
        sql = f"DROP INDEX {q[0]}{index}{q[1]}{on_table}"
        db.execute_sql(sql)
    models.SchemaVersion.delete().where(models.SchemaVersion.version > 1).execute()
    world = f.World()
    a = world.agreement_at("completed")  # data written before the upgrade survives it
    assert models.schema_version() == 1
    assert models.upgrade() == [2]
    names = {ix.name for ix in db.get_indexes("agreement")}
    assert "agreement_document_sha256" in names
    assert models.Agreement.get(models.Agreement.document_sha256 == a.document_sha256).id == a.id


def test_sqlite_transactions_that_read_then_write_queue_instead_of_failing(app, any_db: str) -> None:  # type: ignore[no-untyped-def]
    """A transaction reads, another connection writes, the first then writes: on SQLite (WAL) a
    deferred transaction fails at once with 'database is locked'; ours begin IMMEDIATE and queue."""
    import threading

    if not any_db.startswith("sqlite"):
        pytest.skip("SQLite-specific locking")
    errors: list[Exception] = []
    read_done, other_done = threading.Event(), threading.Event()

    def first() -> None:
        with models.db.connection_context():
            try:
                with models.db.atomic():
                    models.School.select().count()
                    read_done.set()
                    other_done.wait(0.5)  # the other writer must wait for us
                    models.School.create(code="90001", name="甲")
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors.append(RuntimeError(f"first: {exc}"))

    def second() -> None:
        with models.db.connection_context():
            read_done.wait(5)
            try:
                models.School.create(code="90002", name="乙")
            except Exception as exc:  # noqa: BLE001
                errors.append(RuntimeError(f"second: {exc}"))
            other_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert models.School.select().where(models.School.code.in_(["90001", "90002"])).count() == 2
