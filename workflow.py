"""The agreement state machine: the ONLY code that changes an agreement's state.

Life cycle (DOMAIN.md §1)::

    applied --confirm--> awaiting_student --student_sign--> awaiting_school --(auto)--> awaiting_employer
       |                                                         |  (blocked)              |
       +--withdraw/reject/expire                           school_review --approve--------+
                                                                 +--return--> returned    |
    awaiting_employer --employer_sign--> completed --initiate_termination--> terminating
    terminating --agree--> terminated;  --refuse/expire--> completed
    any live state --cancel (school)--> cancelled

Every transition runs in one database transaction that (1) checks who may do it and in which
state, (2) moves the agreement with an optimistic version check, so that of two conflicting
transitions exactly one wins and the other gets :class:`Conflict`, (3) appends its audit event to
the agreement's hash chain and (4) queues the notifications it causes in the outbox.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import peewee as pw

import codes
import models
from models import (
    Agreement,
    AgreementEvent,
    AgreementSerial,
    AgreementSignature,
    Employer,
    EmployerUser,
    OutboxJob,
    SchoolAccount,
    Seal,
    Student,
    Termination,
    transaction,
    utcnow,
)
from settings import WorkflowSettings

log = logging.getLogger(__name__)

STATUS_LABELS = {
    "applied": "待用人单位确认",
    "awaiting_student": "待学生签署",
    "awaiting_school": "学校签署中",
    "school_review": "待学校审核",
    "awaiting_employer": "待用人单位签署",
    "completed": "已完成",
    "terminating": "解约待学生确认",
    "rejected": "用人单位已拒绝",
    "withdrawn": "学生已撤回",
    "expired": "已过期",
    "returned": "学校已退回",
    "terminated": "已解约",
    "cancelled": "已作废",
}
LIVE = frozenset({"applied", "awaiting_student", "awaiting_school", "school_review", "awaiting_employer",
                  "completed", "terminating"})
FINAL = frozenset(STATUS_LABELS) - LIVE
PARTIES = ("student", "school", "employer")


# ---------------------------------------------------------------- errors

class WorkflowError(Exception):
    """Base of every refusal; ``message`` is Chinese for the end user."""

    status_code = 400

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class NotFound(WorkflowError):
    status_code = 404


class NotAllowed(WorkflowError):
    """The actor may not do this to this agreement (role, ownership or school scope)."""

    status_code = 403


class WrongState(WorkflowError):
    """The agreement is not in a state where this action is possible."""

    status_code = 409


class Conflict(WorkflowError):
    """Someone else changed the agreement first; reload and try again."""

    status_code = 409


class InvalidInput(WorkflowError):
    """The submitted data is not acceptable; ``fields`` maps field names to reasons."""

    status_code = 400

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message, fields=fields or {})
        self.fields = fields or {}


class SigningUnavailable(WorkflowError):
    """The signing step failed (keys, store, timestamp); the transition was rolled back."""

    status_code = 503


CONFLICT_MESSAGE = "协议已被他人更新，请刷新页面后重试"


# ---------------------------------------------------------------- actors and inputs

@dataclass(frozen=True)
class Actor:
    """Who acts: a student, an employer user, a school account, a platform admin or the system."""

    kind: str  # student / employer / school / admin / system
    id: int | None
    name: str
    ip: str = ""

    @classmethod
    def student(cls, s: Student, ip: str = "") -> Actor:
        return cls("student", s.id, s.name, ip)

    @classmethod
    def employer_user(cls, u: EmployerUser, ip: str = "") -> Actor:
        return cls("employer", u.id, u.name, ip)

    @classmethod
    def school_account(cls, a: SchoolAccount, ip: str = "") -> Actor:
        return cls("school", a.id, a.name, ip)

    @classmethod
    def admin(cls, admin_id: int, name: str, ip: str = "") -> Actor:
        return cls("admin", admin_id, name, ip)

    @classmethod
    def system(cls) -> Actor:
        return cls("system", None, "系统")


@dataclass(frozen=True)
class Terms:
    """The negotiated terms. Money in integer fen."""

    position: str
    work_location: str
    monthly_salary_fen: int
    probation_months: int | None = None
    internship_period: str = ""
    contract_years: int | None = None
    liquidated_damages_fen: int = 0
    remarks: str = ""

    def validate(self) -> Terms:
        errors: dict[str, str] = {}
        if not 1 <= len(self.position.strip()) <= 100:
            errors["position"] = "请填写岗位（不超过100字）"
        if not 1 <= len(self.work_location.strip()) <= 100:
            errors["work_location"] = "请填写工作地点（不超过100字）"
        if not 0 < self.monthly_salary_fen <= 100_000_000:
            errors["monthly_salary_fen"] = "月薪应大于0且不超过100万元"
        if self.probation_months is not None and not 0 <= self.probation_months <= 6:
            errors["probation_months"] = "试用期不得超过6个月"
        if self.probation_months and self.internship_period.strip():
            errors["internship_period"] = "试用期与见习期只能填写其一"
        if len(self.internship_period) > 50:
            errors["internship_period"] = "见习期不超过50字"
        if self.contract_years is not None and not 0 < self.contract_years <= 50:
            errors["contract_years"] = "合同期限应在1至50年之间"
        if not 0 <= self.liquidated_damages_fen <= 10_000_000:
            errors["liquidated_damages_fen"] = "违约金应在0至10万元之间"
        if len(self.remarks) > 2000:
            errors["remarks"] = "备注不超过2000字"
        if errors:
            raise InvalidInput("协议条款填写有误", errors)
        return self


EMPLOYER_DETAIL_FIELDS = {
    # agreement snapshot field -> (employer field, max length)
    "industry": ("industry", 50), "affiliation_code": ("affiliation_code", 4),
    "employer_address": ("address", 200), "employer_postcode": ("postcode", 10),
    "employer_contact": ("contact", 50), "employer_phone": ("phone", 30), "employer_email": ("email", 100),
    "archive_unit": ("archive_unit", 100), "archive_address": ("archive_address", 200),
    "archive_postcode": ("archive_postcode", 10),
}


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
    """Set the deadlines, the signing step and how seal images are read (storage)."""
    global _config
    _config = _Config(deadlines, signer or RecordingSigner(), image_loader)


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


ACTION_LABELS = {
    "apply": "申请协议", "withdraw": "撤回申请", "confirm": "确认协议", "reject": "拒绝申请",
    "student_sign": "签署协议", "school_sign": "学校签署", "school_review": "转学校审核",
    "school_approve": "审核通过并签署", "school_return": "退回协议", "employer_sign": "签署协议",
    "initiate_termination": "发起解约", "agree_termination": "同意解约", "refuse_termination": "拒绝解约",
    "cancel": "作废协议", "expire": "过期处理",
}


# ---------------------------------------------------------------- applying

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_verify_code() -> str:
    """16 characters from a 32-letter alphabet: 80 random bits, unguessable, easy to type."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(16))


