"""The agreement life cycle, its permissions, deadlines and audit chain – on every database backend."""
from __future__ import annotations

import datetime as dt

import pytest

import jobs
import models
import workflow
from models import Agreement, AgreementEvent, OutboxJob, Termination
from tests import factories as f
from workflow import Actor


@pytest.fixture
def db_url(any_db: str) -> str:
    return any_db


@pytest.fixture
def world(app) -> f.World:  # type: ignore[no-untyped-def]
    return f.World()


def notices(a: Agreement) -> list[tuple[str, str, int]]:
    return [(j.payload["notice"], j.payload["recipient_type"], j.payload["recipient_id"])
            for j in OutboxJob.select().where(OutboxJob.kind == "notify").order_by(OutboxJob.id)
            if j.payload["agreement_id"] == a.id]


def test_full_life_cycle_signs_automatically_and_completes(world: f.World) -> None:
    s = world.student_actor()
    a = workflow.apply(s, world.employer.id, f.terms())
    assert a.status == "applied" and a.live_student == world.student.id
    assert a.number == f"2027{world.school.code}31000001"
    assert a.deadline_at is not None
    a = workflow.confirm(world.employer_actor, a.id, f.terms(position="数据工程师"),
                         {"archive_unit": "人事档案室", "accepts_hukou": True})
    assert (a.status, a.position, a.archive_unit, a.accepts_hukou) == ("awaiting_student", "数据工程师",
                                                                        "人事档案室", True)
    assert models.Employer.get_by_id(world.employer.id).archive_unit == "人事档案室"
    a = workflow.student_sign(s, a.id, f.SIGNATURE)
    assert a.status == "awaiting_school"
    assert jobs.drain() >= 1
    a = Agreement.get_by_id(a.id)
    assert a.status == "awaiting_employer"
    a = workflow.employer_sign(world.employer_actor, a.id, world.employer_seal.id)
    assert a.status == "completed" and a.completed_at is not None and a.deadline_at is None
    assert [s.party for s in a.signatures.order_by(models.AgreementSignature.id)] == ["student", "school",
                                                                                       "employer"]
    assert [e.action for e in AgreementEvent.chain(a.id)] == [
        "apply", "confirm", "student_sign", "school_sign", "employer_sign"]
    assert AgreementEvent.verify_chain(a.id) is None
    assert ("agreement.applied", "employer", world.employer.id) in notices(a)
    assert ("agreement.completed", "student", world.student.id) in notices(a)
    # every outbox entry belongs to a committed event of this agreement
    for job in OutboxJob.select():
        assert job.event is not None


def test_school_review_queue_when_school_has_no_seal(app) -> None:  # type: ignore[no-untyped-def]
    world = f.World(school_seal=False)
    a = world.agreement_at("school_review")
    first_review = AgreementEvent.chain(a.id)[-1]
    assert first_review.details["blockers"] == ["学校尚未设置启用的印章"]
    with pytest.raises(workflow.WrongState, match="印章"):
        workflow.school_approve(world.school_actor, a.id)
    f.make_seal(school=world.school)
    with pytest.raises(workflow.NotAllowed):
        workflow.school_approve(Actor.school_account(world.other_scope_account), a.id)
    a = workflow.school_approve(Actor.school_account(world.scoped_account), a.id)
    assert a.status == "awaiting_employer"


def test_school_review_when_student_left_roster_and_return(world: f.World) -> None:
    a = world.agreement_at("awaiting_student")
    workflow.student_sign(world.student_actor(), a.id, f.SIGNATURE)
    models.Student.update(on_roster=False).where(models.Student.id == world.student.id).execute()
    jobs.drain()
    a = Agreement.get_by_id(a.id)
    assert a.status == "school_review"
    with pytest.raises(workflow.InvalidInput):
        workflow.school_return(world.school_actor, a.id, "  ")
    a = workflow.school_return(world.school_actor, a.id, "请核实学籍")
    assert a.status == "returned" and a.live_student is None


def test_withdraw_and_reject_free_the_student(world: f.World) -> None:
    s = world.student_actor()
    a = workflow.apply(s, world.employer.id, f.terms())
    with pytest.raises(workflow.WrongState, match="进行中"):
        workflow.apply(s, world.employer.id, f.terms())
    assert workflow.withdraw(s, a.id).status == "withdrawn"
    b = workflow.apply(s, world.employer.id, f.terms())
    assert b.number.endswith("000002")
    with pytest.raises(workflow.InvalidInput):
        workflow.reject(world.employer_actor, b.id, "")
    assert workflow.reject(world.employer_actor, b.id, "岗位已满").status == "rejected"
    assert workflow.apply(s, world.employer.id, f.terms()).status == "applied"


