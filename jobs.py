"""Durable outbox of deferred work and the periodic jobs that drain it.

Workflow transitions write ``OutboxJob`` rows in their own transaction; nothing is lost when a
process dies and nothing is sent for a change that rolled back. ``run_due`` claims due jobs one by
one (a claim is a conditional UPDATE, so two runners never take the same job), runs the handler
registered for the job's kind and records the outcome, retrying failures with exponential back-off.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import models
import workflow
from models import OutboxJob, utcnow
from redaction import redact

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
CLAIM_SECONDS = 120

Handler = Callable[[OutboxJob], str | None]
_handlers: dict[str, Handler] = {}
_on_dead: dict[str, Callable[[OutboxJob, str], None]] = {}


class Skip(Exception):
    """Raised by a handler when a job cannot and need not be retried (recorded, not retried)."""


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that runs jobs of ``kind`` (a later registration replaces an earlier one)."""
    def wrap(fn: Handler) -> Handler:
        _handlers[kind] = fn
        return fn
    return wrap


def on_dead(kind: str) -> Callable[[Callable[[OutboxJob, str], None]], Callable[[OutboxJob, str], None]]:
    """Register what to do when a job of ``kind`` has failed for the last time (``fn(job, error)``):
    a job nobody will retry must not leave its agreement waiting for it."""
    def wrap(fn: Callable[[OutboxJob, str], None]) -> Callable[[OutboxJob, str], None]:
        _on_dead[kind] = fn
        return fn
    return wrap


def backoff(attempts: int) -> dt.timedelta:
    """Delay before retry number ``attempts``: 10 s, 20 s, 40 s ... capped at one hour."""
    return dt.timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 3600))


def _claim(job_id: int, now: dt.datetime) -> bool:
    return OutboxJob.update(status="running", locked_until=now + dt.timedelta(seconds=CLAIM_SECONDS),
                            attempts=OutboxJob.attempts + 1).where(
        (OutboxJob.id == job_id)
        & ((OutboxJob.status == "pending") | ((OutboxJob.status == "running") & (OutboxJob.locked_until < now)))
    ).execute() == 1


def run_job(job: OutboxJob) -> None:
    """Run one claimed job and record its outcome – only while the claim is still this runner's: a
    job that outlived its claim may have been taken by another runner, whose outcome stands."""
    fn = _handlers.get(job.kind)
    mine = (OutboxJob.id == job.id) & (OutboxJob.status == "running") & (OutboxJob.locked_until == job.locked_until)

    def record(**values: object) -> bool:
        if OutboxJob.update(**values).where(mine).execute() == 1:
            return True
        log.warning("job %s (%s): its claim expired while it ran; outcome not recorded", job.id, job.kind)
        return False

    try:
        if fn is None:
            raise Skip(f"no handler for job kind {job.kind!r}")
        note = fn(job) or ""
        record(status="done", finished_at=utcnow(), last_error=note[:2000])
    except Skip as exc:
        log.info("job %s (%s) skipped: %s", job.id, job.kind, exc)
        record(status="done", finished_at=utcnow(), last_error=f"skipped: {exc}"[:2000])
    except Exception as exc:  # noqa: BLE001 - any failure is retried later, with the error kept
        attempts = job.attempts
        dead = attempts >= MAX_ATTEMPTS
        now = utcnow()
        error = redact(f"{type(exc).__name__}: {exc}")[:2000]
        log.warning("job %s (%s) attempt %s failed: %s", job.id, job.kind, attempts, exc, exc_info=not dead)
        recorded = record(status="dead" if dead else "pending", run_after=now + backoff(attempts),
                          last_error=error, finished_at=now if dead else None)
        if dead and recorded and job.kind in _on_dead:
            try:
                _on_dead[job.kind](job, error)
            except Exception:  # noqa: BLE001 - the job is dead either way; say so loudly
                log.exception("job %s (%s): its dead-letter step failed", job.id, job.kind)