def _ensure_serial_row(year: int, school_code: str, level_code: str) -> None:
    """Create the counter row for a number series if missing (its own tiny autocommitted insert)."""
    AgreementSerial.insert(year=year, school_code=school_code, level_code=level_code, last=0) \
        .on_conflict_ignore().execute()


def _next_number(year: int, school_code: str, level_code: str) -> str:
    """Agreement number: graduation year + school code + education level + 6-digit serial.
    The counter row's lock serialises concurrent applications of one series."""
    key = ((AgreementSerial.year == year) & (AgreementSerial.school_code == school_code)
           & (AgreementSerial.level_code == level_code))
    if not AgreementSerial.update(last=AgreementSerial.last + 1).where(key).execute():
        raise Conflict(CONFLICT_MESSAGE)  # pragma: no cover - the row is made before the transaction
    serial = AgreementSerial.get(key).last
    return f"{year}{school_code}{level_code}{serial:06d}"


def _student_snapshot(student: Student) -> dict[str, Any]:
    branch = student.school.branches.where(models.Branch.code == student.branch_code).first()
    return dict(
        student=student.id, school=student.school_id, branch_code=student.branch_code,
        level_code=student.level_code, graduation_year=student.graduation_year,
        student_name=student.name, gender=student.gender, id_number=student.id_number,
        student_no=student.student_no, school_name=student.school.name,
        branch_name=branch.name if branch else "", college=student.college, major=student.major,
        training_mode=student.training_mode, origin=student.origin, student_phone=student.phone)