def test_withdraw_only_before_employer_confirms(world: f.World) -> None:
    a = world.agreement_at("awaiting_student")
    with pytest.raises(workflow.WrongState, match="待学生签署"):
        workflow.withdraw(world.student_actor(), a.id)


def test_termination_agreed_lets_student_apply_again(world: f.World) -> None:
    a = world.agreement_at("terminating")
    t = Termination.get(Termination.agreement == a.id)
    assert t.status == "pending" and t.reason == "岗位调整"
    with pytest.raises(workflow.NotAllowed):
        workflow.agree_termination(world.employer_actor, a.id)
    a = workflow.agree_termination(world.student_actor(), a.id)
    assert a.status == "terminated" and a.live_student is None
    assert Termination.get_by_id(t.id).status == "agreed"
    assert ("termination.agreed", "school", world.school.id) in notices(a)
    assert workflow.apply(world.student_actor(), world.employer.id, f.terms()).status == "applied"


def test_termination_refused_keeps_agreement(world: f.World) -> None:
    a = world.agreement_at("terminating")
    a = workflow.refuse_termination(world.student_actor(), a.id, "不同意")
    assert a.status == "completed" and a.live_student == world.student.id
    assert Termination.get(Termination.agreement == a.id).status == "refused"
    # the employer may ask again later
    assert workflow.initiate_termination(world.employer_actor, a.id, "再次协商").status == "terminating"


@pytest.mark.parametrize("status", ["applied", "awaiting_student", "awaiting_employer", "completed", "terminating"])
def test_school_cancels_any_live_agreement_with_reason(world: f.World, status: str) -> None:
    a = world.agreement_at(status)
    with pytest.raises(workflow.InvalidInput):
        workflow.cancel(world.school_actor, a.id, "wrong_info", "")
    with pytest.raises(workflow.InvalidInput):
        workflow.cancel(world.school_actor, a.id, "bogus", "原因")
    a = workflow.cancel(world.school_actor, a.id, "offline", "已线下签约")
    assert a.status == "cancelled" and a.live_student is None and "线下签约" in a.closed_reason
    if status == "terminating":
        assert Termination.get(Termination.agreement == a.id).status == "void"


@pytest.mark.parametrize("status", ["withdrawn", "rejected", "cancelled", "terminated"])
def test_final_states_stay_final(world: f.World, status: str) -> None:
    s = world.student_actor()
    if status in ("withdrawn", "rejected"):
        a = workflow.apply(s, world.employer.id, f.terms())
        a = workflow.withdraw(s, a.id) if status == "withdrawn" else workflow.reject(world.employer_actor, a.id, "满")
    elif status == "cancelled":
        a = workflow.cancel(world.school_actor, world.agreement_at("completed").id, "wrong_info", "错误")
    else:
        a = workflow.agree_termination(s, world.agreement_at("terminating").id)
    attempts = [
        lambda: workflow.withdraw(s, a.id),
        lambda: workflow.confirm(world.employer_actor, a.id),
        lambda: workflow.student_sign(s, a.id, f.SIGNATURE),
        lambda: workflow.employer_sign(world.employer_actor, a.id, world.employer_seal.id),
        lambda: workflow.initiate_termination(world.employer_actor, a.id, "x"),
        lambda: workflow.cancel(world.school_actor, a.id, "offline", "x"),
    ]
    for attempt in attempts:
        with pytest.raises(workflow.WrongState):
            attempt()
    assert Agreement.get_by_id(a.id).status == status


def test_permissions_by_role_ownership_and_scope(world: f.World) -> None:
    a = world.agreement_at("applied")
    other_student = Actor.student(f.make_student(world.school))
    other_employer = Actor.employer_user(f.make_employer_user())
    with pytest.raises(workflow.NotAllowed):
        workflow.withdraw(other_student, a.id)
    with pytest.raises(workflow.NotAllowed):
        workflow.confirm(other_employer, a.id)
    with pytest.raises(workflow.NotAllowed):
        workflow.confirm(world.student_actor(), a.id)
    inactive = f.make_employer_user(world.employer, active=False)
    with pytest.raises(workflow.NotAllowed):
        workflow.confirm(Actor.employer_user(inactive), a.id)
    with pytest.raises(workflow.NotAllowed):
        workflow.cancel(Actor.school_account(world.other_scope_account), a.id, "offline", "x")
    other_school = f.make_school_account(f.make_school())
    with pytest.raises(workflow.NotAllowed):
        workflow.cancel(Actor.school_account(other_school), a.id, "offline", "x")
    with pytest.raises(workflow.NotAllowed):
        workflow.school_auto_sign(a.id) if False else workflow.apply(world.employer_actor, world.employer.id, f.terms())
    with pytest.raises(workflow.NotFound):
        workflow.withdraw(world.student_actor(), 999999)
    # the scoped account of the student's branch/level may act
    assert workflow.cancel(Actor.school_account(world.scoped_account), a.id, "offline", "线下").status == "cancelled"
    assert [e.action for e in AgreementEvent.chain(a.id)] == ["apply", "cancel"]


