"""WeChat web login (snsapi_base) for the mobile pages: state bound to the session, single use, checked;
the code exchanged through wechatpy against the sandbox's sns/oauth2/access_token; no open redirect."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

import wechat_bot.pages_store  # noqa: F401 - registers the pages' tables before the schema is made
import wechat_bot.records  # noqa: F401
import wechat_bot.store  # noqa: F401
from wechat_bot import oauth
from wechat_bot.store import SandboxUser


@pytest.fixture
def app(app):  # type: ignore[no-untyped-def]
    from wechat_bot import pages

    pages.init_app(app)
    return app


def start_login(client: Any, path: str = "/m/agreements") -> tuple[str, dict[str, list[str]]]:
    r = client.get(path)
    assert r.status_code == 302
    return r.headers["Location"], parse_qs(urlsplit(r.headers["Location"]).query)


def test_page_redirects_to_wechat_authorize_with_session_bound_state(client: Any, app: Any) -> None:
    location, q = start_login(client, "/m/agreements?todo=1")
    s = app.config["TRIPACT"]
    assert location.startswith(s.server.base_url + "/sandbox/connect/oauth2/authorize?")
    assert location.endswith("#wechat_redirect")
    assert q["appid"] == [s.wechat.appid]
    assert q["redirect_uri"] == [s.server.base_url + "/m/oauth/callback"]
    assert q["response_type"] == ["code"] and q["scope"] == ["snsapi_base"]
    state = q["state"][0].split("#")[0]
    assert re.fullmatch(r"[A-Za-z0-9]{1,128}", state)
    with client.session_transaction() as sess:
        assert [state, "/m/agreements?todo=1"] in [item[:2] for item in sess[oauth.SESSION_STATES]]


def _state(location: str) -> str:
    return parse_qs(urlsplit(location).query)["state"][0].split("#")[0]


def test_callback_logs_in_rotates_session_and_returns(client: Any, app: Any) -> None:
    app.extensions[oauth.EXCHANGE_EXTENSION] = lambda code: "o_user_" + code
    location, _ = start_login(client, "/m/agreements?todo=1")
    with client.session_transaction() as sess:
        sess["leftover"] = "from before login"
    r = client.get(f"/m/oauth/callback?code=abc&state={_state(location)}")
    assert r.status_code == 302 and r.headers["Location"] == "/m/agreements?todo=1"
    with client.session_transaction() as sess:
        assert sess["openid"] == "o_user_abc"
        assert "leftover" not in sess


@pytest.mark.parametrize("state", ["", "forged123", "a" * 129, "bad-chars!"])
def test_forged_state_is_refused(client: Any, app: Any, state: str) -> None:
    app.extensions[oauth.EXCHANGE_EXTENSION] = lambda code: pytest.fail("must not exchange")  # type: ignore
    start_login(client)
    r = client.get("/m/oauth/callback", query_string={"code": "abc", "state": state})
    assert r.status_code == 403
    assert "登录链接无效" in r.get_data(as_text=True)


def test_reused_state_is_refused(client: Any, app: Any) -> None:
    app.extensions[oauth.EXCHANGE_EXTENSION] = lambda code: "o_user_1"
    location, _ = start_login(client)
    state = _state(location)
    assert client.get(f"/m/oauth/callback?code=c1&state={state}").status_code == 302
    assert client.get(f"/m/oauth/callback?code=c2&state={state}").status_code == 403


def test_a_state_replayed_with_the_cookie_from_before_the_callback_is_refused(client: Any, app: Any) -> None:
    """Review finding: the session is a signed cookie; replaying it as it was before the callback
    made a used state valid again."""
    app.extensions[oauth.EXCHANGE_EXTENSION] = lambda code: "o_user_1"
    location, _ = start_login(client)
    state = _state(location)
    before = client.get_cookie("session").value
    assert client.get(f"/m/oauth/callback?code=c1&state={state}").status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", before)
    assert replay.get(f"/m/oauth/callback?code=c2&state={state}").status_code == 403


def test_a_state_older_than_its_time_to_live_is_refused(client: Any, app: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    app.extensions[oauth.EXCHANGE_EXTENSION] = lambda code: "o_user_1"
    location, _ = start_login(client)
    later = time.time() + oauth.STATE_TTL_SECONDS + 5
    monkeypatch.setattr(oauth.time, "time", lambda: later)
    assert client.get(f"/m/oauth/callback?code=c1&state={_state(location)}").status_code == 403


def test_state_of_another_session_is_refused(app: Any) -> None:
    app.extensions[oauth.EXCHANGE_EXTENSION] = lambda code: "o_victim"
    attacker, victim = app.test_client(), app.test_client()
    location, _ = start_login(attacker)
    start_login(victim)
    assert victim.get(f"/m/oauth/callback?code=c&state={_state(location)}").status_code == 403


def test_failed_exchange_and_refused_authorisation(client: Any, app: Any) -> None:
    def boom(code: str) -> str:
        raise oauth.LoginFailed("code been used")
    app.extensions[oauth.EXCHANGE_EXTENSION] = boom
    location, _ = start_login(client)
    r = client.get(f"/m/oauth/callback?code=used&state={_state(location)}")
    assert r.status_code == 502 and "微信登录失败" in r.get_data(as_text=True)
    location, _ = start_login(client)
    r = client.get(f"/m/oauth/callback?state={_state(location)}")  # the user refused: no code
    assert r.status_code == 400


@pytest.mark.parametrize("target,expected", [
    ("/m/agreements/3", "/m/agreements/3"),
    ("https://evil.example/m/", "/m/"),
    ("//evil.example/m/", "/m/"),
    ("/m/\\evil", "/m/"),
    ("/admin/", "/m/"),
    ("/m/oauth/callback?x=1", "/m/"),
    (None, "/m/"),
])
def test_only_same_site_mobile_paths_are_followed(target: str | None, expected: str) -> None:
    assert oauth.safe_next(target) == expected


def test_real_code_exchange_against_the_sandbox(client: Any, app: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """wechatpy's WeChatOAuth, pointed at the sandbox, turns a sandbox code into the openid; the code
    is single-use at the sandbox too. HTTP calls to the base URL are served by the app in-process."""
    base = app.config["TRIPACT"].server.base_url
    sandbox = app.test_client()
    real_request = requests.Session.request

    def route(self: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
        if not url.startswith(base):
            return real_request(self, method, url, **kwargs)
        r = sandbox.open(url[len(base):], method=method.upper(), query_string=kwargs.get("params"))
        resp = requests.Response()
        resp.status_code, resp._content, resp.url = r.status_code, r.get_data(), url
        resp.headers.update(dict(r.headers))
        return resp

    monkeypatch.setattr(requests.Session, "request", route)
    user = SandboxUser.create(openid="o_sandbox_student_1", nickname="张三", subscribed=True)
    location, _ = start_login(client)
    client.set_cookie("sandbox_openid", user.openid, path="/sandbox")
    r = client.get(location.split(base, 1)[1].split("#")[0])  # the sandbox's authorize page
    assert r.status_code == 302
    callback = r.headers["Location"].split(base, 1)[1]
    assert callback.startswith("/m/oauth/callback?")
    r = client.get(callback)
    assert r.status_code == 302 and r.headers["Location"] == "/m/agreements"
    with client.session_transaction() as sess:
        assert sess["openid"] == user.openid
    # Replaying the same callback: the state is gone (403) before the used code is even tried.
    assert client.get(callback).status_code == 403
