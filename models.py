"""peewee models, the database proxy and schema versioning.

One database proxy, bound at start-up by :func:`init_db` from a peewee database URL (sqlite,
postgresql, mysql). Queries live on the models; rules that span models live in ``workflow/``.
Times are stored as naive UTC.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import peewee as pw
from playhouse.db_url import connect

import codes

log = logging.getLogger(__name__)

db = pw.DatabaseProxy()


def utcnow() -> dt.datetime:
    """Naive UTC now, truncated to whole seconds so every backend stores it exactly."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


class JSONField(pw.TextField):
    """JSON stored as text (portable across SQLite, PostgreSQL and MySQL)."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(pw.Model):
    class Meta:
        database = db
        legacy_table_names = False


# ---------------------------------------------------------------- schools and people

class School(BaseModel):
    """A university. ``code`` is the national school code (5 digits)."""

    code = pw.CharField(max_length=16, unique=True)
    name = pw.CharField(max_length=100)
    address = pw.CharField(max_length=200, default="")
    postcode = pw.CharField(max_length=10, default="")
    contact = pw.CharField(max_length=50, default="")
    phone = pw.CharField(max_length=30, default="")
    created_at = pw.DateTimeField(default=utcnow)


class Branch(BaseModel):
    """A branch campus of a school (分校), identified by its code within the school."""

    school = pw.ForeignKeyField(School, backref="branches", on_delete="CASCADE")
    code = pw.CharField(max_length=16)
    name = pw.CharField(max_length=100)

    class Meta:
        indexes = ((("school", "code"), True),)


class SchoolAccount(BaseModel):
    """A school staff login. Scope: the whole school (branch_code and level_code empty, the school's
    administrator) or one (branch, education level) pair, which sees only that slice."""

    school = pw.ForeignKeyField(School, backref="accounts", on_delete="CASCADE")
    branch_code = pw.CharField(max_length=16, default="")
    level_code = pw.CharField(max_length=4, default="")
    name = pw.CharField(max_length=50)
    password_hash = pw.CharField(max_length=255)
    active = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("school", "branch_code", "level_code"), True),)

    @property
    def is_school_admin(self) -> bool:
        return not self.branch_code and not self.level_code

    def covers(self, school_id: int, branch_code: str, level_code: str) -> bool:
        """Whether this account's scope includes an agreement of that school/branch/level."""
        if self.school_id != school_id:
            return False
        if self.is_school_admin:
            return True
        return self.branch_code == branch_code and self.level_code == level_code


class Student(BaseModel):
    """A student on a school's roster (the school's own data; the agreement keeps a snapshot)."""

    school = pw.ForeignKeyField(School, backref="students", on_delete="CASCADE")
    branch_code = pw.CharField(max_length=16, default="")
    level_code = pw.CharField(max_length=4)
    student_no = pw.CharField(max_length=32)
    name = pw.CharField(max_length=50)
    gender = pw.CharField(max_length=1, default="")
    id_number = pw.CharField(max_length=18)
    college = pw.CharField(max_length=100, default="")
    major = pw.CharField(max_length=100, default="")
    training_mode = pw.CharField(max_length=2, default="1")
    origin = pw.CharField(max_length=100, default="")
    graduation_year = pw.IntegerField()
    phone = pw.CharField(max_length=20, default="")
    on_roster = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("school", "student_no"), True), (("school", "branch_code", "level_code"), False))


