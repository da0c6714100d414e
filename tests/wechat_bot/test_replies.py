"""What the bot answers to each command, menu key and event – played through /wechat as WeChat does,
plus handlers called directly (no HTTP)."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from wechatpy import parse_message

from models import Agreement, WechatBinding, utcnow
from tests.wechat_bot.test_handler_protocol import (  # noqa: F401 - the app fixture is reused
    WeChat,
    app,
    event_xml,
    text_xml,
)
from wechat_bot import replies, texts
from wechat_bot.records import EmployerInvitation, StaffBindingCode, WechatPush, WechatSubscription

STUDENT_OID = "oStudent000000000000000000001"
STAFF_OID = "oStaff00000000000000000000001"
NOBODY_OID = "oNobody00000000000000000000001"


@pytest.fixture
def wx(client, settings) -> WeChat:  # type: ignore[no-untyped-def]
    return WeChat(client, settings)


@pytest.fixture
def world(factory):  # type: ignore[no-untyped-def]
    w = factory.World()
    WechatBinding.create(openid=STUDENT_OID, student=w.student)
    WechatBinding.create(openid=STAFF_OID, employer_user=w.user)
    return w


@pytest.fixture
def base(settings) -> str:  # type: ignore[no-untyped-def]
    return settings.server.base_url.rstrip("/")


# ---------------------------------------------------------------- handlers without HTTP

def test_handlers_are_plain_functions(settings, world) -> None:  # type: ignore[no-untyped-def]
    msg = parse_message(text_xml(NOBODY_OID, "帮助"))
    reply = replies.dispatch(replies.Incoming(msg, settings))
    assert isinstance(reply, str) and "/m/bind" in reply
    assert replies.registry.clicks.keys() == set(replies.MENU_KEYS)
    assert replies.progress(replies.Incoming(parse_message(text_xml(STUDENT_OID, "进度")), settings)) == \
        texts.PROGRESS_NONE_STUDENT.format(apply_url=settings.server.base_url + "/m/apply")


# ---------------------------------------------------------------- events

def test_subscribe_welcomes_with_the_bind_link(wx: WeChat, base: str) -> None:
    reply = wx.event(NOBODY_OID, "subscribe")
    assert reply is not None and "三方协议" in reply and f"{base}/m/bind" in reply
    row = WechatSubscription.get(WechatSubscription.openid == NOBODY_OID)
    assert row.subscribed and row.times == 1


def test_subscribe_of_a_bound_student_welcomes_back(wx: WeChat, world: Any) -> None:
    assert world.student.name in (wx.event(STUDENT_OID, "subscribe") or "")


def test_unsubscribe_is_recorded(wx: WeChat) -> None:
    wx.event(NOBODY_OID, "subscribe", create_time=1_760_000_000)
    assert wx.event(NOBODY_OID, "unsubscribe", create_time=1_760_000_100) is None
    row = WechatSubscription.get(WechatSubscription.openid == NOBODY_OID)
    assert not row.subscribed and row.unsubscribed_at is not None


@pytest.mark.parametrize("how", ["subscribe", "SCAN"])
def test_invitation_takes_a_bound_student_to_the_application(wx: WeChat, world: Any, base: str,
                                                             how: str) -> None:
    code = EmployerInvitation.code_for(world.employer.id)
    assert EmployerInvitation.code_for(world.employer.id) == code  # one active code per employer
    key = f"qrscene_inv_{code}" if how == "subscribe" else f"inv_{code}"
    reply = wx.event(STUDENT_OID, how, EventKey=key, Ticket="t")
    assert reply is not None and world.employer.name in reply
    assert f"{base}/m/apply?employer={world.employer.id}" in reply
    if how == "subscribe":
        assert WechatSubscription.get(WechatSubscription.openid == STUDENT_OID).scene == f"inv_{code}"


def test_invitation_leads_an_unbound_student_to_binding_first(wx: WeChat, world: Any, base: str) -> None:
    code = EmployerInvitation.code_for(world.employer.id)
    reply = wx.event(NOBODY_OID, "subscribe", EventKey=f"qrscene_inv_{code}")
    assert reply is not None and f"{base}/m/bind?next=" in reply and "%2Fm%2Fapply" in reply


def test_invitation_with_a_live_agreement_shows_it(wx: WeChat, world: Any) -> None:
    a = world.agreement_at("applied")
    reply = wx.event(STUDENT_OID, "SCAN", EventKey=f"inv_{EmployerInvitation.code_for(world.employer.id)}")
    assert reply is not None and "进行中" in reply and f"/m/agreements/{a.id}" in reply


def test_revoked_or_unknown_invitation(wx: WeChat, world: Any) -> None:
    code = EmployerInvitation.code_for(world.employer.id)
    EmployerInvitation.revoke(world.employer.id)
    assert wx.event(STUDENT_OID, "SCAN", EventKey=f"inv_{code}") == texts.INVITE_INVALID
    assert wx.event(STUDENT_OID, "SCAN", EventKey="inv_NOPE") == texts.INVITE_INVALID
    assert wx.event(STUDENT_OID, "SCAN", EventKey="something_else") == texts.HELP


def test_staff_code_binds_an_employer_user_once(wx: WeChat, world: Any, factory: Any) -> None:
    other = factory.make_employer_user(world.employer)
    code = StaffBindingCode.issue(other.id)
    reply = wx.event(NOBODY_OID, "subscribe", EventKey=f"qrscene_staff_{code.code}")
    assert reply is not None and "绑定成功" in reply and other.name in reply
    assert WechatBinding.get(WechatBinding.openid == NOBODY_OID).employer_user_id == other.id
    # single use
    someone = "oSomeoneElse00000000000000001"
    assert wx.event(someone, "SCAN", EventKey=f"staff_{code.code}") == texts.STAFF_CODE_USED
    assert not WechatBinding.select().where(WechatBinding.openid == "oSomeoneElse00000000000000001").exists()


def test_staff_code_expired_invalid_or_openid_taken(wx: WeChat, world: Any) -> None:
    expired = StaffBindingCode.issue(world.user.id)
    StaffBindingCode.update(expires_at=utcnow() - dt.timedelta(seconds=1)).where(
        StaffBindingCode.id == expired.id).execute()
    assert wx.event(NOBODY_OID, "SCAN", EventKey=f"staff_{expired.code}") == texts.STAFF_CODE_EXPIRED
    assert wx.event(NOBODY_OID, "SCAN", EventKey="staff_UNKNOWN") == texts.STAFF_CODE_INVALID
    fresh = StaffBindingCode.issue(world.user.id)
    assert wx.event(STUDENT_OID, "SCAN", EventKey=f"staff_{fresh.code}") == texts.STAFF_ALREADY_BOUND_OTHER
    assert StaffBindingCode.get_by_id(fresh.id).used_at is None  # not consumed
    assert not WechatBinding.select().where(WechatBinding.openid == NOBODY_OID).exists()


# ---------------------------------------------------------------- commands and menu keys

def test_help_and_unknown_text(wx: WeChat, world: Any) -> None:
    assert wx.say(STUDENT_OID, "帮助") == texts.HELP
    assert "/m/bind" in (wx.say(NOBODY_OID, "帮助") or "")
    unknown = wx.say(NOBODY_OID, "你好呀") or ""
    assert unknown.startswith("抱歉") and "/m/bind" in unknown
    assert (wx.say(STUDENT_OID, "随便说点") or "").startswith("抱歉")


@pytest.mark.parametrize("command", ["进度", "待办", "解约"])
def test_personal_commands_lead_unbound_users_to_binding(wx: WeChat, command: str, base: str) -> None:
    assert wx.say(NOBODY_OID, command) == texts.NEED_BINDING.format(bind_url=f"{base}/m/bind")


@pytest.mark.parametrize("key", ["MY_AGREEMENT", "TODO", "APPLY", "TERMINATION"])
def test_personal_menu_keys_lead_unbound_users_to_binding(wx: WeChat, key: str, base: str) -> None:
    assert wx.event(NOBODY_OID, "CLICK", EventKey=key) == texts.NEED_BINDING.format(bind_url=f"{base}/m/bind")


def test_progress_of_a_student_with_its_next_step(wx: WeChat, world: Any, base: str) -> None:
    a = world.agreement_at("awaiting_student")
    reply = wx.say(STUDENT_OID, "进度") or ""
    assert a.number in reply and "待学生签署" in reply and "请您签署协议" in reply
    assert f"{base}/m/agreements/{a.id}" in reply
    assert wx.event(STUDENT_OID, "CLICK", EventKey="MY_AGREEMENT") == reply


def test_progress_without_live_agreement_mentions_the_last_one(wx: WeChat, world: Any) -> None:
    import workflow

    a = world.agreement_at("applied")
    workflow.withdraw(world.student_actor(), a.id)
    reply = wx.say(STUDENT_OID, "进度") or ""
    assert "学生已撤回" in reply and "/m/apply" in reply


def test_progress_of_an_employer_user_counts_by_status(wx: WeChat, world: Any, factory: Any) -> None:
    world.agreement_at("applied")
    world.agreement_at("applied", student=factory.make_student(world.school))
    reply = wx.say(STAFF_OID, "进度") or ""
    assert world.employer.name in reply and "待用人单位确认：2 份" in reply


def test_todo_of_a_student(wx: WeChat, world: Any, base: str) -> None:
    assert wx.say(STUDENT_OID, "待办") == texts.TODO_NONE
    a = world.agreement_at("awaiting_student")
    assert f"{base}/m/agreements/{a.id}/sign" in (wx.say(STUDENT_OID, "待办") or "")


def test_todo_of_an_employer_lists_confirmations_and_signatures(wx: WeChat, world: Any, factory: Any,
                                                                base: str) -> None:
    applied = world.agreement_at("applied")
    to_sign = world.agreement_at("awaiting_employer", student=factory.make_student(world.school))
    reply = wx.event(STAFF_OID, "CLICK", EventKey="TODO") or ""
    assert f"{base}/m/agreements/{applied.id}/confirm" in reply
    assert f"{base}/m/agreements/{to_sign.id}/sign" in reply


def test_todo_list_is_capped_with_a_link_to_the_rest(wx: WeChat, world: Any, factory: Any) -> None:
    for _ in range(texts.LIST_LIMIT + 2):
        world.agreement_at("applied", student=factory.make_student(world.school))
    reply = wx.say(STAFF_OID, "待办") or ""
    assert reply.count("/confirm") == texts.LIST_LIMIT and "还有 2 项" in reply
    assert len(reply.encode()) < 2048


def test_termination_for_the_student_and_the_employer(wx: WeChat, world: Any, base: str) -> None:
    assert wx.say(STUDENT_OID, "解约") == texts.TERMINATION_STUDENT_NONE
    assert wx.say(STAFF_OID, "解约") == texts.TERMINATION_EMPLOYER_NONE
    a = world.agreement_at("completed")
    employer_reply = wx.event(STAFF_OID, "CLICK", EventKey="TERMINATION") or ""
    assert f"{base}/m/agreements/{a.id}/termination" in employer_reply and "申请解约" in employer_reply
    import workflow

    workflow.initiate_termination(world.employer_actor, a.id, "岗位调整")
    student_reply = wx.say(STUDENT_OID, "解约") or ""
    assert "岗位调整" in student_reply and f"{base}/m/agreements/{a.id}/termination" in student_reply
    assert f"/m/agreements/{a.id}/termination" in (wx.say(STUDENT_OID, "待办") or "")
    assert "1 份" in (wx.say(STAFF_OID, "解约") or "")


def test_user_text_cannot_inject_a_link(wx: WeChat, world: Any) -> None:
    import workflow

    a = world.agreement_at("completed")
    workflow.initiate_termination(world.employer_actor, a.id, '点此<a href="http://evil.example">领取补偿</a>')
    reply = wx.say(STUDENT_OID, "解约") or ""
    assert "<a" not in reply and "＜a href" in reply


def test_apply_menu(wx: WeChat, world: Any, base: str) -> None:
    assert f"{base}/m/apply" in (wx.event(STUDENT_OID, "CLICK", EventKey="APPLY") or "")
    assert wx.event(STAFF_OID, "CLICK", EventKey="APPLY") == texts.APPLY_EMPLOYER
    a = world.agreement_at("applied")
    assert f"/m/agreements/{a.id}" in (wx.event(STUDENT_OID, "CLICK", EventKey="APPLY") or "")


def test_bind_unbind(wx: WeChat, world: Any, base: str) -> None:
    assert world.student.student_no in (wx.say(STUDENT_OID, "绑定") or "")
    assert world.employer.name in (wx.event(STAFF_OID, "CLICK", EventKey="BIND") or "")
    assert f"{base}/m/bind" in (wx.say(NOBODY_OID, "绑定") or "")
    assert wx.say(STUDENT_OID, "解绑") == texts.UNBIND_CONFIRM
    assert WechatBinding.select().where(WechatBinding.openid == STUDENT_OID).exists()
    assert "已解除绑定" in (wx.say(STUDENT_OID, "确认解绑") or "")
    assert not WechatBinding.select().where(WechatBinding.openid == STUDENT_OID).exists()
    assert wx.say(STUDENT_OID, "确认解绑") == texts.UNBIND_NOTHING
    assert wx.event(NOBODY_OID, "CLICK", EventKey="HELP") is not None


def test_disabled_employer_user_is_told(wx: WeChat, world: Any) -> None:
    world.user.active = False
    world.user.save()
    assert wx.say(STAFF_OID, "待办") == texts.ACCOUNT_DISABLED


def test_replies_work_in_safe_mode_too(wx: WeChat, world: Any) -> None:
    wx.mode = "aes"
    a = world.agreement_at("awaiting_student")
    assert a.number in (wx.say(STUDENT_OID, "进度") or "")
    assert Agreement.get_by_id(a.id).status == "awaiting_student"  # the bot never changes an agreement


def test_no_reply_touches_the_network(wx: WeChat, world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replies must leave within WeChat's 5 seconds: nothing on the request path may call out."""
    import socket

    def no_network(*args: Any, **kw: Any) -> None:
        raise AssertionError("network call on the message path")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    world.agreement_at("awaiting_student")
    code = EmployerInvitation.code_for(world.employer.id)
    staff = StaffBindingCode.issue(world.user.id)
    for openid in (STUDENT_OID, STAFF_OID, NOBODY_OID):
        for command in ("帮助", "进度", "待办", "解约", "绑定", "解绑", "别的"):
            assert wx.say(openid, command)
        for key in replies.MENU_KEYS:
            assert wx.event(openid, "CLICK", EventKey=key)
        assert wx.event(openid, "SCAN", EventKey=f"inv_{code}")
    assert wx.event(NOBODY_OID, "subscribe", EventKey=f"qrscene_staff_{staff.code}")
    assert wx.event(NOBODY_OID, "unsubscribe") is None


