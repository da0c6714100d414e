"""Template messages (and deferred customer-service texts) sent from the outbox.

``notify`` jobs are queued by ``workflow`` in the transaction of each state change (payload: notice,
agreement_id, recipient_type student|employer|school, recipient_id). Each becomes one template message
per bound openid: the student's binding, or every bound, active user of the employer. Schools have no
WeChat; a recipient without binding and a notice without a configured template are skipped and
recorded (``jobs.Skip``), never retried. Transport errors propagate so that ``jobs.run_job`` retries with
back-off; openids already sent in an earlier attempt are not sent again, and ``client_msg_id`` (job id +
openid) lets WeChat drop a duplicate when a process died between sending and recording.

Every notice uses one field layout, so pick templates in WeChat's library that have exactly these keys
(``[wechat.templates]`` maps notice -> template id):

====================  ====================================================  ===================
key                   content                                               kind limit
====================  ====================================================  ===================
character_string1     agreement number                                      ≤ 32 ASCII
thing2                the other party (employer for students, student for    ≤ 20 characters
                      employers)
phrase3               short status, e.g. 待签署                              ≤ 5 Chinese chars
thing4                what happened / what to do                            ≤ 20 characters
time5                 when (Asia/Shanghai)                                  yyyy年mm月dd日 HH:MM
====================  ====================================================  ===================
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Callable
from typing import Any

from wechatpy.exceptions import WeChatClientException

import jobs
from models import Agreement, EmployerUser, OutboxJob, WechatBinding, utcnow
from redaction import redact
from settings import Settings
from wechat_bot import texts
from wechat_bot.records import WechatPush

log = logging.getLogger(__name__)

NOTICES = tuple(texts.NOTICE_PHRASES)
"""Notice names workflow queues (keys of ``[wechat.templates]``)."""

PERMANENT_ERRCODES = frozenset({40003, 40036, 40037, 43004, 43019, 47003})
"""WeChat refusals that a retry cannot fix: invalid openid, invalid/unknown template, user not following,
user blocked the account, invalid field data."""

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


# ---------------------------------------------------------------- typed template data

class FieldError(ValueError):
    """A value that no truncation can make valid for its field kind (a programming error)."""


_HAN = re.compile(r"^[\u3400-\u9fff]+$")


class TemplateData:
    """Builds a template message's ``data`` obeying WeChat's field kinds: free text is truncated to
    fit, values that cannot fit (a phrase that is not Chinese) raise :class:`FieldError`."""

    THING_MAX = 20
    CHARACTER_STRING_MAX = 32
    PHRASE_MAX = 5

    def __init__(self) -> None:
        self.data: dict[str, dict[str, str]] = {}

    def _put(self, kind: str, number: int, value: str) -> TemplateData:
        self.data[f"{kind}{number}"] = {"value": value}
        return self

    def thing(self, number: int, value: str) -> TemplateData:
        """Up to 20 characters of any kind; longer text ends in "…"; empty becomes "-"."""
        value = " ".join(value.split()) or "-"
        if len(value) > self.THING_MAX:
            value = value[:self.THING_MAX - 1] + "…"
        return self._put("thing", number, value)

    def character_string(self, number: int, value: str) -> TemplateData:
        """Up to 32 printable ASCII characters (letters, digits, symbols); others are dropped."""
        value = "".join(c for c in value if "\x21" <= c <= "\x7e")[:self.CHARACTER_STRING_MAX] or "-"
        return self._put("character_string", number, value)

    def phrase(self, number: int, value: str) -> TemplateData:
        """Up to 5 Chinese characters; anything else raises FieldError."""
        if not 0 < len(value) <= self.PHRASE_MAX or not _HAN.match(value):
            raise FieldError(f"phrase must be 1-{self.PHRASE_MAX} Chinese characters: {value!r}")
        return self._put("phrase", number, value)

    def time(self, number: int, when: dt.datetime) -> TemplateData:
        """A moment shown in Asia/Shanghai; naive datetimes are UTC (as stored)."""
        aware = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        return self._put("time", number, aware.astimezone(SHANGHAI).strftime("%Y年%m月%d日 %H:%M"))

    def amount(self, number: int, fen: int) -> TemplateData:
        """Money in integer fen shown as yuan with two decimals (at most 10 integer digits)."""
        if not 0 <= fen < 10**12:
            raise FieldError(f"amount out of range: {fen}")
        return self._put("amount", number, f"{fen // 100}.{fen % 100:02d}元")


def notice_data(notice: str, agreement: Agreement, recipient_type: str, when: dt.datetime) -> dict[str, Any]:
    """The template data of one notice for one kind of recipient (see the module docstring)."""
    phrase, hint = texts.NOTICE_PHRASES.get(notice, texts.NOTICE_FALLBACK)
    other = agreement.student_name if recipient_type == "employer" else agreement.employer_name
    return (TemplateData().character_string(1, agreement.number).thing(2, other).phrase(3, phrase)
            .thing(4, hint).time(5, when).data)


def client_msg_id(job_id: int, openid: str) -> str:
    """Stable per (job, openid): WeChat drops a second send with the same id within 10 minutes."""
    return f"tripact-{job_id}-{hashlib.sha1(openid.encode()).hexdigest()[:16]}"


# ---------------------------------------------------------------- configuration

ClientFactory = Callable[[Settings], Any]
_state: dict[str, Any] = {"settings": None, "client_factory": None}


def configure(settings: Settings, client_factory: ClientFactory | None = None) -> None:
    """Give the push jobs their settings and (tests) a client factory; default: wechat_bot.client.
    Call once per process that runs the outbox (app start-up, `tripact scheduler`)."""
    _state["settings"] = settings
    _state["client_factory"] = client_factory


def _settings() -> Settings:
    """The configured settings, else the current app's; unconfigured processes skip (like jobs' fallback)."""
    if _state["settings"] is not None:
        return _state["settings"]  # type: ignore[no-any-return]
    from flask import current_app, has_app_context

    if has_app_context():
        return current_app.config["TRIPACT"]  # type: ignore[no-any-return]
    raise jobs.Skip("WeChat push not configured in this process (call wechat_bot.push.configure)")


def _client(settings: Settings) -> Any:
    factory = _state["client_factory"]
    if factory is None:
        from wechat_bot.client import make_client

        factory = make_client
    return factory(settings)


# ---------------------------------------------------------------- the notify job

def openids_for(recipient_type: str, recipient_id: int) -> list[str]:
    """Bound openids of a student, or of every active user of an employer; [] for schools."""
    if recipient_type == "student":
        q = WechatBinding.select(WechatBinding.openid).where(WechatBinding.student == recipient_id)
    elif recipient_type == "employer":
        q = (WechatBinding.select(WechatBinding.openid).join(EmployerUser)
             .where((EmployerUser.employer == recipient_id) & (EmployerUser.active == True)))  # noqa: E712
    else:
        return []
    return sorted(b.openid for b in q)


def _skip(job: OutboxJob, base: dict[str, Any], reason: str) -> jobs.Skip:
    WechatPush.record(job.id, "", status="skipped", error=reason, **base)
    return jobs.Skip(reason)


def send_notice(job: OutboxJob, settings: Settings, client: Any = None) -> str:
    """Send one ``notify`` job's template messages; return a note for the job. Raises jobs.Skip when
    nobody can be reached, and the first transport error (after trying every openid) to be retried."""
    p = job.payload
    notice, rtype, rid = str(p.get("notice", "")), str(p.get("recipient_type", "")), p.get("recipient_id")
    base = {"notice": notice[:64], "agreement_id": p.get("agreement_id"), "recipient_type": rtype[:16],
            "recipient_id": rid}
    if rtype == "school":
        raise _skip(job, base, "schools have no WeChat")
    template_id = settings.wechat.templates.get(notice, "")
    if not template_id and settings.wechat.sandbox:
        template_id = f"sandbox_{notice}"  # the local sandbox takes any id: the demo shows every push
    if not template_id:
        raise _skip(job, base, f"no template configured for {notice}")
    openids = openids_for(rtype, int(rid or 0))  # before loading the (wide) agreement row
    if not openids:
        raise _skip(job, base, f"{rtype} {rid} has no WeChat binding")
    agreement = Agreement.get_or_none(Agreement.id == p.get("agreement_id"))
    if agreement is None:
        raise _skip(job, base, "agreement not found")
    base["template_id"] = template_id
    data = notice_data(notice, agreement, rtype, job.created_at or utcnow())
    url = settings.server.base_url.rstrip("/") + f"/m/agreements/{agreement.id}"
    done = WechatPush.for_job(job.id)
    client = client if client is not None else _client(settings)
    sent, failed, retry_error = 0, 0, None
    for openid in openids:
        if openid in done and done[openid].status in ("sent", "delivered"):
            sent += 1
            continue
        cmid = client_msg_id(job.id, openid)
        try:
            result = _send_template(client, openid, template_id, data, url, cmid)
        except WeChatClientException as exc:
            WechatPush.record(job.id, openid, status="failed", client_msg_id=cmid,
                              error=f"{exc.errcode}: {exc.errmsg}"[:2000], **base)
            failed += 1
            if exc.errcode not in PERMANENT_ERRCODES:
                retry_error = retry_error or exc
            continue
        except Exception as exc:  # noqa: BLE001 - network trouble: recorded, retried by the outbox
            WechatPush.record(job.id, openid, status="failed", client_msg_id=cmid,
                              error=redact(f"{type(exc).__name__}: {exc}")[:2000], **base)
            failed += 1
            retry_error = retry_error or exc
            continue
        msgid = (result or {}).get("msgid")
        WechatPush.sent(job.id, openid, int(msgid) if msgid is not None else None, client_msg_id=cmid, **base)
        sent += 1
    if retry_error is not None:
        raise retry_error
    return f"{notice}: sent {sent}, failed {failed}"


def _send_template(client: Any, openid: str, template_id: str, data: dict[str, Any], url: str,
                   cmid: str) -> Any:
    """wechat_bot.client's send_template (which passes client_msg_id), else a raw POST."""
    if hasattr(client, "send_template"):
        return client.send_template(openid, template_id, data, url=url, client_msg_id=cmid)
    return client.post("message/template/send", data={"touser": openid, "template_id": template_id,
                                                       "data": data, "url": url, "client_msg_id": cmid})


