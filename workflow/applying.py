"""Applying for an agreement, numbering it, and the employer's answer (confirm / reject); the
student's withdrawal."""
from __future__ import annotations

import logging
import secrets
from dataclasses import asdict
from typing import Any

import peewee as pw

import codes
import models
from models import Agreement, AgreementSerial, Employer, Student, transaction
from workflow.core import _append_event, _config, _days, _is_lock_conflict, _move, _queue, _transition
from workflow.vocabulary import (
    CONFLICT_MESSAGE,
    EMPLOYER_DETAIL_FIELDS,
    Actor,
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    Terms,
    WrongState,
    checked_reason,
)

log = logging.getLogger(__name__)


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
    reason = checked_reason(reason)
    return _transition(agreement_id, actor, "employer", {"applied"}, "reject", lambda a: _move(
        a, actor, "reject", "rejected", changes={"closed_reason": reason, "deadline_at": None},
        details={"reason": reason}, notices=[("agreement.rejected", "student", a.student_id)]),
        expected_version)
