"""The durable outbox: claims, retries with back-off, dead letters and skips."""
from __future__ import annotations

import datetime as dt

import jobs
from models import OutboxJob, utcnow


def test_retry_with_backoff_then_dead(app) -> None:  # type: ignore[no-untyped-def]
    calls = []

    @jobs.handler("test_flaky")
    def flaky(job: OutboxJob) -> str:
        calls.append(job.attempts)
        raise ConnectionError("upstream down")

    job = OutboxJob.create(kind="test_flaky", payload={})
    now = utcnow()
    assert jobs.run_due(now=now) == 1
    j = OutboxJob.get_by_id(job.id)
    assert j.status == "pending" and j.attempts == 1 and "upstream down" in j.last_error
    assert j.run_after == now + dt.timedelta(seconds=10)
    assert jobs.run_due(now=now) == 0  # not due yet
    t = now
    for attempt in range(2, jobs.MAX_ATTEMPTS + 1):
        t = t + jobs.backoff(attempt - 1) + dt.timedelta(seconds=1)
        assert jobs.run_due(now=t) == 1
    assert OutboxJob.get_by_id(job.id).status == "dead"
    assert calls == list(range(1, jobs.MAX_ATTEMPTS + 1))


def test_skip_is_recorded_not_retried(app) -> None:  # type: ignore[no-untyped-def]
    @jobs.handler("test_skip")
    def skip(job: OutboxJob) -> str:
        raise jobs.Skip("nobody to tell")

    job = OutboxJob.create(kind="test_skip", payload={})
    jobs.drain()
    j = OutboxJob.get_by_id(job.id)
    assert j.status == "done" and j.last_error == "skipped: nobody to tell"


def test_unknown_kind_is_skipped(app) -> None:  # type: ignore[no-untyped-def]
    job = OutboxJob.create(kind="no_such_kind", payload={})
    jobs.drain()
    assert "no handler" in OutboxJob.get_by_id(job.id).last_error


def test_a_claimed_job_is_not_taken_twice_until_its_claim_expires(app) -> None:  # type: ignore[no-untyped-def]
    job = OutboxJob.create(kind="no_such_kind", payload={})
    now = utcnow()
    assert jobs._claim(job.id, now)
    assert not jobs._claim(job.id, now)
    assert jobs._claim(job.id, now + dt.timedelta(seconds=jobs.CLAIM_SECONDS + 1))


def test_backoff_is_capped() -> None:
    assert jobs.backoff(1) == dt.timedelta(seconds=10)
    assert jobs.backoff(3) == dt.timedelta(seconds=40)
    assert jobs.backoff(30) == dt.timedelta(hours=1)


def test_run_due_can_take_some_kinds_only(app) -> None:  # type: ignore[no-untyped-def]
    done: list[str] = []

    @jobs.handler("test_local")
    def _local(job: OutboxJob) -> str:
        done.append(job.kind)
        return "ok"

    local = OutboxJob.create(kind="test_local", payload={})
    other = OutboxJob.create(kind="test_elsewhere", payload={})
    assert jobs.drain(kinds=("test_local",)) == 1
    assert done == ["test_local"]
    assert OutboxJob.get_by_id(local.id).status == "done"
    assert OutboxJob.get_by_id(other.id).status == "pending" and OutboxJob.get_by_id(other.id).attempts == 0


def test_each_job_is_claimed_with_the_clock_of_its_own_moment(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Review finding: a batch took one `now` for every claim, so after minutes of earlier jobs the
    later ones were claimed with a lock that had already run out – and another runner ran them too."""
    clock = [utcnow()]
    monkeypatch.setattr(jobs, "utcnow", lambda: clock[0])
    claims: dict[int, dt.datetime] = {}

    @jobs.handler("test_slow")
    def slow(job: OutboxJob) -> str:
        claims[job.id] = job.locked_until
        clock[0] += dt.timedelta(seconds=jobs.CLAIM_SECONDS + 60)  # this job took three minutes
        return "ok"

    first, second = (OutboxJob.create(kind="test_slow", payload={}, run_after=clock[0] - dt.timedelta(seconds=1))
                     for _ in range(2))
    assert jobs.run_due() == 2
    assert claims[second.id] - claims[first.id] >= dt.timedelta(seconds=jobs.CLAIM_SECONDS + 60)
    assert {j.status for j in OutboxJob.select()} == {"done"}


def test_a_runner_whose_claim_was_taken_over_does_not_record_an_outcome(app) -> None:  # type: ignore[no-untyped-def]
    @jobs.handler("test_overrun")
    def overrun(job: OutboxJob) -> str:
        # meanwhile the claim ran out and another runner claimed the job (a new lock)
        OutboxJob.update(locked_until=utcnow() + dt.timedelta(hours=1)).where(OutboxJob.id == job.id).execute()
        raise ConnectionError("this runner's failure must not reset the other runner's claim")

    job = OutboxJob.create(kind="test_overrun", payload={})
    assert jobs.run_due() == 1
    j = OutboxJob.get_by_id(job.id)
    assert j.status == "running" and j.last_error in ("", None)


def test_a_school_signature_that_keeps_failing_sends_the_agreement_to_review(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Review finding: once its job died, the agreement waited in awaiting_school for ever."""
    import workflow
    from models import Agreement, AgreementEvent
    from tests import factories

    world = factories.World()
    a = world.agreement_at("awaiting_school")
    job = OutboxJob.get((OutboxJob.kind == "school_auto_sign") & (OutboxJob.status == "pending"))
    OutboxJob.update(attempts=jobs.MAX_ATTEMPTS - 1).where(OutboxJob.id == job.id).execute()

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise workflow.SigningUnavailable("签署服务暂时不可用，请稍后重试")

    monkeypatch.setattr(workflow.signing_steps, "school_auto_sign", broken)
    monkeypatch.setattr(workflow, "school_auto_sign", broken)
    jobs.run_due(kinds=("school_auto_sign",))
    assert OutboxJob.get_by_id(job.id).status == "dead"
    a = Agreement.get_by_id(a.id)
    assert a.status == "school_review"
    last = AgreementEvent.chain(a.id)[-1]
    assert last.action == "school_review" and "学校自动签署失败" in last.details["blockers"][0]


def test_a_batch_stops_when_the_scheduler_loses_its_lease(app) -> None:  # type: ignore[no-untyped-def]
    """Review finding: the lease was taken at the start of a tick and never renewed, so a second
    scheduler could take it over during a long batch and run the same outbox at the same time."""
    import models

    done: list[int] = []

    @jobs.handler("test_batch")
    def work(job: OutboxJob) -> str:
        done.append(job.id)
        if len(done) == 2:  # meanwhile another scheduler took the lease (this one stalled)
            models.Lease.update(holder="other", expires_at=utcnow() + dt.timedelta(minutes=5)).execute()
        return "ok"

    for _ in range(4):
        OutboxJob.create(kind="test_batch", payload={})
    assert models.Lease.acquire("scheduler", "me", 30)
    assert jobs.run_due(keep_going=lambda: models.Lease.acquire("scheduler", "me", 30)) == 2
    assert len(done) == 2 and OutboxJob.select().where(OutboxJob.status == "pending").count() == 2
