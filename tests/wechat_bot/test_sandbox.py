"""The WeChat sandbox driven by the real wechatpy client over HTTP, as the app will use it."""

from __future__ import annotations

import io
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from PIL import Image
from wechatpy.exceptions import WeChatClientException, WeChatOAuthException

import models
from app import create_app
from settings import defaults_for_tests
from wechat_bot.client import make_client, make_oauth
from wechat_bot.sandbox import SandboxConfigError, relay
from wechat_bot.store import SandboxOAuthCode, SandboxTemplateMessage, SandboxToken

GOOD_DATA = {
    "thing1": {"value": "腾飞科技有限公司确认了你的申请"},  # 15 characters
    "character_string2": {"value": "2026-10403-31-000123"},
    "phrase3": {"value": "待签署"},
    "time4": {"value": "2026年12月4日 10:00"},
    "amount5": {"value": "¥8000.00"},
    "first": {"value": "旧模板的开头，已不显示"},
}


def client_tokens() -> list[SandboxToken]:
    return list(SandboxToken.select().where(SandboxToken.kind == "client"))


# ---------------------------------------------------------------- access token


def test_token_fetch_and_bad_credentials(live):
    bad = make_client(live.settings.replace(wechat={"appsecret": "wrong"}))
    with pytest.raises(WeChatClientException) as exc:
        bad.menu.get()
    assert exc.value.errcode == 40125

    client = make_client(live.settings)
    token = client.access_token
    assert len(token) > 100 and client.fetch_count == 1
    assert [t.token for t in client_tokens()] == [token]

    res = requests.get(
        live.url("/sandbox/cgi-bin/token"),
        params={"grant_type": "client_credential", "appid": live.settings.wechat.appid, "secret": "wrong"},
    ).json()
    assert res["errcode"] == 40125
    res = requests.get(
        live.url("/sandbox/cgi-bin/token"),
        params={"grant_type": "client_credential", "appid": "wx_sandbox_other", "secret": "x"},
    ).json()
    assert res["errcode"] == 40013


def test_token_is_shared_with_its_expiry(live):
    first, second = make_client(live.settings), make_client(live.settings)
    token = first.access_token
    assert second.access_token == token
    assert second.fetch_count == 0 and second.expires_at and second.expires_at > time.time() + 7000
    # The stored expiry (not process memory) decides: near expiry, the next reader refreshes.
    first._store(token, 60)
    assert second.access_token != token
    assert second.fetch_count == 1 and len(client_tokens()) == 2


def test_refresh_happens_once_under_concurrency(live):
    import threading

    clients = [make_client(live.settings) for _ in range(8)]
    results: list[str] = []
    barrier = threading.Barrier(len(clients))

    def run(c):
        barrier.wait()
        results.append(c.access_token)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8 and len(set(results)) == 1
    assert len(client_tokens()) == 1
    assert sum(c.fetch_count for c in clients) == 1


def test_rotated_token_dies_after_the_overlap_and_the_client_recovers(live):
    live.app.config["SANDBOX_TOKEN_OVERLAP"] = 0
    client = make_client(live.settings)
    old = client.access_token
    fresh = client.fetch_access_token()["access_token"]
    menu_get = live.url("/sandbox/cgi-bin/menu/get")
    assert requests.get(menu_get, params={"access_token": old}).json()["errcode"] == 40001
    assert requests.get(menu_get, params={"access_token": fresh}).json()["errcode"] == 46003  # no menu yet

    # Another process rotated the token behind this one's back: one refresh, one retry.
    client._store(old, 7200)
    client.fetch_count = 0
    client.menu.create({"button": [{"type": "click", "name": "我的协议", "key": "MY_AGREEMENTS"}]})
    assert client.fetch_count == 1

    # A token that ran out is "expired".
    current = client.access_token
    SandboxToken.update(expires_at=time.time() - 1).where(SandboxToken.token == current).execute()
    assert requests.get(menu_get, params={"access_token": current}).json()["errcode"] == 42001
    assert client.menu.get()["menu"]["button"][0]["key"] == "MY_AGREEMENTS"


def test_overlap_keeps_the_old_token_working(live):
    client = make_client(live.settings)
    old = client.access_token
    client.fetch_access_token()
    res = requests.get(live.url("/sandbox/cgi-bin/menu/get"), params={"access_token": old}).json()
    assert res["errcode"] == 46003  # a valid token (the menu simply does not exist yet)


# ---------------------------------------------------------------- menu


def test_menu_create_get_delete(live):
    client = make_client(live.settings)
    menu = {
        "button": [
            {"type": "click", "name": "我的协议", "key": "MY_AGREEMENTS"},
            {
                "name": "办理",
                "sub_button": [
                    {"type": "view", "name": "申请签约", "url": live.url("/m/apply")},
                    {"type": "click", "name": "解约", "key": "TERMINATE"},
                ],
            },
        ]
    }
    assert client.menu.create(menu)["errcode"] == 0
    assert client.menu.get() == {"menu": menu}
    with pytest.raises(WeChatClientException) as exc:
        client.menu.create({"button": [{"type": "click", "name": f"b{i}", "key": "k"} for i in range(4)]})
    assert exc.value.errcode == 40016
    client.menu.delete()
    assert client.menu.get() is None  # wechatpy maps errcode 46003 (no menu) to None