def _employer_snapshot(e: Employer) -> dict[str, Any]:
    return dict(
        employer=e.id, employer_name=e.name, credit_code=e.credit_code, nature_code=e.nature_code,
        industry=e.industry, affiliation_code=e.affiliation_code, employer_address=e.address,
        employer_postcode=e.postcode, employer_contact=e.contact, employer_phone=e.phone,
        employer_email=e.email, archive_unit=e.archive_unit, archive_address=e.archive_address,
        archive_postcode=e.archive_postcode, accepts_hukou=e.accepts_hukou)


def apply(actor: Actor, employer_id: int, terms: Terms) -> Agreement:
    """A student applies for an agreement with a registered employer."""
    if actor.kind != "student":
        raise NotAllowed("只有学生可以申请就业协议")
    terms.validate()
    found = Student.get_or_none(Student.id == actor.id)
    if found is not None:
        _ensure_serial_row(found.graduation_year, found.school.code, found.level_code)
    try:
        with transaction():
            query = Student.select().where(Student.id == actor.id)
            # Lock the student's row: two applications of one student queue here, the second then
            # sees the first one's live agreement.
            student = (query if models.is_sqlite() else query.for_update()).first()
            if student is None or not student.on_roster:
                raise NotAllowed("您不在学校的学生名单中，请联系学校就业部门")
            employer = Employer.get_or_none(Employer.id == employer_id)
            if employer is None:
                raise NotFound("用人单位不存在")
            if employer.review_status != "approved":
                raise WrongState("该用人单位尚未通过审核，暂不能申请")
            if Agreement.live_for_student(student.id):
                raise WrongState("您已有一份进行中的就业协议，需解约或作废后才能重新申请")
            agreement = Agreement(
                number=_next_number(student.graduation_year, student.school.code, student.level_code),
                verify_code=new_verify_code(), status="applied", version=1, live_student=student.id,
                deadline_at=_days(_config.deadlines.application_days),
                **_student_snapshot(student), **_employer_snapshot(employer), **asdict(terms))
            agreement.save(force_insert=True)
            event = _append_event(agreement, actor, "apply", "", "applied",
                                  {"employer_id": employer.id, "terms": asdict(terms)})
            _queue(event, [("agreement.applied", "employer", employer.id)], [])
    except pw.IntegrityError as exc:
        # The unique index on live_student: a concurrent application of the same student won.
        raise WrongState("您已有一份进行中的就业协议，需解约或作废后才能重新申请") from exc
    except pw.OperationalError as exc:
        if not _is_lock_conflict(exc):
            raise
        raise Conflict(CONFLICT_MESSAGE) from exc
    log.info("agreement %s applied by student %s", agreement.id, student.id)
    return agreement


def withdraw(actor: Actor, agreement_id: int, expected_version: int | None = None) -> Agreement:
    """The student withdraws an application the employer has not yet answered."""
    return _transition(agreement_id, actor, "student", {"applied"}, "withdraw", lambda a: _move(
        a, actor, "withdraw", "withdrawn", changes={"deadline_at": None},
        notices=[("agreement.withdrawn", "employer", a.employer_id)]), expected_version)


def confirm(actor: Actor, agreement_id: int, terms: Terms | None = None,
            employer_details: dict[str, str] | None = None, expected_version: int | None = None) -> Agreement:
    """The employer confirms the application, possibly editing the terms and completing its details."""
    if terms is not None:
        terms.validate()
    details_in = dict(employer_details or {})
    unknown = set(details_in) - set(EMPLOYER_DETAIL_FIELDS) - {"accepts_hukou"}
    if unknown:
        raise InvalidInput("单位信息包含不可修改的字段", {k: "不可修改" for k in unknown})
    errors = {k: f"不超过{EMPLOYER_DETAIL_FIELDS[k][1]}字" for k, v in details_in.items()
              if k in EMPLOYER_DETAIL_FIELDS and len(str(v)) > EMPLOYER_DETAIL_FIELDS[k][1]}
    if "affiliation_code" in details_in and details_in["affiliation_code"] not in codes.tables()["affiliation"]:
        errors["affiliation_code"] = "隶属关系代码无效"
    if errors:
        raise InvalidInput("单位信息填写有误", errors)

    def body(a: Agreement) -> Agreement:
        changes: dict[str, Any] = asdict(terms) if terms else {}
        employer_changes: dict[str, Any] = {}
        for key, value in details_in.items():
            changes[key] = bool(value) if key == "accepts_hukou" else str(value).strip()
            employer_changes["accepts_hukou" if key == "accepts_hukou" else EMPLOYER_DETAIL_FIELDS[key][0]] = \
                changes[key]
        if employer_changes:
            Employer.update(employer_changes).where(Employer.id == a.employer_id).execute()
        changes["deadline_at"] = _days(_config.deadlines.student_sign_days)
        edited = {k: v for k, v in changes.items() if k != "deadline_at" and getattr(a, k) != v}
        return _move(a, actor, "confirm", "awaiting_student", changes=changes,
                     details={"edited": sorted(edited)},
                     notices=[("agreement.confirmed", "student", a.student_id)])
    return _transition(agreement_id, actor, "employer", {"applied"}, "confirm", body, expected_version)