class Employer(BaseModel):
    """An employing unit. Enterprises (nature 31/32/39) register online and are reviewed;
    non-enterprise units get their account from a school (``created_by_school``)."""

    name = pw.CharField(max_length=100)
    credit_code = pw.CharField(max_length=18, unique=True)
    nature_code = pw.CharField(max_length=4)
    industry = pw.CharField(max_length=50, default="")
    affiliation_code = pw.CharField(max_length=4, default="")
    address = pw.CharField(max_length=200, default="")
    postcode = pw.CharField(max_length=10, default="")
    contact = pw.CharField(max_length=50, default="")
    phone = pw.CharField(max_length=30, default="")
    email = pw.CharField(max_length=100, default="")
    archive_unit = pw.CharField(max_length=100, default="")
    archive_address = pw.CharField(max_length=200, default="")
    archive_postcode = pw.CharField(max_length=10, default="")
    accepts_hukou = pw.BooleanField(default=False)
    review_status = pw.CharField(max_length=16, default="pending", index=True)  # pending/approved/rejected
    created_by_school = pw.ForeignKeyField(School, null=True, on_delete="SET NULL")
    created_at = pw.DateTimeField(default=utcnow)

    @property
    def is_enterprise(self) -> bool:
        return codes.is_enterprise(self.nature_code)

    @classmethod
    def approved(cls) -> pw.ModelSelect:
        return cls.select().where(cls.review_status == "approved")


class EmployerUser(BaseModel):
    """A staff member of an employer who confirms and signs agreements."""

    employer = pw.ForeignKeyField(Employer, backref="users", on_delete="CASCADE")
    username = pw.CharField(max_length=64, unique=True)
    name = pw.CharField(max_length=50)
    phone = pw.CharField(max_length=20, default="")
    password_hash = pw.CharField(max_length=255)
    signing_pin_hash = pw.CharField(max_length=255, default="")
    active = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)


class PlatformAdmin(BaseModel):
    """A provincial employment-office administrator: sees and downloads everything."""

    username = pw.CharField(max_length=64, unique=True)
    name = pw.CharField(max_length=50)
    password_hash = pw.CharField(max_length=255)
    active = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)


class WechatBinding(BaseModel):
    """An openid bound to a student or an employer user. One openid per student."""

    openid = pw.CharField(max_length=64, unique=True)
    student = pw.ForeignKeyField(Student, null=True, unique=True, on_delete="CASCADE")
    employer_user = pw.ForeignKeyField(EmployerUser, null=True, on_delete="CASCADE")
    created_at = pw.DateTimeField(default=utcnow)


class Seal(BaseModel):
    """A seal image of a school or an employer. Only active seals sign."""

    school = pw.ForeignKeyField(School, null=True, backref="seals", on_delete="CASCADE")
    employer = pw.ForeignKeyField(Employer, null=True, backref="seals", on_delete="CASCADE")
    seal_type = pw.CharField(max_length=16)  # codes.toml [seal_type]
    title = pw.CharField(max_length=100)
    image_key = pw.CharField(max_length=255)
    image_sha256 = pw.CharField(max_length=64)
    active = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("school", "active"), False), (("employer", "active"), False))


# ---------------------------------------------------------------- agreements

class AgreementSerial(BaseModel):
    """Counter behind agreement numbers: one row per (graduation year, school code, education level)."""

    year = pw.IntegerField()
    school_code = pw.CharField(max_length=16)
    level_code = pw.CharField(max_length=4)
    last = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("year", "school_code", "level_code"), True),)