# ---------------------------------------------------------------- template messages


def test_template_send_records_dedups_and_rejects_unknown_users(live):
    client = make_client(live.settings)
    user = live.add_user()
    first = client.send_template(
        user.openid, "TPL_APPLIED", GOOD_DATA, url=live.url("/m/a/1"), client_msg_id="ev-1"
    )
    again = client.send_template(user.openid, "TPL_APPLIED", GOOD_DATA, client_msg_id="ev-1")
    other = client.send_template(user.openid, "TPL_APPLIED", GOOD_DATA, client_msg_id="ev-2")
    assert first["errcode"] == 0 and again["msgid"] == first["msgid"] and other["msgid"] != first["msgid"]
    rows = list(SandboxTemplateMessage.select().where(SandboxTemplateMessage.openid == user.openid))
    assert len(rows) == 2 and rows[0].data["thing1"]["value"] == GOOD_DATA["thing1"]["value"]
    # wechatpy's own call (no client_msg_id) works too
    assert client.message.send_template(user.openid, "TPL_APPLIED", GOOD_DATA)["errcode"] == 0

    with pytest.raises(WeChatClientException) as exc:
        client.send_template("o_nobody", "TPL_APPLIED", GOOD_DATA)
    assert exc.value.errcode == 40003
    gone = live.add_user(subscribed=False)
    with pytest.raises(WeChatClientException) as exc:
        client.send_template(gone.openid, "TPL_APPLIED", GOOD_DATA)
    assert exc.value.errcode == 43004


@pytest.mark.parametrize(
    "key,value",
    [
        ("thing1", "一二三四五六七八九十一二三四五六七八九十一"),  # 21 characters
        ("character_string2", "编号123"),
        ("character_string2", "x" * 33),
        ("phrase3", "等待对方签署"),  # 6 characters
        ("phrase3", "ok"),
        ("time4", "明天上午"),
        ("amount5", "八千元"),
    ],
)
def test_template_field_kinds_are_enforced(live, key, value):
    client = make_client(live.settings)
    user = live.add_user()
    with pytest.raises(WeChatClientException) as exc:
        client.send_template(user.openid, "TPL", {**GOOD_DATA, key: {"value": value}})
    assert exc.value.errcode == 47003
    assert key in exc.value.errmsg


# ---------------------------------------------------------------- QR codes


@pytest.mark.parametrize(
    "body",
    [
        {"action_name": "QR_SCENE", "expire_seconds": 604800, "action_info": {"scene": {"scene_id": 123}}},
        {
            "action_name": "QR_STR_SCENE",
            "expire_seconds": 2592000,
            "action_info": {"scene": {"scene_str": "bind_42"}},
        },
        {"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 100000}}},
        {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "s" * 64}}},
    ],
)
def test_qrcode_create_and_show(live, body):
    client = make_client(live.settings)
    res = client.qrcode.create(body)
    assert res["ticket"] and res["url"].startswith(live.url("/sandbox/q/"))
    assert ("expire_seconds" in res) == (not body["action_name"].startswith("QR_LIMIT"))
    from wechat_bot.client import qrcode_image_url

    img = requests.get(qrcode_image_url(live.settings, res["ticket"]))
    assert img.status_code == 200 and img.headers["Content-Type"] == "image/png"
    assert img.content.startswith(b"\x89PNG") and Image.open(io.BytesIO(img.content)).size[0] > 100


@pytest.mark.parametrize(
    "body",
    [
        {"action_name": "QR_SCENE", "expire_seconds": 2592001, "action_info": {"scene": {"scene_id": 1}}},
        {"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "s" * 65}}},
        {"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": ""}}},
        {"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 100001}}},
        {"action_name": "QR_WHATEVER", "action_info": {"scene": {"scene_id": 1}}},
    ],
)
def test_qrcode_rejects_bad_parameters(live, body):
    with pytest.raises(WeChatClientException) as exc:
        make_client(live.settings).qrcode.create(body)
    assert exc.value.errcode == 40097


# ---------------------------------------------------------------- OAuth


def _authorize(live, user, scope="snsapi_base", state="s1", redirect_uri=None):
    oauth = make_oauth(
        live.settings, redirect_uri or live.url("/m/oauth?next=%2Fm%2F"), scope=scope, state=state
    )
    assert oauth.authorize_url.startswith(live.url("/sandbox/connect/oauth2/authorize?"))
    res = requests.get(oauth.authorize_url, cookies={"sandbox_openid": user.openid}, allow_redirects=False)
    return oauth, res


