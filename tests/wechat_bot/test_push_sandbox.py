"""A notification travels the whole way: outbox -> wechatpy client -> the local WeChat sandbox ->
TEMPLATESENDJOBFINISH posted back to /wechat (safe mode) -> the push record says delivered."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jobs
from models import WechatBinding
from tests.wechat_bot.test_push import TEMPLATES
from wechat_bot import handler, push
from wechat_bot.records import WechatPush
from wechat_bot.sandbox import relay
from wechat_bot.store import SandboxTemplateMessage


def _with_handler(settings: Any) -> Any:
    from app import create_app

    application = create_app(settings)
    if "wechat_handler" not in application.blueprints:
        application.register_blueprint(handler.bp)
    return application


def test_push_through_the_sandbox_is_delivered(serve: Callable[..., Any], monkeypatch: Any) -> None:
    from tests import factories

    live = serve(_with_handler, wechat={"templates": TEMPLATES})
    monkeypatch.setattr(push, "_state", {"settings": live.settings, "client_factory": None})
    user = live.add_user("李四")
    world = factories.World()
    WechatBinding.create(openid=user.openid, student=world.student)
    a = world.agreement_at("awaiting_student")
    jobs.drain()
    [record] = WechatPush.select().where(WechatPush.openid == user.openid)
    assert record.status in ("sent", "delivered") and record.msgid
    [message] = SandboxTemplateMessage.select().where(SandboxTemplateMessage.openid == user.openid)
    assert message.template_id == TEMPLATES["agreement.confirmed"]
    assert message.url.endswith(f"/m/agreements/{a.id}")
    relay.wait_for_deliveries(10)
    deadline = time.monotonic() + 5
    while WechatPush.get_by_id(record.id).status != "delivered" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert WechatPush.get_by_id(record.id).status == "delivered"
