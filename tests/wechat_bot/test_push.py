"""Template messages from the outbox: field limits, recipients, skips, retries, delivery reports."""
from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from wechatpy.exceptions import WeChatClientException

import jobs
from models import OutboxJob, WechatBinding
from tests.wechat_bot.test_handler_protocol import (  # noqa: F401 - the app fixture is reused
    WeChat,
    app,
    event_xml,
)
from wechat_bot import push, texts
from wechat_bot.push import FieldError, TemplateData
from wechat_bot.records import WechatPush

TEMPLATES = {notice: f"TPL_{i}" for i, notice in enumerate(push.NOTICES)}
STUDENT_OID = "oPushStudent0000000000000001"

_HAN = re.compile(r"^[\u3400-\u9fff]+$")


def wechat_checks(data: dict[str, Any]) -> None:
    """WeChat's rules for the new-style keys, written from its documentation."""
    for key, item in data.items():
        value = item["value"]
        if key.startswith("thing"):
            assert 0 < len(value) <= 20, (key, value)
        elif key.startswith("character_string"):
            assert 0 < len(value) <= 32 and all("\x21" <= c <= "\x7e" for c in value), (key, value)
        elif key.startswith("phrase"):
            assert 0 < len(value) <= 5 and _HAN.match(value), (key, value)
        elif key.startswith("time"):
            assert re.fullmatch(r"\d{4}年\d{2}月\d{2}日 \d{2}:\d{2}", value), (key, value)
        else:
            raise AssertionError(f"unexpected key {key}")