class Agreement(BaseModel):
    """One tripartite agreement. The parties' data is a snapshot taken when it was made, so the
    document never changes when a roster or employer record does. Only workflow/ changes ``status``.
    ``version`` is bumped by every transition (optimistic locking). ``live_student`` equals the
    student's id while the agreement is live and is NULL otherwise: its unique index makes the
    database itself refuse a second live agreement for one student."""

    number = pw.CharField(max_length=40, unique=True)
    verify_code = pw.CharField(max_length=32, unique=True)
    status = pw.CharField(max_length=24, index=True)
    version = pw.IntegerField(default=1)
    student = pw.ForeignKeyField(Student, backref="agreements", on_delete="RESTRICT")
    employer = pw.ForeignKeyField(Employer, backref="agreements", on_delete="RESTRICT")
    school = pw.ForeignKeyField(School, backref="agreements", on_delete="RESTRICT")
    live_student = pw.IntegerField(null=True, unique=True)
    branch_code = pw.CharField(max_length=16, default="")
    level_code = pw.CharField(max_length=4)
    graduation_year = pw.IntegerField()
    # student snapshot
    student_name = pw.CharField(max_length=50)
    gender = pw.CharField(max_length=1, default="")
    id_number = pw.CharField(max_length=18)
    student_no = pw.CharField(max_length=32)
    school_name = pw.CharField(max_length=100)
    branch_name = pw.CharField(max_length=100, default="")
    college = pw.CharField(max_length=100, default="")
    major = pw.CharField(max_length=100, default="")
    training_mode = pw.CharField(max_length=2, default="")
    origin = pw.CharField(max_length=100, default="")
    student_phone = pw.CharField(max_length=20, default="")
    # employer snapshot
    employer_name = pw.CharField(max_length=100)
    credit_code = pw.CharField(max_length=18)
    nature_code = pw.CharField(max_length=4)
    industry = pw.CharField(max_length=50, default="")
    affiliation_code = pw.CharField(max_length=4, default="")
    employer_address = pw.CharField(max_length=200, default="")
    employer_postcode = pw.CharField(max_length=10, default="")
    employer_contact = pw.CharField(max_length=50, default="")
    employer_phone = pw.CharField(max_length=30, default="")
    employer_email = pw.CharField(max_length=100, default="")
    archive_unit = pw.CharField(max_length=100, default="")
    archive_address = pw.CharField(max_length=200, default="")
    archive_postcode = pw.CharField(max_length=10, default="")
    accepts_hukou = pw.BooleanField(default=False)
    # terms
    position = pw.CharField(max_length=100)
    work_location = pw.CharField(max_length=100)
    monthly_salary_fen = pw.BigIntegerField()
    probation_months = pw.IntegerField(null=True)
    internship_period = pw.CharField(max_length=50, default="")
    contract_years = pw.IntegerField(null=True)
    liquidated_damages_fen = pw.BigIntegerField(default=0)
    remarks = pw.TextField(default="")
    # life cycle
    created_at = pw.DateTimeField(default=utcnow, index=True)
    updated_at = pw.DateTimeField(default=utcnow)
    deadline_at = pw.DateTimeField(null=True, index=True)
    completed_at = pw.DateTimeField(null=True)
    closed_reason = pw.TextField(default="")
    document_key = pw.CharField(max_length=255, default="")
    document_sha256 = pw.CharField(max_length=64, default="", index=True)

    class Meta:
        indexes = (
            (("school", "branch_code", "level_code", "status"), False),
            (("school", "status", "created_at"), False),
            (("employer", "status"), False),
            (("student", "created_at"), False),
        )

    @classmethod
    def visible_to_school(cls, account: SchoolAccount) -> pw.ModelSelect:
        """Agreements in a school account's scope."""
        q = cls.select().where(cls.school == account.school_id)
        if not account.is_school_admin:
            q = q.where((cls.branch_code == account.branch_code) & (cls.level_code == account.level_code))
        return q

    @classmethod
    def live_for_student(cls, student_id: int) -> Agreement | None:
        return cls.get_or_none(cls.live_student == student_id)