def reject(actor: Actor, agreement_id: int, reason: str, expected_version: int | None = None) -> Agreement:
    """The employer rejects the application with a reason."""
    reason = _reason(reason)
    return _transition(agreement_id, actor, "employer", {"applied"}, "reject", lambda a: _move(
        a, actor, "reject", "rejected", changes={"closed_reason": reason, "deadline_at": None},
        details={"reason": reason}, notices=[("agreement.rejected", "student", a.student_id)]),
        expected_version)


def _reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("请填写原因", {"reason": "必填"})
    if len(reason) > 500:
        raise InvalidInput("原因不超过500字", {"reason": "不超过500字"})
    return reason


# ---------------------------------------------------------------- signing

MAX_SIGNATURE_IMAGE = 2 * 1024 * 1024


def _sign_step(a: Agreement, party: str, signer_name: str, image: bytes, seal: Seal | None = None
               ) -> dict[str, Any]:
    """Run the signing step for one party and record what was signed; return agreement changes."""
    if not image.startswith(b"\x89PNG\r\n\x1a\n") or len(image) > MAX_SIGNATURE_IMAGE:
        raise InvalidInput("签名或印章图片无效（需为不超过2MB的PNG图片）", {"image": "无效图片"})
    try:
        revision = _config.signer.sign(a, party, signer_name, image)
    except WorkflowError:
        raise
    except Exception as exc:  # noqa: BLE001 - keys, store or PDF trouble: nothing is committed
        log.exception("signing step failed for agreement %s (%s)", a.id, party)
        raise SigningUnavailable("签署服务暂时不可用，请稍后重试") from exc
    AgreementSignature.create(
        agreement=a.id, party=party, signer_name=signer_name[:100], seal=seal.id if seal else None,
        image_sha256=hashlib.sha256(image).hexdigest(), content_sha256=revision.content_sha256,
        document_sha256=revision.document_sha256, certificate_serial=revision.certificate_serial,
        details=revision.details)
    changes: dict[str, Any] = {"document_sha256": revision.document_sha256}
    if revision.document_key:
        changes["document_key"] = revision.document_key
    return changes


def _seal_image(seal: Seal) -> bytes:
    if _config.image_loader is None:
        raise WorkflowError("印章图片存储未配置")
    return _config.image_loader(seal.image_key)


def student_sign(actor: Actor, agreement_id: int, signature_png: bytes,
                 expected_version: int | None = None) -> Agreement:
    """The student signs with a handwritten signature; the school's automatic signature is queued."""
    def body(a: Agreement) -> Agreement:
        changes = _sign_step(a, "student", a.student_name, signature_png)
        changes["deadline_at"] = None
        return _move(a, actor, "student_sign", "awaiting_school", changes=changes,
                     details={"image_sha256": hashlib.sha256(signature_png).hexdigest()},
                     jobs=[("school_auto_sign", {})])
    return _transition(agreement_id, actor, "student", {"awaiting_student"}, "student_sign", body,
                       expected_version)


def school_blockers(a: Agreement) -> list[str]:
    """Why the school cannot sign automatically (empty when nothing blocks it)."""
    blockers = []
    student = Student.get_or_none(Student.id == a.student_id)
    if student is None or not student.on_roster or student.school_id != a.school_id:
        blockers.append("学生不在本校学生名单中")
    elif (student.name, student.id_number, student.student_no, student.level_code) != \
            (a.student_name, a.id_number, a.student_no, a.level_code):
        blockers.append("学生信息与学校名单不一致")
    if Employer.get_by_id(a.employer_id).review_status != "approved":
        blockers.append("用人单位未通过审核")
    if active_school_seal(a.school_id) is None:
        blockers.append("学校尚未设置启用的印章")
    return blockers


