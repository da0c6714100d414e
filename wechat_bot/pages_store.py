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
    """Whether ``key`` has used up its failed attempts of ``kind`` in the current window."""
    since = (now or utcnow()) - WINDOW
    count = (PageAttempt.select()
             .where((PageAttempt.kind == kind) & (PageAttempt.key == key) & (PageAttempt.created_at > since))
             .count())
    return count >= LIMITS[kind]


def record_failure(kind: str, key: str) -> None:
    """Count one failed attempt (and forget attempts older than a day, so the table stays small)."""
    PageAttempt.create(kind=kind, key=key[:128])
    PageAttempt.delete().where(PageAttempt.created_at < utcnow() - dt.timedelta(days=1)).execute()


def clear_failures(kind: str, key: str) -> None:
    """Forget the failures of ``key`` after a success."""
    PageAttempt.delete().where((PageAttempt.kind == kind) & (PageAttempt.key == key)).execute()


models.register_models(PageAttempt)

__all__ = ["PageAttempt", "throttled", "record_failure", "clear_failures", "LIMITS", "WINDOW"]