class AgreementEvent(BaseModel):
    """One step in an agreement's life. ``hash`` = sha256 over the previous hash and this event's
    canonical content: a chain per agreement that `tripact audit verify` recomputes."""

    agreement = pw.ForeignKeyField(Agreement, backref="events", on_delete="CASCADE")
    seq = pw.IntegerField()
    action = pw.CharField(max_length=32)
    actor_type = pw.CharField(max_length=16)
    actor_id = pw.IntegerField(null=True)
    actor_name = pw.CharField(max_length=100, default="")
    from_status = pw.CharField(max_length=24, default="")
    to_status = pw.CharField(max_length=24, default="")
    created_at = pw.DateTimeField(default=utcnow)
    ip = pw.CharField(max_length=45, default="")
    details = JSONField(default=dict)
    prev_hash = pw.CharField(max_length=64)
    hash = pw.CharField(max_length=64)

    class Meta:
        indexes = ((("agreement", "seq"), True),)

    GENESIS = "0" * 64

    def canonical(self) -> str:
        """The event's content as hashed: stable JSON of every field but the hashes."""
        return json.dumps(
            [self.agreement_id, self.seq, self.action, self.actor_type, self.actor_id, self.actor_name,
             self.from_status, self.to_status, self.created_at.strftime("%Y-%m-%dT%H:%M:%S"), self.ip,
             self.details],
            ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def compute_hash(self) -> str:
        return hashlib.sha256((self.prev_hash + self.canonical()).encode("utf-8")).hexdigest()

    @classmethod
    def chain(cls, agreement_id: int) -> list[AgreementEvent]:
        return list(cls.select().where(cls.agreement == agreement_id).order_by(cls.seq))

    @classmethod
    def verify_chain(cls, agreement_id: int) -> str | None:
        """None when the agreement's events form an unbroken hash chain, else what is wrong."""
        prev = cls.GENESIS
        events = cls.chain(agreement_id)
        if not events:
            return "no events"
        for i, ev in enumerate(events, start=1):
            if ev.seq != i:
                return f"event {i} is missing (found seq {ev.seq})"
            if ev.prev_hash != prev:
                return f"event {ev.seq} ({ev.action}) does not link to the previous event"
            if not hmac.compare_digest(ev.hash, ev.compute_hash()):
                return f"event {ev.seq} ({ev.action}) was altered: its hash does not match its content"
            prev = ev.hash
        # The chain must also end where the agreement is: deleting the last events (and resetting the
        # row) leaves a chain that links perfectly. Every transition adds one event and one version.
        agreement = Agreement.get_or_none(Agreement.id == agreement_id)
        if agreement is not None:
            if len(events) != agreement.version:
                return (f"the chain has {len(events)} events but the agreement is at version "
                        f"{agreement.version}: events are missing at its end")
            if events[-1].to_status != agreement.status:
                return f"the last event ends in {events[-1].to_status}, the agreement is {agreement.status}"
        return None


class Termination(BaseModel):
    """A termination request (解约): the employer initiates, the student agrees or refuses."""

    agreement = pw.ForeignKeyField(Agreement, backref="terminations", on_delete="CASCADE")
    initiated_by = pw.ForeignKeyField(EmployerUser, on_delete="RESTRICT")
    reason = pw.TextField()
    status = pw.CharField(max_length=16, default="pending", index=True)  # pending/agreed/refused/expired
    created_at = pw.DateTimeField(default=utcnow)
    deadline_at = pw.DateTimeField(null=True)
    decided_at = pw.DateTimeField(null=True)
    student_note = pw.TextField(default="")


class AgreementSignature(BaseModel):
    """What one party signed: the document state, the image used and the certificate."""

    agreement = pw.ForeignKeyField(Agreement, backref="signatures", on_delete="CASCADE")
    party = pw.CharField(max_length=16)  # student / school / employer
    signer_name = pw.CharField(max_length=100)
    signed_at = pw.DateTimeField(default=utcnow)
    seal = pw.ForeignKeyField(Seal, null=True, on_delete="SET NULL")
    image_sha256 = pw.CharField(max_length=64)
    content_sha256 = pw.CharField(max_length=64)
    document_sha256 = pw.CharField(max_length=64, default="", index=True)
    certificate_serial = pw.CharField(max_length=64, default="")
    details = JSONField(default=dict)

    class Meta:
        indexes = ((("agreement", "party"), True),)


class OutboxJob(BaseModel):
    """Durable deferred work (pushes, auto-signing), written in the transaction that causes it."""

    kind = pw.CharField(max_length=32, index=True)
    payload = JSONField(default=dict)
    event = pw.ForeignKeyField(AgreementEvent, null=True, on_delete="CASCADE")
    status = pw.CharField(max_length=12, default="pending")  # pending/running/done/dead
    attempts = pw.IntegerField(default=0)
    run_after = pw.DateTimeField(default=utcnow)
    locked_until = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    finished_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(default="")

    class Meta:
        indexes = ((("status", "run_after"), False),)


class Lease(BaseModel):
    """A named lease so that only one process runs a periodic duty (the scheduler) at a time."""

    name = pw.CharField(max_length=64, unique=True)
    holder = pw.CharField(max_length=128, default="")
    expires_at = pw.DateTimeField(default=utcnow)

    @classmethod
    def acquire(cls, name: str, holder: str, seconds: int) -> bool:
        """Take or renew the lease; True when ``holder`` holds it for the next ``seconds``."""
        now = utcnow()
        until = now + dt.timedelta(seconds=seconds)
        free = now - dt.timedelta(seconds=1)  # a new lease row starts out expired, i.e. free
        cls.insert(name=name, holder="", expires_at=free).on_conflict_ignore().execute()
        taken = (cls.update(holder=holder, expires_at=until)
                 .where((cls.name == name) & ((cls.holder == holder) | (cls.expires_at < now)))
                 .execute())
        return taken == 1


class SchemaVersion(BaseModel):
    version = pw.IntegerField()
    applied_at = pw.DateTimeField(default=utcnow)


CORE_MODELS: list[type[BaseModel]] = [
    School, Branch, SchoolAccount, Student, Employer, EmployerUser, PlatformAdmin, WechatBinding, Seal,
    AgreementSerial, Agreement, AgreementEvent, Termination, AgreementSignature, OutboxJob, Lease, SchemaVersion,
]

# Extra tables registered by other rooms (wechat_bot, admin) so `db upgrade` creates them too.
EXTRA_MODELS: list[type[BaseModel]] = []


def register_models(*models: type[BaseModel]) -> None:
    """Let another room add its tables to schema management."""
    for m in models:
        if m not in EXTRA_MODELS:
            EXTRA_MODELS.append(m)


# ---------------------------------------------------------------- database set-up

POOL_MAX_CONNECTIONS = 32
POOL_STALE_SECONDS = 300


def init_db(url: str, pooled: bool = True) -> pw.Database:
    """Bind the proxy to a database from its URL and return it (not yet connected).

    Connections are pooled (playhouse.pool): a request still connects and closes, but the close hands
    the connection back instead of tearing it down, which saves the connection set-up (and SQLite's
    pragmas) on every request."""
    previous = db.obj
    if previous is not None and hasattr(previous, "close_all"):
        previous.close_all()  # a re-bind (tests, CLI) must not leak the old pool's connections
    kwargs: dict[str, Any] = {}
    scheme, sep, rest = url.partition("://")
    if pooled and sep and "+pool" not in scheme:
        url = f"{scheme}+pool://{rest}"
        kwargs.update(max_connections=POOL_MAX_CONNECTIONS, stale_timeout=POOL_STALE_SECONDS)
    if url.startswith("sqlite"):
        # WAL lets readers go on while one writer writes; foreign keys enforced; wait on locks.
        kwargs["pragmas"] = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 15000,
                             "synchronous": "normal"}
        kwargs["timeout"] = 15
        kwargs["check_same_thread"] = False
        # Every transaction takes the write lock when it begins (BEGIN IMMEDIATE). A deferred one that
        # reads and then writes fails at once with "database is locked" when another connection wrote
        # in between (WAL snapshot conflict) – busy_timeout cannot help it. With the lock taken up
        # front, writers queue instead; the web app, the scheduler and the local WeChat sandbox share
        # one SQLite file in the demo.
        kwargs["lock_type"] = "IMMEDIATE"
    elif url.startswith("mysql"):
        from pymysql.constants import CLIENT

        kwargs["charset"] = "utf8mb4"
        # UPDATE counts matched rows (as on PostgreSQL and SQLite), not only rows whose values changed
        kwargs["client_flag"] = CLIENT.FOUND_ROWS
    database = connect(url, **kwargs)
    db.initialize(database)
    return database