def run_due(limit: int = 100, now: dt.datetime | None = None, kinds: tuple[str, ...] | None = None,
            keep_going: Callable[[], bool] | None = None) -> int:
    """Run up to ``limit`` due jobs (of ``kinds`` only, when given); return how many ran. Safe to call
    from several processes. ``keep_going`` is asked before each job (the scheduler renews its lease
    there); False ends the batch."""
    fixed_now = now
    now = now or utcnow()
    query = OutboxJob.select().where(
        ((OutboxJob.status == "pending") & (OutboxJob.run_after <= now))
        | ((OutboxJob.status == "running") & (OutboxJob.locked_until < now))
    )
    if kinds is not None:
        query = query.where(OutboxJob.kind.in_(list(kinds)))
    due = list(query.order_by(OutboxJob.run_after, OutboxJob.id).limit(limit))
    ran = 0
    for job in due:
        if keep_going is not None and not keep_going():
            log.info("outbox batch stopped after %d jobs: the scheduler lease was lost", ran)
            break
        # each claim from the clock of its own moment: a batch whose earlier jobs took minutes must
        # not claim later ones with a lock that has already run out
        if not _claim(job.id, fixed_now or utcnow()):
            continue  # another runner took it
        job = OutboxJob.get_by_id(job.id)
        run_job(job)
        ran += 1
    return ran


def drain(max_rounds: int = 20, kinds: tuple[str, ...] | None = None) -> int:
    """Run jobs (of ``kinds`` only, when given) until none is due – jobs may queue more jobs; for the
    CLI, demo and tests."""
    total = 0
    for _ in range(max_rounds):
        n = run_due(kinds=kinds)
        total += n
        if n == 0:
            break
    return total


@on_dead("school_auto_sign")
def _school_auto_sign_gave_up(job: OutboxJob, error: str) -> None:
    """The school's signature failed every retry (keys, store, timestamp service): the agreement goes
    to the school's review queue, where staff sign it once the cause is fixed."""
    try:
        workflow.school_auto_sign_failed(job.payload["agreement_id"], error)
    except (workflow.WrongState, workflow.Conflict, workflow.NotFound):
        pass  # someone moved it meanwhile


@handler("school_auto_sign")
def _school_auto_sign(job: OutboxJob) -> str | None:
    try:
        a = workflow.school_auto_sign(job.payload["agreement_id"])
    except (workflow.WrongState, workflow.Conflict, workflow.NotFound) as exc:
        raise Skip(str(exc)) from exc
    return f"-> {a.status}"


@handler("notify")
def _notify_unrouted(job: OutboxJob) -> str | None:
    """Fallback until a push channel (wechat_bot.push) registers itself: record that nothing was sent."""
    raise Skip("no push channel configured")


# ---------------------------------------------------------------- periodic jobs

def periodic_tick(what: str, keep_going: Callable[[], bool] | None = None) -> None:
    """One run of a periodic duty with its own database connection."""
    with models.db.connection_context():
        if what == "outbox":
            run_due(keep_going=keep_going)
        elif what == "expiry":
            expired = workflow.expire_overdue()
            if expired:
                log.info("expired %d agreements", len(expired))


def start_scheduler(outbox_seconds: float, expiry_seconds: float, lease: bool = False) -> Any:
    """Start an APScheduler BackgroundScheduler running the outbox and expiry duties.

    With ``lease`` each tick first takes the database lease, so that of several `tripact scheduler`
    processes only one works at a time and another takes over when it dies."""
    from apscheduler.schedulers.background import BackgroundScheduler

    holder = f"{socket.gethostname()}:{os.getpid()}"
    lease_seconds = int(max(outbox_seconds, 5) * 3)

    def holds_lease() -> bool:  # takes or renews it
        return bool(models.Lease.acquire("scheduler", holder, lease_seconds))

    def tick(what: str) -> None:
        try:
            if lease:
                with models.db.connection_context():
                    if not holds_lease():
                        return
            # renewed before each job: a long batch must not let a second scheduler take over mid-way
            periodic_tick(what, holds_lease if lease else None)
        except Exception:  # noqa: BLE001 - a failed tick is logged and retried next interval
            log.exception("periodic %s failed", what)

    sched = BackgroundScheduler(timezone="UTC")
    sched.add_job(tick, "interval", args=["outbox"], seconds=outbox_seconds, max_instances=1, coalesce=True)
    sched.add_job(tick, "interval", args=["expiry"], seconds=expiry_seconds, max_instances=1, coalesce=True)
    sched.start()
    return sched
