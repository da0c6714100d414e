"""Tables of the WeChat pages: failed attempts at secrets (roster match, ID confirmation, signing PIN).

Throttling lives in the database so that every worker process sees the same count.
"""
from __future__ import annotations

import datetime as dt

import peewee as pw

import models
from models import utcnow

WINDOW = dt.timedelta(minutes=15)
LIMITS = {
    "bind": 5,          # roster matches per openid
    "bind_target": 10,  # roster matches against one (school, student number), from any openid
    "sign_id": 5,       # re-entering the last six ID characters before signing, per openid
    "sign_pin": 5,      # employer signing PIN, per openid
    "staff_code": 10,   # one-time staff binding codes, per openid
}


class PageAttempt(models.BaseModel):
    """One failed attempt of some ``kind`` by ``key`` (an openid, or a roster key)."""

    kind = pw.CharField(max_length=16)
    key = pw.CharField(max_length=128)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "wechat_page_attempt"
        indexes = ((("kind", "key", "created_at"), False),)


def throttled(kind: str, key: str, now: dt.datetime | None = None) -> bool:
    """Take one attempt of ``kind`` for ``key``; True when it goes over the limit of the window.

    The attempt is written before it is counted, so that many concurrent requests cannot all pass
    the check before any of them records its failure. A success clears the attempts
    (:func:`clear_failures`)."""
    now = now or utcnow()
    key = key[:128]
    mine = PageAttempt.create(kind=kind, key=key, created_at=now)
    # attempts up to and including this one, in the order they were taken
    count = (PageAttempt.select()
             .where((PageAttempt.kind == kind) & (PageAttempt.key == key) & (PageAttempt.created_at > now - WINDOW)
                    & (PageAttempt.id <= mine.id))
             .count())
    return count > LIMITS[kind]


def record_failure(kind: str, key: str) -> None:
    """A failed attempt (already counted by :func:`throttled`); forget attempts older than a day."""
    PageAttempt.delete().where(PageAttempt.created_at < utcnow() - dt.timedelta(days=1)).execute()


def clear_failures(kind: str, key: str) -> None:
    """Forget the failures of ``key`` after a success."""
    PageAttempt.delete().where((PageAttempt.kind == kind) & (PageAttempt.key == key)).execute()


models.register_models(PageAttempt)

__all__ = ["PageAttempt", "throttled", "record_failure", "clear_failures", "LIMITS", "WINDOW"]