def active_school_seal(school_id: int) -> Seal | None:
    """The seal the school signs with: its newest active employment seal, else official seal."""
    seals = list(Seal.select().where((Seal.school == school_id) & (Seal.active == True))  # noqa: E712
                 .order_by(Seal.created_at.desc(), Seal.id.desc()))
    for wanted in ("employment", "official"):
        for s in seals:
            if s.seal_type == wanted:
                return s
    return seals[0] if seals else None


def _school_signs(a: Agreement, actor: Actor, action: str, seal: Seal) -> Agreement:
    changes = _sign_step(a, "school", a.school_name, _seal_image(seal), seal)
    changes["deadline_at"] = _days(_config.deadlines.employer_sign_days)
    return _move(a, actor, action, "awaiting_employer", changes=changes, details={"seal_id": seal.id},
                 notices=[("agreement.school_signed", "student", a.student_id),
                          ("agreement.awaiting_employer", "employer", a.employer_id)])


def school_auto_sign(agreement_id: int) -> Agreement:
    """The school signs by itself when nothing blocks it; otherwise the agreement joins the review queue."""
    actor = Actor.system()

    def body(a: Agreement) -> Agreement:
        blockers = school_blockers(a)
        if not blockers:
            return _school_signs(a, actor, "school_sign", active_school_seal(a.school_id))  # type: ignore[arg-type]
        return _move(a, actor, "school_review", "school_review", details={"blockers": blockers},
                     notices=[("agreement.school_review", "school", a.school_id)])
    return _transition(agreement_id, actor, "system", {"awaiting_school"}, "school_sign", body)


def school_approve(actor: Actor, agreement_id: int, expected_version: int | None = None) -> Agreement:
    """School staff approve an agreement in the review queue; the school's seal signs it."""
    def body(a: Agreement) -> Agreement:
        seal = active_school_seal(a.school_id)
        if seal is None:
            raise WrongState("学校尚未设置启用的印章，请先在印章管理中上传并启用印章")
        return _school_signs(a, actor, "school_approve", seal)
    return _transition(agreement_id, actor, "school", {"school_review"}, "school_approve", body,
                       expected_version)


def school_return(actor: Actor, agreement_id: int, reason: str, expected_version: int | None = None
                  ) -> Agreement:
    """School staff return an agreement from the review queue; the student may apply again."""
    reason = _reason(reason)
    return _transition(agreement_id, actor, "school", {"school_review"}, "school_return", lambda a: _move(
        a, actor, "school_return", "returned", changes={"closed_reason": reason}, details={"reason": reason},
        notices=[("agreement.returned", "student", a.student_id),
                 ("agreement.returned", "employer", a.employer_id)]), expected_version)


def employer_sign(actor: Actor, agreement_id: int, seal_id: int, expected_version: int | None = None
                  ) -> Agreement:
    """The employer signs with one of its active seals; the agreement is complete."""
    def body(a: Agreement) -> Agreement:
        seal = Seal.get_or_none((Seal.id == seal_id) & (Seal.employer == a.employer_id) & (Seal.active == True))  # noqa: E712,E501
        if seal is None:
            raise InvalidInput("请选择本单位已启用的印章", {"seal_id": "无效印章"})
        changes = _sign_step(a, "employer", a.employer_name, _seal_image(seal), seal)
        changes.update(deadline_at=None, completed_at=utcnow())
        return _move(a, actor, "employer_sign", "completed", changes=changes, details={"seal_id": seal.id},
                     notices=[("agreement.completed", "student", a.student_id),
                              ("agreement.completed", "employer", a.employer_id)])
    return _transition(agreement_id, actor, "employer", {"awaiting_employer"}, "employer_sign", body,
                       expected_version)


# ---------------------------------------------------------------- termination and cancellation

def initiate_termination(actor: Actor, agreement_id: int, reason: str, expected_version: int | None = None
                         ) -> Agreement:
    """The employer asks to terminate a completed agreement; the student must agree."""
    reason = _reason(reason)

    def body(a: Agreement) -> Agreement:
        deadline = _days(_config.deadlines.termination_days)
        t = Termination.create(agreement=a.id, initiated_by=actor.id, reason=reason, deadline_at=deadline)
        return _move(a, actor, "initiate_termination", "terminating", changes={"deadline_at": deadline},
                     details={"termination_id": t.id, "reason": reason},
                     notices=[("termination.requested", "student", a.student_id)])
    return _transition(agreement_id, actor, "employer", {"completed"}, "initiate_termination", body,
                       expected_version)