@jobs.handler("notify")
def notify(job: OutboxJob) -> str | None:
    """The outbox handler for workflow notifications."""
    return send_notice(job, _settings())


# ---------------------------------------------------------------- deferred customer-service texts

def send_text_later(openid: str, text: str) -> OutboxJob:
    """Queue a customer-service text message (for replies that do not fit a passive reply)."""
    return OutboxJob.create(kind="wechat_text", payload={"openid": openid, "text": text})


def send_text(job: OutboxJob, settings: Settings, client: Any = None) -> str:
    """Send one queued customer-service text."""
    openid, text = str(job.payload.get("openid", "")), str(job.payload.get("text", ""))
    if not openid or not text:
        raise jobs.Skip("empty wechat_text job")
    client = client if client is not None else _client(settings)
    try:
        client.message.send_text(openid, text)
    except WeChatClientException as exc:
        if exc.errcode in PERMANENT_ERRCODES or exc.errcode == 45015:  # 45015: outside the 48-hour window
            raise jobs.Skip(f"{exc.errcode}: {exc.errmsg}") from exc
        raise
    return "sent"


@jobs.handler("wechat_text")
def _wechat_text(job: OutboxJob) -> str | None:
    return send_text(job, _settings())


__all__ = ["TemplateData", "FieldError", "notice_data", "client_msg_id", "configure", "openids_for",
           "send_notice", "notify", "send_text_later", "send_text", "NOTICES", "PERMANENT_ERRCODES"]
