"""The transition core: the signing step's interface, configuration, and the one way an agreement
changes state (lock, check, move with a version check, audit event, outbox) – every transition
in this package goes through :func:`_transition` and :func:`_move`."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import peewee as pw

import models
from models import Agreement, AgreementEvent, EmployerUser, OutboxJob, SchoolAccount, transaction, utcnow
from settings import WorkflowSettings
from workflow.vocabulary import (
    ACTION_LABELS,
    CONFLICT_MESSAGE,
    LIVE,
    STATUS_LABELS,
    Actor,
    Conflict,
    NotAllowed,
    NotFound,
    WrongState,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- signing step

@dataclass(frozen=True)
class SignedRevision:
    """What a signing step produced."""

    content_sha256: str
    document_sha256: str
    certificate_serial: str = ""
    document_key: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class DocumentSigner(Protocol):
    """The signing step. The real implementation renders and signs the PDF (signing/)."""

    def sign(self, agreement: Agreement, party: str, signer_name: str, image: bytes) -> SignedRevision: ...


def content_digest(agreement: Agreement) -> str:
    """sha256 of the agreement's content (every snapshot and term field, not its state)."""
    skip = {"id", "status", "version", "live_student", "updated_at", "deadline_at", "completed_at",
            "closed_reason", "document_key", "document_sha256"}
    data = {k: v for k, v in agreement.__data__.items() if k not in skip}
    return hashlib.sha256(json.dumps(data, default=str, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class RecordingSigner:
    """Signing step that records what was signed (content digest + image digest) without a PDF."""

    def sign(self, agreement: Agreement, party: str, signer_name: str, image: bytes) -> SignedRevision:
        content = content_digest(agreement)
        image_hash = hashlib.sha256(image).hexdigest()
        doc = hashlib.sha256(f"{agreement.document_sha256}|{party}|{content}|{image_hash}".encode()).hexdigest()
        return SignedRevision(content_sha256=content, document_sha256=doc)


@dataclass
class _Config:
    deadlines: WorkflowSettings = field(default_factory=WorkflowSettings)
    signer: DocumentSigner = field(default_factory=RecordingSigner)
    image_loader: Callable[[str], bytes] | None = None


_config = _Config()


def configure(deadlines: WorkflowSettings, signer: DocumentSigner | None = None,
              image_loader: Callable[[str], bytes] | None = None) -> None:
    """Set the deadlines, the signing step and how seal images are read (storage). The one
    configuration object is updated in place: the transition modules hold a reference to it."""
    _config.deadlines = deadlines
    _config.signer = signer or RecordingSigner()
    _config.image_loader = image_loader


def _days(n: int) -> dt.datetime:
    return utcnow() + dt.timedelta(days=n)


# ---------------------------------------------------------------- the transition core

def _load(agreement_id: int) -> Agreement:
    """Read the agreement for a transition, locking its row first where the database can (so a
    concurrent transition waits here instead of deadlocking on a later foreign-key check)."""
    def build() -> Any:
        query = Agreement.select().where(Agreement.id == 0).limit(1)
        return query if models.is_sqlite() else query.for_update()

    # compiled once: peewee takes milliseconds to compose a select of this 60-column row
    agreement = next(iter(Agreement.raw(models.compiled_sql("agreement.load_for_update", build),
                                        agreement_id, 1)), None)
    if agreement is None:
        raise NotFound("协议不存在")
    return agreement


def _check_actor(actor: Actor, agreement: Agreement, role: str) -> None:
    """Raise NotAllowed unless ``actor`` plays ``role`` on this agreement (ownership, scope, activity)."""
    if role == "system":
        ok = actor.kind == "system"
    elif role == "student":
        ok = actor.kind == "student" and actor.id == agreement.student_id
    elif role == "employer":
        user = EmployerUser.get_or_none(EmployerUser.id == actor.id) if actor.kind == "employer" else None
        ok = bool(user and user.active and user.employer_id == agreement.employer_id)
    elif role == "school":
        acct = SchoolAccount.get_or_none(SchoolAccount.id == actor.id) if actor.kind == "school" else None
        ok = bool(acct and acct.active and acct.covers(agreement.school_id, agreement.branch_code,
                                                       agreement.level_code))
    else:  # pragma: no cover - programming error
        raise ValueError(role)
    if not ok:
        raise NotAllowed("您无权对该协议执行此操作", role=role, actor=actor.kind)


def _append_event(agreement: Agreement, actor: Actor, action: str, from_status: str, to_status: str,
                  details: dict[str, Any]) -> AgreementEvent:
    """Append the next event to the agreement's hash chain (called with the agreement row locked)."""
    last = (AgreementEvent.select(AgreementEvent.seq, AgreementEvent.hash)
            .where(AgreementEvent.agreement == agreement.id)
            .order_by(AgreementEvent.seq.desc()).first())
    event = AgreementEvent(
        agreement=agreement.id, seq=(last.seq + 1) if last else 1, action=action,
        actor_type=actor.kind, actor_id=actor.id, actor_name=actor.name[:100],
        from_status=from_status, to_status=to_status, created_at=utcnow(), ip=actor.ip[:45],
        details=details, prev_hash=last.hash if last else AgreementEvent.GENESIS, hash="")
    event.hash = event.compute_hash()
    event.save(force_insert=True)
    return event


def _queue(event: AgreementEvent, notices: Iterable[tuple[str, str, int]], jobs: Iterable[tuple[str, dict]]
           ) -> None:
    """Queue notifications (notice name, recipient type, recipient id) and other jobs for this event."""
    for name, rtype, rid in notices:
        OutboxJob.create(kind="notify", event=event.id, payload={
            "notice": name, "agreement_id": event.agreement_id, "recipient_type": rtype,
            "recipient_id": rid})
    for kind, payload in jobs:
        OutboxJob.create(kind=kind, event=event.id, payload={"agreement_id": event.agreement_id, **payload})


def _move(agreement: Agreement, actor: Actor, action: str, to_status: str, *,
          expected_version: int | None = None, changes: dict[str, Any] | None = None,
          details: dict[str, Any] | None = None, notices: Iterable[tuple[str, str, int]] = (),
          jobs: Iterable[tuple[str, dict]] = ()) -> Agreement:
    """Move ``agreement`` to ``to_status`` if nobody changed it since it was read; write the event
    and the outbox entries. Must run inside ``transaction()``."""
    if expected_version is not None and expected_version != agreement.version:
        raise Conflict(CONFLICT_MESSAGE)
    now = utcnow()
    values: dict[str, Any] = dict(changes or {})
    values.update(status=to_status, version=agreement.version + 1, updated_at=now)
    if to_status not in LIVE:
        values["live_student"] = None
    fields = {getattr(Agreement, k): v for k, v in values.items()}
    updated = (Agreement.update(fields)
               .where((Agreement.id == agreement.id) & (Agreement.version == agreement.version)
                      & (Agreement.status == agreement.status))
               .execute())
    if updated != 1:
        raise Conflict(CONFLICT_MESSAGE)
    from_status = agreement.status
    for k, v in values.items():
        setattr(agreement, k, v)
    event = _append_event(agreement, actor, action, from_status, to_status, details or {})
    _queue(event, notices, jobs)
    return agreement


def _transition(agreement_id: int, actor: Actor, role: str, allowed: Iterable[str], action: str,
                body: Callable[[Agreement], Agreement], expected_version: int | None = None) -> Agreement:
    """Run ``body`` in a transaction after the common checks; map a lost race to Conflict."""
    try:
        with transaction():
            agreement = _load(agreement_id)
            _check_actor(actor, agreement, role)
            if expected_version is not None and expected_version != agreement.version:
                raise Conflict(CONFLICT_MESSAGE)
            if agreement.status not in allowed:
                raise WrongState(f"协议当前状态为“{STATUS_LABELS[agreement.status]}”，不能{ACTION_LABELS[action]}",
                                 status=agreement.status)
            if actor.kind in ("student", "employer") and agreement.deadline_at is not None \
                    and agreement.deadline_at < utcnow():
                # The periodic expiry runs every few minutes (or not at all while the scheduler is
                # down): a party's step after its deadline is refused here, under the row lock.
                raise WrongState("办理期限已过，该步骤已不能办理", status=agreement.status)
            result = body(agreement)
        log.info("agreement %s: %s by %s#%s -> %s", agreement_id, action, actor.kind, actor.id, result.status)
        return result
    except pw.IntegrityError as exc:
        # A concurrent writer inserted the same event sequence number (or similar): it won.
        log.info("agreement %s: %s lost a race (%s)", agreement_id, action, exc)
        raise Conflict(CONFLICT_MESSAGE) from exc
    except pw.OperationalError as exc:
        if not _is_lock_conflict(exc):
            raise
        log.info("agreement %s: %s lost a race (%s)", agreement_id, action, exc)
        raise Conflict(CONFLICT_MESSAGE) from exc


def _is_lock_conflict(exc: pw.OperationalError) -> bool:
    """Deadlock or serialization failure reported by the database: the other transaction won."""
    text = str(exc).lower()
    return any(s in text for s in ("deadlock", "could not serialize", "lock wait timeout", "database is locked"))