def compiled_sql(name: str, build: Callable[[], Any]) -> str:
    """The SQL text of a query, built once per database object. Hot paths (every WeChat message)
    reuse it with fresh parameters: peewee spends far longer composing a query than SQLite running it.
    ``build`` must produce the query with its parameters in the order the caller will pass them.
    The cache lives on the database object itself: a cache keyed by ``id()`` handed SQLite's ``?``
    placeholders to a later MySQL database that happened to get the same id."""
    database = db.obj
    cache: dict[str, str] = database.__dict__.setdefault("_tripact_compiled_sql", {})
    sql = cache.get(name)
    if sql is None:
        sql = cache[name] = build().sql()[0]
    return sql


def is_sqlite() -> bool:
    return isinstance(db.obj, pw.SqliteDatabase)


@contextmanager
def transaction() -> Iterator[None]:
    """A write transaction. On SQLite it takes the write lock up front (BEGIN IMMEDIATE) so that
    two writers queue instead of failing half-way; elsewhere row locks and the version check decide."""
    with db.atomic():  # on SQLite: BEGIN IMMEDIATE (see init_db)
        yield


# ---------------------------------------------------------------- schema versions

def _v1(database: pw.Database) -> None:
    database.create_tables(CORE_MODELS + EXTRA_MODELS, safe=True)