def _decide_termination(a: Agreement, status: str, note: str = "") -> Termination:
    t = a.terminations.where(Termination.status == "pending").order_by(Termination.id.desc()).first()
    if t is None:  # pragma: no cover - guarded by the state machine
        raise WrongState("没有待处理的解约申请")
    t.status, t.decided_at, t.student_note = status, utcnow(), note
    t.save()
    return t


def agree_termination(actor: Actor, agreement_id: int, expected_version: int | None = None) -> Agreement:
    """The student agrees: the termination takes effect and the student may apply again."""
    def body(a: Agreement) -> Agreement:
        t = _decide_termination(a, "agreed")
        return _move(a, actor, "agree_termination", "terminated",
                     changes={"deadline_at": None, "closed_reason": t.reason}, details={"termination_id": t.id},
                     notices=[("termination.agreed", "employer", a.employer_id),
                              ("termination.agreed", "school", a.school_id)])
    return _transition(agreement_id, actor, "student", {"terminating"}, "agree_termination", body,
                       expected_version)


def refuse_termination(actor: Actor, agreement_id: int, note: str = "", expected_version: int | None = None
                       ) -> Agreement:
    """The student refuses: the agreement stays completed."""
    note = (note or "").strip()[:500]

    def body(a: Agreement) -> Agreement:
        t = _decide_termination(a, "refused", note)
        return _move(a, actor, "refuse_termination", "completed", changes={"deadline_at": None},
                     details={"termination_id": t.id, "note": note},
                     notices=[("termination.refused", "employer", a.employer_id)])
    return _transition(agreement_id, actor, "student", {"terminating"}, "refuse_termination", body,
                       expected_version)


CANCEL_KINDS = {"offline": "线下签约", "wrong_info": "协议信息有误"}


def cancel(actor: Actor, agreement_id: int, kind: str, reason: str, expected_version: int | None = None
           ) -> Agreement:
    """School staff cancel an agreement (offline signing or wrong information); the student may apply again."""
    if kind not in CANCEL_KINDS:
        raise InvalidInput("请选择作废类型", {"kind": "无效类型"})
    reason = _reason(reason)

    def body(a: Agreement) -> Agreement:
        if a.status == "terminating":
            _decide_termination(a, "void")
        return _move(a, actor, "cancel", "cancelled",
                     changes={"deadline_at": None, "closed_reason": f"{CANCEL_KINDS[kind]}：{reason}"},
                     details={"kind": kind, "reason": reason},
                     notices=[("agreement.cancelled", "student", a.student_id),
                              ("agreement.cancelled", "employer", a.employer_id)])
    return _transition(agreement_id, actor, "school", LIVE, "cancel", body, expected_version)


# ---------------------------------------------------------------- deadlines

_EXPIRING = {"applied": "expired", "awaiting_student": "expired", "awaiting_employer": "expired",
             "terminating": "completed"}


def expire_overdue(now: dt.datetime | None = None) -> list[int]:
    """Expire every agreement whose pending step is past its deadline; return their ids."""
    now = now or utcnow()
    overdue = [a.id for a in Agreement.select(Agreement.id)
               .where(Agreement.status.in_(list(_EXPIRING)) & (Agreement.deadline_at < now))]
    done = []
    actor = Actor.system()
    for agreement_id in overdue:
        def body(a: Agreement) -> Agreement:
            if a.deadline_at is None or a.deadline_at >= now:
                raise WrongState("未过期")
            target = _EXPIRING[a.status]
            notices = [("agreement.expired", "student", a.student_id),
                       ("agreement.expired", "employer", a.employer_id)]
            if a.status == "terminating":
                _decide_termination(a, "expired")
                notices = [("termination.expired", "employer", a.employer_id)]
            return _move(a, actor, "expire", target, changes={"deadline_at": None},
                         details={"step": a.status}, notices=notices)
        try:
            _transition(agreement_id, actor, "system", set(_EXPIRING), "expire", body)
            done.append(agreement_id)
        except (Conflict, WrongState):
            continue  # someone acted in time, or another scheduler got there first
    return done