def test_apply_checks_employer_and_roster(world: f.World) -> None:
    pending = f.make_employer(review_status="pending")
    with pytest.raises(workflow.WrongState, match="审核"):
        workflow.apply(world.student_actor(), pending.id, f.terms())
    with pytest.raises(workflow.NotFound):
        workflow.apply(world.student_actor(), 424242, f.terms())
    gone = f.make_student(world.school, on_roster=False)
    with pytest.raises(workflow.NotAllowed):
        workflow.apply(Actor.student(gone), world.employer.id, f.terms())
    assert Agreement.select().count() == 0 and AgreementEvent.select().count() == 0


@pytest.mark.parametrize("bad, field", [
    ({"position": ""}, "position"), ({"work_location": "x" * 101}, "work_location"),
    ({"monthly_salary_fen": 0}, "monthly_salary_fen"), ({"probation_months": 7}, "probation_months"),
    ({"probation_months": 3, "internship_period": "6个月"}, "internship_period"),
    ({"contract_years": 0}, "contract_years"), ({"liquidated_damages_fen": -1}, "liquidated_damages_fen"),
    ({"remarks": "长" * 2001}, "remarks"),
])
def test_terms_are_validated(world: f.World, bad: dict, field: str) -> None:
    with pytest.raises(workflow.InvalidInput) as err:
        workflow.apply(world.student_actor(), world.employer.id, f.terms(**bad))
    assert field in err.value.fields
    assert Agreement.select().count() == 0


def test_confirm_rejects_unknown_employer_fields(world: f.World) -> None:
    a = world.agreement_at("applied")
    with pytest.raises(workflow.InvalidInput):
        workflow.confirm(world.employer_actor, a.id, employer_details={"credit_code": "X"})
    with pytest.raises(workflow.InvalidInput):
        workflow.confirm(world.employer_actor, a.id, employer_details={"affiliation_code": "77"})
    assert Agreement.get_by_id(a.id).status == "applied"


def test_stale_version_is_a_conflict(world: f.World) -> None:
    a = world.agreement_at("applied")
    workflow.confirm(world.employer_actor, a.id, expected_version=a.version)
    with pytest.raises(workflow.Conflict, match="刷新"):
        workflow.withdraw(world.student_actor(), a.id, expected_version=a.version)


def test_employer_must_sign_with_its_own_active_seal(world: f.World) -> None:
    a = world.agreement_at("awaiting_employer")
    foreign = f.make_seal(employer=f.make_employer())
    with pytest.raises(workflow.InvalidInput):
        workflow.employer_sign(world.employer_actor, a.id, foreign.id)
    world.employer_seal.active = False
    world.employer_seal.save()
    with pytest.raises(workflow.InvalidInput):
        workflow.employer_sign(world.employer_actor, a.id, world.employer_seal.id)
    assert Agreement.get_by_id(a.id).status == "awaiting_employer"


def test_signature_image_must_be_png(world: f.World) -> None:
    a = world.agreement_at("awaiting_student")
    with pytest.raises(workflow.InvalidInput):
        workflow.student_sign(world.student_actor(), a.id, b"GIF89a not a png")
    assert Agreement.get_by_id(a.id).status == "awaiting_student"
    assert models.AgreementSignature.select().count() == 0


def test_deadlines_expire_pending_steps(world: f.World) -> None:
    applied = world.agreement_at("applied")
    s2 = f.make_student(world.school)
    waiting = world.agreement_at("awaiting_employer", s2)
    s3 = f.make_student(world.school)
    term = world.agreement_at("terminating", s3)
    assert workflow.expire_overdue() == []
    later = models.utcnow() + dt.timedelta(days=5, seconds=1)
    assert sorted(workflow.expire_overdue(later)) == sorted([applied.id, waiting.id, term.id])
    assert Agreement.get_by_id(applied.id).status == "expired"
    assert Agreement.get_by_id(waiting.id).status == "expired"
    assert Agreement.get_by_id(term.id).status == "completed"
    assert Termination.get(Termination.agreement == term.id).status == "expired"
    assert workflow.expire_overdue(later) == []
    # an expired application frees the student
    assert workflow.apply(world.student_actor(), world.employer.id, f.terms()).status == "applied"