def test_oauth_code_is_single_use(live):
    user = live.add_user()
    oauth, res = _authorize(live, user)
    assert res.status_code == 302
    target = urlsplit(res.headers["Location"])
    query = parse_qs(target.query)
    assert target.path == "/m/oauth" and query["state"] == ["s1"] and query["next"] == ["/m/"]
    token = oauth.fetch_access_token(query["code"][0])
    assert token["openid"] == user.openid and token["scope"] == "snsapi_base" and token["expires_in"] == 7200
    with pytest.raises(WeChatOAuthException) as exc:
        make_oauth(live.settings, "x").fetch_access_token(query["code"][0])
    assert exc.value.errcode == 40163
    with pytest.raises(WeChatOAuthException) as exc:
        oauth.get_user_info()  # snsapi_base gives no user info
    assert exc.value.errcode == 48001


def test_oauth_code_expires_and_userinfo(live):
    user = live.add_user("李四")
    oauth, res = _authorize(live, user, scope="snsapi_userinfo")
    code = parse_qs(urlsplit(res.headers["Location"]).query)["code"][0]
    SandboxOAuthCode.update(expires_at=time.time() - 1).where(SandboxOAuthCode.code == code).execute()
    with pytest.raises(WeChatOAuthException) as exc:
        oauth.fetch_access_token(code)
    assert exc.value.errcode == 40029
    oauth, res = _authorize(live, user, scope="snsapi_userinfo")
    oauth.fetch_access_token(parse_qs(urlsplit(res.headers["Location"]).query)["code"][0])
    assert oauth.get_user_info()["nickname"] == "李四"
    assert oauth.check_access_token()


def test_oauth_checks_the_request(live):
    user = live.add_user()
    _, res = _authorize(live, user, redirect_uri="https://evil.example.com/cb")
    assert res.status_code == 200 and "10003" in res.text
    _, res = _authorize(live, user, state="not-alnum!")
    assert "10013" in res.text
    # Without a current phone user the sandbox asks who is using the phone.
    oauth = make_oauth(live.settings, live.url("/m/oauth"), state="x")
    res = requests.get(oauth.authorize_url, allow_redirects=False)
    assert res.status_code == 200 and user.openid in res.text
    picked = requests.post(
        oauth.authorize_url.split("#")[0], data={"as_openid": user.openid}, allow_redirects=False
    )
    assert picked.status_code == 302 and "code=" in picked.headers["Location"]
    assert picked.cookies["sandbox_openid"] == user.openid  # remembered for the next authorisation


# ---------------------------------------------------------------- safety


def test_sandbox_answers_loopback_only(tmp_path):
    app = create_app(defaults_for_tests(tmp_path))
    models.upgrade()
    client = app.test_client()
    remote = client.get("/sandbox/phone", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert remote.status_code == 403
    assert client.get("/sandbox/cgi-bin/token", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403
    assert client.get("/sandbox/phone", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/sandbox/phone", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_sandbox_refuses_a_real_appid(tmp_path):
    real = {"appid": "wx0123456789abcdef"}
    with pytest.raises(SandboxConfigError, match="allow_sandbox_with_real_appid"):
        create_app(defaults_for_tests(tmp_path, wechat=real))
    app = create_app(defaults_for_tests(tmp_path, wechat={**real, "allow_sandbox_with_real_appid": True}))
    assert any(r.rule == "/sandbox/cgi-bin/token" for r in app.url_map.iter_rules())
    off = create_app(defaults_for_tests(tmp_path, wechat={**real, "sandbox": False}))
    assert not any(r.rule.startswith("/sandbox") for r in off.url_map.iter_rules())


def test_template_send_posts_templatesendjobfinish_without_blocking(stub_server):
    live = stub_server
    user = live.add_user()
    live.app.config["STUB_SLOW_EVENTS"] = 1.0  # the app takes its time over the event
    started = time.monotonic()
    msgid = make_client(live.settings).send_template(user.openid, "TPL", GOOD_DATA)["msgid"]
    assert time.monotonic() - started < 0.9  # ...which the send call does not wait for
    relay.wait_for_deliveries(10)
    events = [m for m in live.app.config["RECEIVED"] if m.get("Event") == "TEMPLATESENDJOBFINISH"]
    assert [int(e["MsgID"]) for e in events] == [msgid] and events[0]["Status"] == "success"
    assert events[0]["FromUserName"] == user.openid
    row = SandboxTemplateMessage.get(SandboxTemplateMessage.msgid == msgid)
    assert row.event_status == "delivered"


@pytest.mark.parametrize("headers, base", [
    ({"X-Forwarded-For": "127.0.0.1"}, "http://127.0.0.1"),
    ({"Forwarded": "for=127.0.0.1"}, "http://127.0.0.1"),
    ({"X-Real-IP": "127.0.0.1"}, "http://127.0.0.1"),
    ({}, "http://evil.example.com"),
])
def test_sandbox_refuses_proxied_or_rebound_requests(tmp_path, headers, base) -> None:  # type: ignore[no-untyped-def]
    from app import create_app
    from settings import defaults_for_tests

    application = create_app(defaults_for_tests(tmp_path))
    r = application.test_client().get("/sandbox/phone", headers=headers, base_url=base)
    assert r.status_code == 403


def test_sandbox_still_serves_plain_loopback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app import create_app
    from settings import defaults_for_tests

    application = create_app(defaults_for_tests(tmp_path))
    assert application.test_client().get("/sandbox/phone", base_url="http://127.0.0.1:8000").status_code == 200