def test_a_delivery_report_only_changes_its_own_recipients_push(wx: WeChat) -> None:
    """Review finding: a report was matched on MsgID alone, so anyone could mark another user's push
    failed (with their own text in its error)."""
    owner, other = "oOwner00000000000000000000001", "oOther00000000000000000000001"
    WechatPush.sent(1, owner, 424242, notice="agreement.applied", recipient_type="student")
    wx.post(event_xml(other, "TEMPLATESENDJOBFINISH", MsgID=424242, Status="failed:user block"))
    assert WechatPush.get(WechatPush.msgid == 424242).status == "sent"
    WechatPush.sent(2, owner, 424243, notice="agreement.applied", recipient_type="student")
    wx.post(event_xml(owner, "TEMPLATESENDJOBFINISH", MsgID=424243, Status="success"))
    assert WechatPush.get(WechatPush.msgid == 424243).status == "delivered"


def test_links_in_user_text_are_made_inert() -> None:
    """Review finding: WeChat makes bare URLs clickable, so an employer's termination reason could
    put a link into the official account's own message."""
    quoted = texts.inert("请点击 https://evil.example/m/agreements/1 或 www.evil.cn 处理，薪资3.5万")
    assert "://" not in quoted and "evil.example" not in quoted and "www.evil" not in quoted
    assert "薪资3.5万" in quoted  # numbers keep their dots
