"""The three signatures: the student's, the school's (automatic or after review) and the
employer's, each through the configured signing step."""
from __future__ import annotations

import hashlib
import logging
from typing import Any

from models import Agreement, AgreementSignature, Employer, Seal, Student, utcnow
from workflow.core import _config, _days, _move, _transition
from workflow.vocabulary import (
    Actor,
    InvalidInput,
    SigningUnavailable,
    WorkflowError,
    WrongState,
    checked_reason,
)

log = logging.getLogger(__name__)


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


def school_auto_sign_failed(agreement_id: int, error: str) -> Agreement:
    """The school's automatic signature failed for good (the outbox gave up): the agreement joins the
    review queue instead of waiting in awaiting_school for ever."""
    actor = Actor.system()
    return _transition(agreement_id, actor, "system", {"awaiting_school"}, "school_review", lambda a: _move(
        a, actor, "school_review", "school_review",
        details={"blockers": ["学校自动签署失败，请排除故障后审核签署"], "error": error[:300]},
        notices=[("agreement.school_review", "school", a.school_id)]))


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
    reason = checked_reason(reason)
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