def _ensure_index(database: pw.Database, model: type[BaseModel], column: str) -> None:
    """Create the index peewee would name ``<table>_<column>`` unless it exists already (a database
    created by a newer release's step 1 has it from the model definition)."""
    table = model._meta.table_name
    name = f"{table}_{column}"
    if any(ix.name == name for ix in database.get_indexes(table)):
        return
    q = database.quote
    database.execute_sql(f"CREATE INDEX {q[0]}{name}{q[1]} ON {q[0]}{table}{q[1]} ({q[0]}{column}{q[1]})")


def _v2(database: pw.Database) -> None:
    """Index document hashes: verifying an uploaded PDF looks the file up in the archive by hash."""
    _ensure_index(database, Agreement, "document_sha256")
    _ensure_index(database, AgreementSignature, "document_sha256")


# (version, what it does). Append; never edit an applied step. Each step runs in a transaction
# where the database supports transactional DDL.
MIGRATIONS: list[tuple[int, Callable[[pw.Database], None]]] = [
    (1, _v1),
    (2, _v2),
]
LATEST = MIGRATIONS[-1][0]


def schema_version() -> int:
    """The schema version the database is at (0 for an empty database)."""
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar()
    return int(row or 0)


def upgrade() -> list[int]:
    """Bring the schema to LATEST; return the versions applied. Safe to run any number of times."""
    current = schema_version()
    if current > LATEST:
        raise RuntimeError(f"database schema version {current} is newer than this release ({LATEST})")
    applied = []
    for version, step in MIGRATIONS:
        if version <= current:
            continue
        with db.atomic():
            step(db.obj)
            SchemaVersion.create(version=version)
        applied.append(version)
        log.info("schema upgraded to version %s", version)
    # Tables registered later by other rooms are created on any run.
    db.create_tables(EXTRA_MODELS, safe=True)
    return applied


def drop_all() -> None:
    """Drop every table (tests only)."""
    db.drop_tables(CORE_MODELS + EXTRA_MODELS, safe=True, cascade=not is_sqlite() and not _is_mysql())


def _is_mysql() -> bool:
    return isinstance(db.obj, pw.MySQLDatabase)
