"""How a completed or live agreement ends: termination (employer asks, student answers), cancellation
by the school, and expiry of overdue steps."""
from __future__ import annotations

import datetime as dt

from models import Agreement, Termination, utcnow
from workflow.core import _config, _days, _move, _transition
from workflow.vocabulary import (
    CANCEL_KINDS,
    LIVE,
    Actor,
    Conflict,
    InvalidInput,
    WrongState,
    checked_reason,
)

# ---------------------------------------------------------------- termination

def initiate_termination(actor: Actor, agreement_id: int, reason: str, expected_version: int | None = None
                         ) -> Agreement:
    """The employer asks to terminate a completed agreement; the student must agree."""
    reason = checked_reason(reason)

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


def cancel(actor: Actor, agreement_id: int, kind: str, reason: str, expected_version: int | None = None
           ) -> Agreement:
    """School staff cancel an agreement (offline signing or wrong information); the student may apply again."""
    if kind not in CANCEL_KINDS:
        raise InvalidInput("请选择作废类型", {"kind": "无效类型"})
    reason = checked_reason(reason)

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
