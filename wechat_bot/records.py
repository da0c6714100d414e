"""Tables of the WeChat bot: message de-duplication, push results and WeChat's delivery reports,
subscriptions, staff-binding codes and employer invitation codes. Registered with
:func:`models.register_models` at import so that ``tripact db upgrade`` creates them.

Queries live here, on the models; the bot's wording lives in ``texts.py``.
"""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import peewee as pw

import models
from models import EmployerUser, WechatBinding, utcnow

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Letters and digits that cannot be mistaken for each other (codes may be typed by hand)."""


def new_code(length: int = 16) -> str:
    """A random code from :data:`CODE_ALPHABET` (16 characters = 80 bits)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


class WechatMessageSeen(models.BaseModel):
    """One incoming WeChat message (key: ``msg:<MsgId>`` or ``evt:<openid>:<CreateTime>:<event>``).

    Inserting the key is the claim: the unique index lets exactly one of several concurrent retries
    (in any worker process) process the message. ``reply`` caches the plain reply XML so that a later
    retry gets the same answer."""

    key = pw.CharField(max_length=191, unique=True)
    reply = pw.TextField(default="")
    created_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "wechat_message_seen"

    @classmethod
    def claim(cls, key: str, reply_xml: str = "") -> bool:
        """True when this call is the first to see ``key`` (it must then process the message, or has
        already answered it with ``reply_xml``)."""
        sql = models.compiled_sql("wechat_seen.claim", lambda: cls.insert(key="", reply="", created_at=utcnow()))
        try:
            if models.db.in_transaction():  # a failed insert must not spoil the caller's transaction
                with models.db.atomic():
                    models.db.execute_sql(sql, (key, reply_xml, utcnow()))
            else:  # the /wechat path: one autocommitted insert
                models.db.execute_sql(sql, (key, reply_xml, utcnow()))
            return True
        except pw.IntegrityError:
            return False

    @classmethod
    def remember_reply(cls, key: str, reply_xml: str) -> None:
        sql = models.compiled_sql("wechat_seen.remember", lambda: cls.update(reply="").where(cls.key == ""))
        models.db.execute_sql(sql, (reply_xml, key))

    @classmethod
    def cached_reply(cls, key: str) -> str:
        row = cls.select(cls.reply).where(cls.key == key).first()
        return row.reply if row else ""

    @classmethod
    def purge(cls, older_than: dt.timedelta = dt.timedelta(days=1)) -> int:
        """Forget keys older than WeChat's retry window (plus a wide margin)."""
        return int(cls.delete().where(cls.created_at < utcnow() - older_than).execute())


class WechatPush(models.BaseModel):
    """The result of one template message for one recipient of one outbox job.

    ``openid`` is empty for recipients that could not be reached at all (school, no binding, no
    template). ``status``: sent / failed / skipped / delivered (TEMPLATESENDJOBFINISH success)."""

    job_id = pw.IntegerField(index=True)
    notice = pw.CharField(max_length=64)
    agreement_id = pw.IntegerField(null=True)
    recipient_type = pw.CharField(max_length=16)
    recipient_id = pw.IntegerField(null=True)
    openid = pw.CharField(max_length=64, default="")
    template_id = pw.CharField(max_length=128, default="")
    client_msg_id = pw.CharField(max_length=64, default="")
    msgid = pw.BigIntegerField(null=True, index=True)
    status = pw.CharField(max_length=12)
    error = pw.TextField(default="")
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "wechat_push"
        indexes = ((("job_id", "openid"), True),)

    @classmethod
    def for_job(cls, job_id: int) -> dict[str, WechatPush]:
        return {p.openid: p for p in cls.select().where(cls.job_id == job_id)}

    @classmethod
    def record(cls, job_id: int, openid: str, **values: Any) -> None:
        """Insert or update the result for (job, openid)."""
        values["updated_at"] = utcnow()
        updated = cls.update(**values).where((cls.job_id == job_id) & (cls.openid == openid)).execute()
        if not updated:
            try:
                with models.db.atomic():
                    cls.create(job_id=job_id, openid=openid, **values)
            except pw.IntegrityError:  # a concurrent run of the same job recorded first
                cls.update(**values).where((cls.job_id == job_id) & (cls.openid == openid)).execute()

    @classmethod
    def mark_finished(cls, msgid: int, wechat_status: str, openid: str | None = None) -> int:
        """Apply a TEMPLATESENDJOBFINISH status ("success", "failed:user block", ...); rows changed.

        The report is kept first (:class:`WechatDeliveryReport`) because it may arrive before the
        sender has recorded the msgid; :meth:`sent` applies such an early report."""
        WechatDeliveryReport.keep(msgid, wechat_status)
        return cls._apply(msgid, wechat_status, openid)

    @classmethod
    def _apply(cls, msgid: int, wechat_status: str, openid: str | None = None) -> int:
        """Apply a report to the push with that msgid – only the recipient's own report when its
        sender is known (a report names the user it was about as FromUserName)."""
        if wechat_status == "success":
            query = cls.update(status="delivered", updated_at=utcnow())
        else:
            query = cls.update(status="failed", error=f"WeChat: {wechat_status}"[:2000], updated_at=utcnow())
        mine = (cls.msgid == msgid) & (cls.status == "sent")
        if openid is not None:
            mine &= cls.openid == openid
        return int(query.where(mine).execute())

    @classmethod
    def sent(cls, job_id: int, openid: str, msgid: int | None, **values: Any) -> None:
        """Record a successful send, then apply a delivery report that came in before it."""
        cls.record(job_id, openid, status="sent", msgid=msgid, error="", **values)
        if msgid is not None:
            report = WechatDeliveryReport.get_or_none(WechatDeliveryReport.msgid == msgid)
            if report is not None:
                cls._apply(msgid, report.status)