def test_configured_deadlines(app, world: f.World) -> None:  # type: ignore[no-untyped-def]
    from settings import WorkflowSettings

    workflow.configure(WorkflowSettings(application_days=2), image_loader=workflow._config.image_loader)
    a = world.agreement_at("applied")
    assert (a.deadline_at - a.created_at).days == 2
    assert workflow.expire_overdue(models.utcnow() + dt.timedelta(days=2, seconds=1)) == [a.id]


def test_audit_chain_detects_tampering(world: f.World) -> None:
    a = world.agreement_at("completed")
    assert AgreementEvent.verify_chain(a.id) is None
    ev = AgreementEvent.get((AgreementEvent.agreement == a.id) & (AgreementEvent.seq == 2))
    AgreementEvent.update(actor_name="冒名者").where(AgreementEvent.id == ev.id).execute()
    assert "altered" in AgreementEvent.verify_chain(a.id)
    AgreementEvent.update(actor_name=ev.actor_name).where(AgreementEvent.id == ev.id).execute()
    assert AgreementEvent.verify_chain(a.id) is None
    AgreementEvent.delete().where(AgreementEvent.id == ev.id).execute()
    assert "missing" in AgreementEvent.verify_chain(a.id)


def test_events_record_actor_ip_and_details(world: f.World) -> None:
    a = world.agreement_at("applied")
    a = workflow.reject(Actor.employer_user(world.user, "203.0.113.9"), a.id, "岗位已满")
    ev = AgreementEvent.chain(a.id)[-1]
    assert (ev.action, ev.actor_type, ev.actor_id, ev.ip, ev.details) == (
        "reject", "employer", world.user.id, "203.0.113.9", {"reason": "岗位已满"})
    assert (ev.from_status, ev.to_status) == ("applied", "rejected")


def test_rare_characters_survive_every_backend(world: f.World) -> None:
    s = f.make_student(world.school, name="罗𠇔䶮")
    a = world.agreement_at("applied", s)
    assert Agreement.get_by_id(a.id).student_name == "罗𠇔䶮"
    assert AgreementEvent.verify_chain(a.id) is None


def test_deleting_the_last_events_breaks_the_chain(world: f.World) -> None:
    """Review finding: the termination's events deleted and the row set back to completed left a
    chain that linked perfectly, and `tripact audit verify` passed it."""
    a = world.agreement_at("terminating")
    a = workflow.agree_termination(world.student_actor(), a.id)
    assert AgreementEvent.verify_chain(a.id) is None
    last_two = [e.id for e in AgreementEvent.chain(a.id)[-2:]]
    AgreementEvent.delete().where(AgreementEvent.id.in_(last_two)).execute()
    assert "missing at its end" in (AgreementEvent.verify_chain(a.id) or "")
    Agreement.update(status="completed").where(Agreement.id == a.id).execute()
    assert "missing at its end" in (AgreementEvent.verify_chain(a.id) or "")
    # (a forger who also winds the version back is not caught: that needs the chain heads anchored
    # outside the database)


@pytest.mark.parametrize("status,act", [
    ("applied", lambda w, a: workflow.confirm(w.employer_actor, a.id)),
    ("awaiting_student", lambda w, a: workflow.student_sign(w.student_actor(), a.id, f.SIGNATURE)),
    ("awaiting_employer", lambda w, a: workflow.employer_sign(w.employer_actor, a.id, w.employer_seal.id)),
    ("terminating", lambda w, a: workflow.agree_termination(w.student_actor(), a.id)),
])
def test_a_party_cannot_act_after_its_deadline(world: f.World, status: str, act) -> None:  # type: ignore[no-untyped-def]
    """Review finding: deadlines were enforced only by the periodic expiry run (every few minutes,
    or never while the scheduler is down)."""
    a = world.agreement_at(status)
    Agreement.update(deadline_at=models.utcnow() - dt.timedelta(minutes=1)).where(Agreement.id == a.id).execute()
    with pytest.raises(workflow.WrongState, match="期限已过"):
        act(world, a)
    assert Agreement.get_by_id(a.id).status == status
    assert workflow.expire_overdue() == [a.id]  # the system still can
