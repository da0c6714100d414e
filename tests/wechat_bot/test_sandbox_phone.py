"""The phone simulator's route to the app's /wechat: signed (and encrypted) exactly as WeChat does."""

from __future__ import annotations

import pytest
import requests

from wechat_bot.client import make_client
from wechat_bot.store import SandboxUser


def new_user(live, session: requests.Session, nickname: str = "王五", subscribe: bool = True) -> dict:
    res = session.post(
        live.url("/sandbox/phone/api/users"), json={"nickname": nickname, "subscribe": subscribe}
    )
    assert res.status_code == 200
    return res.json()


@pytest.mark.parametrize("mode", ["plain", "compat", "aes"])
def test_text_reaches_the_app_signed_and_the_reply_is_shown(stub_server, mode):
    live = stub_server
    s = requests.Session()
    assert s.post(live.url("/sandbox/phone/api/mode"), json={"mode": mode}).json() == {"mode": mode}
    created = new_user(live, s)
    assert created["delivery"]["ok"] and created["user"]["subscribed"]
    res = s.post(
        live.url("/sandbox/phone/api/send"), json={"kind": "text", "content": "你好 ]]> <b>&"}
    ).json()
    assert res["ok"], res
    assert res["reply"] == {"type": "text", "content": "收到：你好  <b>&"}
    received = live.app.config["RECEIVED"]
    assert received[0]["Event"] == "subscribe" and received[0]["ToUserName"] == "gh_sandbox00000"
    assert received[1]["MsgType"] == "text" and received[1]["FromUserName"] == created["user"]["openid"]
    assert received[1]["Content"] == "你好 ]]> <b>&" and int(received[1]["MsgId"]) > 0


def test_scan_subscribe_click_and_unsubscribe(stub_server):
    live = stub_server
    s = requests.Session()
    qr = make_client(live.settings).qrcode.create(
        {
            "action_name": "QR_STR_SCENE",
            "expire_seconds": 600,
            "action_info": {"scene": {"scene_str": "bind_7"}},
        }
    )
    openid = new_user(live, s, subscribe=False)["user"]["openid"]
    assert (
        s.post(live.url("/sandbox/phone/api/send"), json={"kind": "text", "content": "hi"}).json()["ok"]
        is False
    )
    assert s.post(live.url("/sandbox/phone/api/send"), json={"kind": "scan", "code": qr["url"]}).json()["ok"]
    assert s.post(live.url("/sandbox/phone/api/send"), json={"kind": "scan", "code": "bind_7"}).json()["ok"]
    assert s.post(
        live.url("/sandbox/phone/api/send"),
        json={"kind": "click", "key": "MY_AGREEMENTS", "name": "我的协议"},
    ).json()["ok"]
    assert s.post(live.url("/sandbox/phone/api/send"), json={"kind": "unsubscribe"}).json()["ok"]
    events = [(m["Event"], m.get("EventKey"), m.get("Ticket")) for m in live.app.config["RECEIVED"]]
    assert events == [
        ("subscribe", "qrscene_bind_7", qr["ticket"]),
        ("SCAN", "bind_7", qr["ticket"]),
        ("CLICK", "MY_AGREEMENTS", None),
        ("unsubscribe", None, None),
    ]
    user = SandboxUser.get(SandboxUser.openid == openid)
    assert not user.subscribed and user.qr_scene == "bind_7"


def test_missing_wechat_endpoint_gives_a_clear_error(serve):
    from flask import Flask

    import models
    from wechat_bot import sandbox

    def bare(settings):
        app = Flask(__name__)
        app.config.update(TRIPACT=settings, SECRET_KEY="t")
        models.init_db(settings.database_url)
        sandbox.init_app(app, settings)
        return app

    live = serve(bare)
    s = requests.Session()
    created = new_user(live, s)
    assert created["delivery"]["ok"] is False and "HTTP 404" in created["delivery"]["error"]
    res = s.post(live.url("/sandbox/phone/api/send"), json={"kind": "text", "content": "在吗"}).json()
    assert res["ok"] is False and "该公众号暂时无法提供服务" in res["error"] and "404" in res["error"]
    inbox = s.get(live.url("/sandbox/phone/api/inbox")).json()
    assert [r["summary"] for r in inbox["log"]] == ["关注公众号", "在吗"]


def test_inbox_lists_template_messages_and_open_logs_in_as_the_user(stub_server):
    live = stub_server
    s = requests.Session()
    openid = new_user(live, s)["user"]["openid"]
    link = live.url("/m/agreements/1")
    make_client(live.settings).send_template(
        openid, "TPL", {"thing1": {"value": "协议待签署"}, "remark": {"value": "不显示"}}, url=link
    )
    tpl = s.get(live.url("/sandbox/phone/api/inbox")).json()["templates"][0]
    assert tpl["url"] == link
    assert tpl["fields"] == [
        {"key": "thing1", "value": "协议待签署", "hidden": False},
        {"key": "remark", "value": "不显示", "hidden": True},
    ]
    res = requests.get(
        live.url("/sandbox/phone/open"), params={"url": link, "openid": openid}, allow_redirects=False
    )
    assert res.status_code == 302 and res.headers["Location"] == link
    assert res.cookies["sandbox_openid"] == openid
    assert (
        requests.get(
            live.url("/sandbox/phone/open"),
            params={"url": "https://evil.example.com/"},
            allow_redirects=False,
        ).status_code
        == 400
    )


def test_a_slow_reply_is_retried_with_the_same_msgid(stub_server):
    live = stub_server
    live.app.config.update(SANDBOX_REPLY_TIMEOUT=0.3, STUB_SLOW_TEXT=0.5)
    s = requests.Session()
    new_user(live, s)
    res = s.post(live.url("/sandbox/phone/api/send"), json={"kind": "text", "content": "slow"}).json()
    assert res["ok"] is False and "没有回复" in res["error"]
    texts = [m for m in live.app.config["RECEIVED"] if m["MsgType"] == "text"]
    assert len(texts) == 3 and len({m["MsgId"] for m in texts}) == 1  # WeChat's three tries, one MsgId


def test_switching_users_is_switching_phones(stub_server):
    live = stub_server
    s = requests.Session()
    first = new_user(live, s, "甲")["user"]["openid"]
    second = new_user(live, s, "乙")["user"]["openid"]
    assert first != second
    res = s.post(live.url("/sandbox/phone/api/select"), json={"openid": first})
    assert res.json()["user"]["openid"] == first
    # The app's session cookie went with the other phone.
    assert "session=; Expires=Thu, 01 Jan 1970" in res.headers["Set-Cookie"]
    res = s.post(live.url("/sandbox/phone/api/select"), json={"openid": first})
    assert "session=" not in res.headers["Set-Cookie"]  # same phone: the app's session stays
    assert s.get(live.url("/sandbox/phone/api/state")).json()["current"]["openid"] == first


def test_customer_service_messages_need_a_recent_interaction(stub_server):
    from wechatpy.exceptions import WeChatClientException

    live = stub_server
    client = make_client(live.settings)
    s = requests.Session()
    openid = new_user(live, s)["user"]["openid"]  # subscribing is an interaction
    assert client.message.send_text(openid, "您的协议已生效")["errcode"] == 0
    log = s.get(live.url("/sandbox/phone/api/inbox")).json()["log"]
    assert log[-1]["kind"] == "custom" and log[-1]["reply"] == {"type": "text", "content": "您的协议已生效"}
    silent = live.add_user()
    with pytest.raises(WeChatClientException) as exc:
        client.message.send_text(silent.openid, "在吗")
    assert exc.value.errcode == 45015