class WechatDeliveryReport(models.BaseModel):
    """A TEMPLATESENDJOBFINISH as received (``status``: "success", "failed:user block"...)."""

    msgid = pw.BigIntegerField(unique=True)
    status = pw.CharField(max_length=64)
    received_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "wechat_delivery_report"

    @classmethod
    def keep(cls, msgid: int, status: str) -> None:
        cls.insert(msgid=msgid, status=status[:64], received_at=utcnow()).on_conflict_ignore().execute()

    @classmethod
    def purge(cls, older_than: dt.timedelta = dt.timedelta(days=30)) -> int:
        return int(cls.delete().where(cls.received_at < utcnow() - older_than).execute())


class WechatSubscription(models.BaseModel):
    """Whether an openid follows the account, with the latest (un)subscribe times and QR scene."""

    openid = pw.CharField(max_length=64, unique=True)
    subscribed = pw.BooleanField(default=True)
    scene = pw.CharField(max_length=64, default="")
    subscribed_at = pw.DateTimeField(null=True)
    unsubscribed_at = pw.DateTimeField(null=True)
    times = pw.IntegerField(default=0)

    class Meta:
        table_name = "wechat_subscription"

    @classmethod
    def note(cls, openid: str, subscribed: bool, scene: str = "") -> None:
        """Record a subscribe or unsubscribe event (idempotent enough for retries: de-duplicated upstream)."""
        now = utcnow()
        cls.insert(openid=openid, subscribed=False, times=0).on_conflict_ignore().execute()
        if subscribed:
            cls.update(subscribed=True, scene=scene[:64], subscribed_at=now, times=cls.times + 1).where(
                cls.openid == openid).execute()
        else:
            cls.update(subscribed=False, unsubscribed_at=now).where(cls.openid == openid).execute()


class StaffBindingCode(models.BaseModel):
    """A one-time code (shown as QR scene ``staff_<code>`` in the employer console) that binds the
    WeChat account scanning it to ``employer_user``. Single use; expires."""

    code = pw.CharField(max_length=32, unique=True)
    employer_user = pw.ForeignKeyField(EmployerUser, on_delete="CASCADE")
    expires_at = pw.DateTimeField()
    used_at = pw.DateTimeField(null=True)
    used_by = pw.CharField(max_length=64, default="")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "wechat_staff_code"

    @classmethod
    def issue(cls, employer_user_id: int, minutes: int = 30) -> StaffBindingCode:
        """A new code for this employer user; the QR scene is ``"staff_" + code.code``."""
        return cls.create(code=new_code(), employer_user=employer_user_id,
                          expires_at=utcnow() + dt.timedelta(minutes=minutes))

    @classmethod
    def redeem(cls, code: str, openid: str) -> tuple[str, EmployerUser | None]:
        """Bind ``openid`` to the code's employer user, once. Returns (outcome, user) where outcome is
        "bound", "invalid", "expired", "used", "inactive" or "other_binding"."""
        with models.transaction():
            row = cls.get_or_none(cls.code == code)
            if row is None:
                return "invalid", None
            if row.used_at is not None:
                return "used", None
            if row.expires_at <= utcnow():
                return "expired", None
            user = EmployerUser.get_or_none(EmployerUser.id == row.employer_user_id)
            if user is None or not user.active:
                return "inactive", None
            existing = WechatBinding.get_or_none(WechatBinding.openid == openid)
            if existing is not None and existing.employer_user_id != user.id:
                return "other_binding", None
            taken = cls.update(used_at=utcnow(), used_by=openid).where(
                (cls.id == row.id) & cls.used_at.is_null()).execute()
            if taken != 1:
                return "used", None
            if existing is None:
                WechatBinding.create(openid=openid, employer_user=user.id)
            return "bound", user


class EmployerInvitation(models.BaseModel):
    """An employer's invitation code (QR scene ``inv_<code>``): students who scan it are taken to an
    application to that employer. One active code per employer; revoking makes old QR codes useless."""

    code = pw.CharField(max_length=32, unique=True)
    employer = pw.ForeignKeyField(models.Employer, on_delete="CASCADE")
    active = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "wechat_employer_invitation"

    @classmethod
    def code_for(cls, employer_id: int) -> str:
        """The employer's active invitation code, made on first use."""
        row = cls.get_or_none((cls.employer == employer_id) & (cls.active == True))  # noqa: E712
        if row is None:
            row = cls.create(code=new_code(12), employer=employer_id)
        return row.code

    @classmethod
    def revoke(cls, employer_id: int) -> None:
        cls.update(active=False).where(cls.employer == employer_id).execute()

    @classmethod
    def employer_for(cls, code: str) -> models.Employer | None:
        row = cls.get_or_none((cls.code == code) & (cls.active == True))  # noqa: E712
        return models.Employer.get_or_none(models.Employer.id == row.employer_id) if row else None


MODELS = [WechatMessageSeen, WechatPush, WechatDeliveryReport, WechatSubscription, StaffBindingCode,
          EmployerInvitation]
models.register_models(*MODELS)

__all__ = ["WechatMessageSeen", "WechatPush", "WechatDeliveryReport", "WechatSubscription",
           "StaffBindingCode", "EmployerInvitation", "new_code", "MODELS"]