class FakeWeChat:
    """Stands in for WeChat's template API: checks the fields, can fail per openid."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.down: set[str] = set()
        self.errcodes: dict[str, int] = {}
        self._ids = itertools.count(1000)

    def send_template(self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None,
                      client_msg_id: str | None = None) -> dict[str, Any]:
        if openid in self.down:
            raise ConnectionError("WeChat unreachable")
        if openid in self.errcodes:
            raise WeChatClientException(self.errcodes[openid], "refused")
        wechat_checks(data)
        msgid = next(self._ids)
        self.sent.append({"openid": openid, "template_id": template_id, "data": data, "url": url,
                          "client_msg_id": client_msg_id, "msgid": msgid})
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}


@pytest.fixture
def fake(app, settings) -> Iterator[FakeWeChat]:  # type: ignore[no-untyped-def]  # noqa: F811
    wechat = FakeWeChat()
    before = dict(push._state)
    push.configure(settings.replace(wechat={"templates": TEMPLATES}), client_factory=lambda s: wechat)
    yield wechat
    push._state.update(before)


@pytest.fixture
def world(factory):  # type: ignore[no-untyped-def]
    return factory.World()


def notify_job(notice: str, agreement_id: int, rtype: str, rid: int) -> OutboxJob:
    return OutboxJob.create(kind="notify", payload={"notice": notice, "agreement_id": agreement_id,
                                                    "recipient_type": rtype, "recipient_id": rid})


def pending_notice(notice: str) -> OutboxJob:
    pending = OutboxJob.select().where((OutboxJob.kind == "notify") & (OutboxJob.status == "pending"))
    [job] = [j for j in pending if j.payload["notice"] == notice]
    return job


def run(job: OutboxJob) -> OutboxJob:
    """Claim and run one job as the outbox does; return it reloaded."""
    assert jobs._claim(job.id, jobs.utcnow())
    jobs.run_job(OutboxJob.get_by_id(job.id))
    return OutboxJob.get_by_id(job.id)


# ---------------------------------------------------------------- the field builder

def test_field_kinds_are_truncated_or_refused() -> None:
    d = (TemplateData().thing(1, "一二三四五六七八九十" * 3).character_string(2, "2027-10001-31-000001 编号")
         .character_string(3, "x" * 40).phrase(4, "待签署").time(5, dt.datetime(2026, 12, 4, 16, 30))
         .amount(6, 800_005).thing(7, "  ").data)
    assert d["thing1"]["value"] == "一二三四五六七八九十一二三四五六七八九…"
    assert d["character_string2"]["value"] == "2027-10001-31-000001"
    assert len(d["character_string3"]["value"]) == 32
    assert d["time5"]["value"] == "2026年12月05日 00:30"  # shown in Asia/Shanghai
    assert d["amount6"]["value"] == "8000.05元"
    assert d["thing7"]["value"] == "-"
    for bad in ("待学生签署了", "sign", ""):
        with pytest.raises(FieldError):
            TemplateData().phrase(1, bad)


@given(st.text(max_size=200))
@hsettings(max_examples=200, deadline=None)
def test_any_text_fits_thing_and_character_string(value: str) -> None:
    data = TemplateData().thing(1, value).character_string(2, value).data
    wechat_checks(data)


def test_every_notice_has_valid_wording() -> None:
    for notice, (phrase, hint) in {**texts.NOTICE_PHRASES, "?": texts.NOTICE_FALLBACK}.items():
        wechat_checks(TemplateData().phrase(1, phrase).thing(2, hint).data)
        assert len(hint) <= 20, notice


# ---------------------------------------------------------------- recipients

def test_student_notice_goes_to_the_bound_openid(fake: FakeWeChat, world: Any, settings: Any) -> None:
    WechatBinding.create(openid=STUDENT_OID, student=world.student)
    a = world.agreement_at("awaiting_student")  # queues agreement.confirmed for the student
    job = pending_notice("agreement.confirmed")
    assert run(job).status == "done"
    [sent] = fake.sent
    assert sent["openid"] == STUDENT_OID and sent["template_id"] == TEMPLATES["agreement.confirmed"]
    assert sent["url"] == settings.server.base_url + f"/m/agreements/{a.id}"
    assert sent["data"]["character_string1"]["value"] == a.number
    assert sent["data"]["thing2"]["value"] == a.employer_name[:20]
    assert sent["client_msg_id"] == push.client_msg_id(job.id, STUDENT_OID)
    assert len(sent["client_msg_id"]) <= 64
    record = WechatPush.get(WechatPush.job_id == job.id)
    assert (record.status, record.msgid, record.openid) == ("sent", sent["msgid"], STUDENT_OID)


def test_employer_notice_goes_to_every_active_bound_user(fake: FakeWeChat, world: Any, factory: Any) -> None:
    second = factory.make_employer_user(world.employer)
    gone = factory.make_employer_user(world.employer, active=False)
    for i, user in enumerate([world.user, second, gone]):
        WechatBinding.create(openid=f"oStaff{i:022d}", employer_user=user)
    a = world.agreement_at("applied")
    job = pending_notice("agreement.applied")
    assert job.payload["recipient_type"] == "employer"
    run(job)
    assert sorted(s["openid"] for s in fake.sent) == [f"oStaff{0:022d}", f"oStaff{1:022d}"]
    assert all(s["data"]["thing2"]["value"] == a.student_name for s in fake.sent)


@pytest.mark.parametrize("case", ["unbound", "school", "no_template", "no_agreement"])
def test_unreachable_recipients_are_skipped_and_recorded(fake: FakeWeChat, world: Any, case: str) -> None:
    a = world.agreement_at("applied")
    OutboxJob.delete().execute()
    job = {
        "unbound": lambda: notify_job("agreement.confirmed", a.id, "student", world.student.id),
        "school": lambda: notify_job("agreement.school_review", a.id, "school", world.school.id),
        "no_template": lambda: notify_job("agreement.unheard_of", a.id, "student", world.student.id),
        "no_agreement": lambda: notify_job("agreement.confirmed", 999_999, "student", world.student.id),
    }[case]()
    done = run(job)
    assert done.status == "done" and done.last_error.startswith("skipped:") and done.attempts == 1
    record = WechatPush.get(WechatPush.job_id == job.id)
    assert record.status == "skipped" and record.openid == "" and record.error
    assert fake.sent == []


def test_transport_failure_is_retried_without_duplicating(fake: FakeWeChat, world: Any, factory: Any) -> None:
    second = factory.make_employer_user(world.employer)
    WechatBinding.create(openid="oStaffA0000000000000000000001", employer_user=world.user)
    WechatBinding.create(openid="oStaffB0000000000000000000001", employer_user=second)
    world.agreement_at("applied")
    job = pending_notice("agreement.applied")
    fake.down.add("oStaffB0000000000000000000001")
    first = run(job)
    assert first.status == "pending" and "ConnectionError" in first.last_error
    assert first.run_after > jobs.utcnow()
    rows = {r.openid: r.status for r in WechatPush.select().where(WechatPush.job_id == job.id)}
    assert rows == {"oStaffA0000000000000000000001": "sent", "oStaffB0000000000000000000001": "failed"}
    fake.down.clear()
    OutboxJob.update(run_after=jobs.utcnow()).where(OutboxJob.id == job.id).execute()
    assert run(job).status == "done"
    assert [s["openid"] for s in fake.sent] == ["oStaffA0000000000000000000001",
                                                "oStaffB0000000000000000000001"]
    assert WechatPush.get(WechatPush.openid == "oStaffB0000000000000000000001").status == "sent"


def test_permanent_refusal_is_recorded_not_retried(fake: FakeWeChat, world: Any) -> None:
    WechatBinding.create(openid=STUDENT_OID, student=world.student)
    world.agreement_at("awaiting_student")
    job = pending_notice("agreement.confirmed")
    fake.errcodes[STUDENT_OID] = 43004  # the user no longer follows the account
    assert run(job).status == "done"
    record = WechatPush.get(WechatPush.job_id == job.id)
    assert record.status == "failed" and record.error.startswith("43004")


def test_unconfigured_process_skips(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(push._state, "settings", None)
    job = notify_job("agreement.confirmed", 1, "student", world.student.id)
    assert run(job).last_error.startswith("skipped: WeChat push not configured")


# ---------------------------------------------------------------- delivery reports

@pytest.mark.parametrize(("status", "expected"), [("success", "delivered"), ("failed:user block", "failed"),
                                                  ("failed: system failed", "failed")])
def test_templatesendjobfinish_updates_the_record(client: Any, settings: Any, status: str,
                                                  expected: str) -> None:
    WechatPush.record(77, STUDENT_OID, notice="agreement.confirmed", recipient_type="student", recipient_id=1,
                      template_id="TPL", msgid=2_000_000_123, status="sent")
    wx = WeChat(client, settings, mode="aes")
    assert wx.event(STUDENT_OID, "TEMPLATESENDJOBFINISH", MsgID=2_000_000_123, Status=status) is None
    record = WechatPush.get(WechatPush.msgid == 2_000_000_123)
    assert record.status == expected
    assert (expected == "failed") == (status in record.error)


def test_delivery_report_arriving_before_the_send_is_recorded_still_applies(
        fake: FakeWeChat, world: Any, client: Any, settings: Any) -> None:
    """WeChat (or the sandbox) may report TEMPLATESENDJOBFINISH before the sender stored the msgid."""
    WechatBinding.create(openid=STUDENT_OID, student=world.student)
    world.agreement_at("awaiting_student")
    job = pending_notice("agreement.confirmed")
    wx = WeChat(client, settings)
    real_send = fake.send_template

    def send_and_report_at_once(*args: Any, **kw: Any) -> dict[str, Any]:
        result = real_send(*args, **kw)
        wx.event(STUDENT_OID, "TEMPLATESENDJOBFINISH", MsgID=result["msgid"], Status="success")
        return result
    fake.send_template = send_and_report_at_once  # type: ignore[method-assign]
    run(job)
    assert WechatPush.get(WechatPush.job_id == job.id).status == "delivered"
