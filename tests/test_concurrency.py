"""Conflicting transitions started at the same moment from several threads (each with its own database
connection): the database decides, exactly one wins and the others get a clear error.

Each party acts on the version of the agreement it was shown (``expected_version``), as the pages do;
without it, a cancellation after a termination request is simply the next legal step."""
from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import models
import workflow
from models import Agreement, AgreementEvent
from tests import factories as f
from workflow import Actor

ROUNDS = 6


@pytest.fixture
def db_url(any_db: str) -> str:
    return any_db


def race(*calls: Callable[[], object]) -> tuple[list[object], list[Exception]]:
    """Run the calls in threads released together; return (results, errors)."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def run(call: Callable[[], object]) -> None:
        with models.db.connection_context():
            barrier.wait()
            try:
                out = call()
                with lock:
                    results.append(out)
            except Exception as exc:  # noqa: BLE001 - collected and asserted on
                with lock:
                    errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def assert_one_winner(results: list[object], errors: list[Exception], n: int) -> None:
    assert len(results) == 1, (results, errors)
    assert len(errors) == n - 1
    for e in errors:
        assert isinstance(e, (workflow.Conflict, workflow.WrongState)), repr(e)
        assert e.message


def test_two_tabs_confirming_the_same_application(app) -> None:  # type: ignore[no-untyped-def]
    world = f.World()
    for _ in range(ROUNDS):
        student = f.make_student(world.school)
        a = world.agreement_at("applied", student)
        results, errors = race(*[lambda: workflow.confirm(world.employer_actor, a.id, expected_version=a.version)
                                 for _ in range(3)])
        assert_one_winner(results, errors, 3)
        assert all(isinstance(e, workflow.Conflict) for e in errors)
        assert Agreement.get_by_id(a.id).status == "awaiting_student"
        assert [e.action for e in AgreementEvent.chain(a.id)] == ["apply", "confirm"]


def test_termination_against_cancellation(app) -> None:  # type: ignore[no-untyped-def]
    world = f.World()
    for _ in range(ROUNDS):
        student = f.make_student(world.school)
        a = world.agreement_at("completed", student)
        results, errors = race(
            lambda: workflow.initiate_termination(world.employer_actor, a.id, "调整", a.version),
            lambda: workflow.cancel(world.school_actor, a.id, "wrong_info", "信息错误", a.version))
        assert_one_winner(results, errors, 2)
        final = Agreement.get_by_id(a.id)
        assert final.status in ("terminating", "cancelled")
        assert AgreementEvent.verify_chain(a.id) is None
        assert len(AgreementEvent.chain(a.id)) == 6


def test_student_signing_while_school_cancels(app) -> None:  # type: ignore[no-untyped-def]
    world = f.World()
    for _ in range(ROUNDS):
        student = f.make_student(world.school)
        a = world.agreement_at("awaiting_student", student)
        results, errors = race(
            lambda: workflow.student_sign(Actor.student(student), a.id, f.SIGNATURE, a.version),
            lambda: workflow.cancel(world.school_actor, a.id, "offline", "线下签约", a.version))
        assert_one_winner(results, errors, 2)
        signatures = models.AgreementSignature.select().where(models.AgreementSignature.agreement == a.id).count()
        assert signatures == (1 if Agreement.get_by_id(a.id).status == "awaiting_school" else 0)


def test_one_student_applying_twice_at_once(app) -> None:  # type: ignore[no-untyped-def]
    world = f.World()
    other = f.make_employer()
    for _ in range(ROUNDS):
        student = f.make_student(world.school)
        s = Actor.student(student)
        results, errors = race(lambda: workflow.apply(s, world.employer.id, f.terms()),
                               lambda: workflow.apply(s, other.id, f.terms()))
        assert_one_winner(results, errors, 2)
        assert Agreement.select().where(Agreement.student == student.id).count() == 1
