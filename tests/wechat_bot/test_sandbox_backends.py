"""The sandbox's and the client's tables on every database backend (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import time

import pytest

from settings import defaults_for_tests
from wechat_bot import client as wc
from wechat_bot.store import SandboxOAuthCode, SandboxUser


@pytest.fixture
def backend_app(any_db, tmp_path):
    from app import create_app

    settings = defaults_for_tests(tmp_path, database={"url": any_db})
    app = create_app(settings)
    app.config["SANDBOX_DELIVER_EVENTS"] = False  # nothing listens at base_url
    return app, settings


def test_sandbox_state_on_every_backend(backend_app):
    app, settings = backend_app
    http = app.test_client()
    w = settings.wechat
    args = {"grant_type": "client_credential", "appid": w.appid, "secret": w.appsecret}
    first = http.get("/sandbox/cgi-bin/token", query_string=args).get_json()["access_token"]
    second = http.get("/sandbox/cgi-bin/token", query_string=args).get_json()["access_token"]
    assert (
        http.get("/sandbox/cgi-bin/menu/get", query_string={"access_token": first}).get_json()["errcode"]
        == 46003
    )

    user = SandboxUser.create(openid="o_backend_user", nickname="测试", subscribed=True)
    body = {
        "touser": user.openid,
        "template_id": "T",
        "data": {"thing1": {"value": "你好"}},
        "client_msg_id": "c1",
    }
    sent = [
        http.post("/sandbox/cgi-bin/message/template/send", query_string={"access_token": second}, json=body)
        for _ in range(2)
    ]
    assert sent[0].get_json()["msgid"] == sent[1].get_json()["msgid"]

    SandboxOAuthCode.create(code="c0de", openid=user.openid, scope="snsapi_base", expires_at=time.time() + 60)
    exchange = {"appid": w.appid, "secret": w.appsecret, "code": "c0de", "grant_type": "authorization_code"}
    assert (
        http.get("/sandbox/sns/oauth2/access_token", query_string=exchange).get_json()["openid"]
        == user.openid
    )
    assert http.get("/sandbox/sns/oauth2/access_token", query_string=exchange).get_json()["errcode"] == 40163


def test_token_storage_and_lease_on_every_backend(backend_app):
    store = wc.DatabaseStorage()
    store.set("k", {"access_token": "t", "expires_at": 1.5})
    store.set("k", {"access_token": "u", "expires_at": 2.5}, ttl=60)
    assert store.get("k") == {"access_token": "u", "expires_at": 2.5}
    a, b = wc.Lease("refresh", ttl_ms=100), wc.Lease("refresh", ttl_ms=100)
    assert a.acquire() and not b.acquire()
    time.sleep(0.12)
    assert b.acquire()
    b.release()
