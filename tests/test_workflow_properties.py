"""Property-based tests: random sequences of actions by random actors, invariants checked after each.

Invariants: at most one live agreement per student (also enforced by a unique index), final states
never change, every event chain verifies, every outbox entry belongs to a committed event, and an
action that fails changes nothing.

Actions are mostly taken by the party whose turn it is (plus an ``advance`` rule), so that runs really
reach signing, completion and termination; the test asserts which statuses were reached, so it cannot
pass vacuously. The runs are derandomized: the same sequences on every machine, failures reproducible.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

import jobs
import models
import workflow
from models import Agreement, AgreementEvent, OutboxJob
from tests import factories as f
from tests.conftest import clean_tables
from workflow import Actor

EXAMPLES = {"sqlite": 60, "postgres": 25, "mysql": 20}
SEEN: set[str] = set()  # statuses the random runs reached (checked after the run: no vacuous pass)


def _snapshot() -> tuple:
    return (tuple((a.id, a.status, a.version) for a in Agreement.select().order_by(Agreement.id)),
            AgreementEvent.select().count(), OutboxJob.select().count())


class AgreementMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        clean_tables()
        self.world = f.World()
        self.students = [self.world.student, f.make_student(self.world.school),
                         f.make_student(self.world.school, branch_code="01")]
        self.other_employer_user = f.make_employer_user()
        self.final_seen: dict[int, str] = {}

    def actors(self) -> list[Actor]:
        w = self.world
        return ([Actor.student(s) for s in self.students]
                + [w.employer_actor, Actor.employer_user(self.other_employer_user),
                   Actor.school_account(w.admin_account), Actor.school_account(w.other_scope_account)])

    def _rightful(self, action: str, a: Agreement) -> Actor:
        if action in ("withdraw", "student_sign", "agree_termination", "refuse_termination"):
            return Actor.student(models.Student.get_by_id(a.student_id))
        if action in ("confirm", "reject", "employer_sign", "initiate_termination"):
            return self.world.employer_actor
        return Actor.school_account(self.world.admin_account)

    def _attempt(self, fn) -> None:  # type: ignore[no-untyped-def]
        before = _snapshot()
        try:
            fn()
        except workflow.WorkflowError:
            assert _snapshot() == before, "a refused action changed something"

    @rule(who=st.integers(0, 2))
    def apply(self, who: int) -> None:
        self._attempt(lambda: workflow.apply(Actor.student(self.students[who]), self.world.employer.id, f.terms()))

    @rule(action=st.sampled_from(["withdraw", "confirm", "reject", "student_sign", "employer_sign",
                                  "initiate_termination", "agree_termination", "refuse_termination",
                                  "cancel", "school_approve", "school_return"]),
          who=st.integers(0, 9), pick=st.integers(0, 50), stale=st.integers(0, 5))
    def act(self, action: str, who: int, pick: int, stale: int) -> None:
        ids = [a.id for a in Agreement.select(Agreement.id).order_by(Agreement.id)]
        if not ids:
            return
        a = Agreement.get_by_id(ids[pick % len(ids)])
        # mostly the party the action belongs to (so that agreements really move along), sometimes
        # anyone else (who must be refused)
        actor = self._rightful(action, a) if who < 7 else self.actors()[who - 3]
        stale = stale == 0
        self._attempt(self._call(action, actor, a, a.version - 1 if stale else a.version))

    # the step that moves an agreement on, by the party whose turn it is
    NEXT = {"applied": "confirm", "awaiting_student": "student_sign", "school_review": "school_approve",
            "awaiting_employer": "employer_sign", "completed": "initiate_termination",
            "terminating": "agree_termination"}

    @rule(pick=st.integers(0, 50))
    def advance(self, pick: int) -> None:
        ids = [a.id for a in Agreement.select(Agreement.id).order_by(Agreement.id)]
        if not ids:
            return
        a = Agreement.get_by_id(ids[pick % len(ids)])
        action = self.NEXT.get(a.status)
        if action:
            self._attempt(self._call(action, self._rightful(action, a), a, a.version))

    def _call(self, action: str, actor: Actor, a: Agreement, version: int):  # type: ignore[no-untyped-def]
        w = self.world
        calls = {
            "withdraw": lambda: workflow.withdraw(actor, a.id, version),
            "confirm": lambda: workflow.confirm(actor, a.id, expected_version=version),
            "reject": lambda: workflow.reject(actor, a.id, "不合适", version),
            "student_sign": lambda: workflow.student_sign(actor, a.id, f.SIGNATURE, version),
            "employer_sign": lambda: workflow.employer_sign(actor, a.id, w.employer_seal.id, version),
            "initiate_termination": lambda: workflow.initiate_termination(actor, a.id, "调整", version),
            "agree_termination": lambda: workflow.agree_termination(actor, a.id, version),
            "refuse_termination": lambda: workflow.refuse_termination(actor, a.id, "", version),
            "cancel": lambda: workflow.cancel(actor, a.id, "offline", "线下", version),
            "school_approve": lambda: workflow.school_approve(actor, a.id, version),
            "school_return": lambda: workflow.school_return(actor, a.id, "退回", version),
        }
        return calls[action]

    @rule()
    def run_jobs(self) -> None:
        jobs.drain()

    @rule(days=st.sampled_from([0, 1, 2, 6]))
    def time_passes(self, days: int) -> None:
        import datetime as dt

        workflow.expire_overdue(models.utcnow() + dt.timedelta(days=days))

    @invariant()
    def one_live_agreement_per_student(self) -> None:
        if not hasattr(self, "world"):
            return
        for s in self.students:
            live = Agreement.select().where((Agreement.student == s.id) & Agreement.status.in_(list(workflow.LIVE)))
            assert live.count() <= 1
        for a in Agreement.select():
            assert (a.live_student is not None) == (a.status in workflow.LIVE)

    @invariant()
    def final_states_stay_final(self) -> None:
        if not hasattr(self, "world"):
            return
        for a in Agreement.select():
            SEEN.add(a.status)
            if a.id in self.final_seen:
                assert a.status == self.final_seen[a.id]
            if a.status in workflow.FINAL:
                self.final_seen[a.id] = a.status

    @invariant()
    def chains_verify_and_outbox_belongs_to_events(self) -> None:
        if not hasattr(self, "world"):
            return
        for a in Agreement.select(Agreement.id):
            assert AgreementEvent.verify_chain(a.id) is None
        orphans = (OutboxJob.select().join(AgreementEvent, on=(OutboxJob.event == AgreementEvent.id),
                                           join_type=models.pw.JOIN.LEFT_OUTER)
                   .where(AgreementEvent.id.is_null()))
        assert orphans.count() == 0


@pytest.fixture
def db_url(any_db: str) -> str:
    return any_db


def test_random_action_sequences_keep_invariants(app, any_db: str) -> None:  # type: ignore[no-untyped-def]
    backend = "sqlite" if any_db.startswith("sqlite") else "postgres" if any_db.startswith("postgres") else "mysql"
    SEEN.clear()
    run_state_machine_as_test(AgreementMachine, settings=settings(
        max_examples=EXAMPLES[backend], stateful_step_count=40, deadline=None,
        suppress_health_check=list(HealthCheck), database=None, derandomize=True))
    # the random runs must really have moved agreements through the life cycle
    assert {"applied", "awaiting_student", "awaiting_employer", "completed", "terminating"} <= SEEN, SEEN
