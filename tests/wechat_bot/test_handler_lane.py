"""The /wechat fast lane (handler.MessageLane) answers exactly as the Flask view does.

create_app puts the lane in front of Flask; these tests send the same requests once through the
lane and once through the blueprint view (the lane taken out of the WSGI chain) and compare what
WeChat would see. Requests are built from WeChat's documentation by the protocol helpers.
"""
from __future__ import annotations

import http.client
import logging
import secrets
import socket
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import peewee as pw
import pytest
from wechatpy import parse_message
from wechatpy.replies import TextReply

import models
from tests.wechat_bot.test_handler_protocol import OPENID, WeChat, sha1_sign, text_xml
from wechat_bot import handler


def _fields(response: Any) -> dict[str, str] | str:
    text = response.get_data(as_text=True)
    if not text.startswith("<xml>"):
        return text
    fields = {child.tag: child.text or "" for child in ET.fromstring(text)}
    fields.pop("CreateTime")
    return fields


@pytest.fixture
def wx(client: Any, settings: Any) -> WeChat:
    return WeChat(client, settings)


@pytest.fixture
def both(app: Any, client: Any) -> Callable[[Callable[[], Any]], tuple[Any, Any]]:
    """Run a request through the lane and through the Flask view; (lane, view) responses."""
    lane = app.wsgi_app
    assert isinstance(lane, handler.MessageLane)

    def run(send: Callable[[], Any]) -> tuple[Any, Any]:
        through_lane = send()
        app.wsgi_app = lane.wsgi_app
        try:
            through_view = send()
        finally:
            app.wsgi_app = lane
        return through_lane, through_view

    return run


def _same(pair: tuple[Any, Any], status: int) -> dict[str, str] | str:
    lane, view = pair
    assert lane.status_code == view.status_code == status, (lane.status_code, view.status_code)
    assert lane.mimetype == view.mimetype
    assert _fields(lane) == _fields(view)
    return _fields(lane)


def _signed_query(token: str, **extra: str) -> dict[str, str]:
    ts, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
    return {"signature": sha1_sign(token, ts, nonce), "timestamp": ts, "nonce": nonce, **extra}


def test_text_message_same_reply(both: Any, wx: WeChat) -> None:
    # the same MsgId twice: the view's request is WeChat's retry and gets the lane's answer
    body = text_xml(OPENID, "帮助", msg_id=secrets.randbelow(10**15))
    fields = _same(both(lambda: wx.post(body)), 200)
    assert isinstance(fields, dict) and fields["ToUserName"] == OPENID and fields["MsgType"] == "text"
    assert "绑定" in fields["Content"]


def test_safe_mode_same_reply(both: Any, wx: WeChat) -> None:
    lane, view = both(lambda: wx.post(text_xml(OPENID, "帮助"), mode="aes"))
    assert wx.reply(lane) is not None
    lane_reply, view_reply = wx.reply(lane), wx.reply(view)
    assert lane_reply is not None and view_reply is not None
    lane_reply.pop("CreateTime"), view_reply.pop("CreateTime")
    assert lane_reply == view_reply


def test_url_check(both: Any, client: Any, settings: Any) -> None:
    query = _signed_query(settings.wechat.token, echostr="1234567890abc")
    assert _same(both(lambda: client.get("/wechat", query_string=query)), 200) == "1234567890abc"
    query.pop("echostr")
    assert _same(both(lambda: client.get("/wechat", query_string=query)), 400) == "missing echostr"
    assert _same(both(lambda: client.get("/wechat?echostr=x")), 403) == "forbidden"


@pytest.mark.parametrize(("case", "status"), [
    ("wrong signature", 403), ("stale timestamp", 403), ("first signature wins", 403), ("too large", 413),
    ("declared too large", 413), ("doctype", 400), ("empty body", 400), ("not xml", 400),
    ("not utf-8", 400), ("hostile ToUserName", 400),
])
def test_refusals_are_the_same(both: Any, client: Any, settings: Any, case: str, status: int) -> None:
    token = settings.wechat.token
    query: Any = _signed_query(token)
    body = text_xml(OPENID, "帮助").encode()
    headers: dict[str, str] = {}
    if case == "wrong signature":
        query["signature"] = "0" * 40
    elif case == "stale timestamp":
        ts = str(int(time.time()) - 3600)
        query.update(timestamp=ts, signature=sha1_sign(token, ts, query["nonce"]))
    elif case == "first signature wins":  # ?signature=wrong&signature=right is not signed
        query = [("signature", "0" * 40), *query.items()]
    elif case == "too large":
        body = b"<xml>" + b"a" * (handler.MAX_BODY_BYTES + 1) + b"</xml>"
    elif case == "declared too large":
        headers["Content-Length"] = str(10 * 1024 * 1024)
    elif case == "doctype":
        body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + body
    elif case == "empty body":
        body = b""
    elif case == "not xml":
        body = b"{\"MsgType\": \"text\"}"
    elif case == "not utf-8":
        body = text_xml(OPENID, "帮助").encode("utf-16")
    elif case == "hostile ToUserName":
        body = text_xml(OPENID, "帮助").replace("gh_test000000000", "gh_x]]><a>1</a>").encode()

    def send() -> Any:
        qs = urllib.parse.urlencode(query)
        if case == "declared too large":  # a lying header: the test client would refuse to send it
            return client.open(f"/wechat?{qs}", method="POST", data=body, content_type="text/xml",
                               environ_overrides={"CONTENT_LENGTH": headers["Content-Length"]})
        return client.post(f"/wechat?{qs}", data=body, content_type="text/xml")

    before = models.db.execute_sql("SELECT COUNT(*) FROM wechat_message_seen").fetchone()[0]
    _same(both(send), status)
    assert models.db.execute_sql("SELECT COUNT(*) FROM wechat_message_seen").fetchone()[0] == before


def test_other_methods_and_paths_go_to_flask(client: Any, settings: Any) -> None:
    assert client.put("/wechat", query_string=_signed_query(settings.wechat.token)).status_code == 405
    assert client.get("/wechat/").status_code == 404
    assert client.get("/healthz").status_code == 200


def test_text_reply_xml_is_wechatpys_rendering() -> None:
    msg = parse_message(text_xml(OPENID, "进度"))
    content = "您好！\n请先绑定：https://example.com/m/bind?x=1&y=2"
    ours = ET.fromstring(handler.text_reply_xml(msg, content))
    theirs = ET.fromstring(TextReply(message=msg, content=content).render())
    stamp = {"CreateTime": ours.findtext("CreateTime")}
    assert {c.tag: c.text for c in ours} == {c.tag: c.text for c in theirs} | stamp
    assert abs(int(ours.findtext("CreateTime") or 0) - time.time()) < 5


def test_lane_returns_the_connection_to_the_pool(app: Any, wx: WeChat) -> None:
    pool = models.db.obj
    if not hasattr(pool, "_in_use"):
        pytest.skip("database without a connection pool")
    for _ in range(5):
        assert wx.say(OPENID, "帮助")
    assert models.db.is_closed()
    assert not pool._in_use


def test_database_down_is_a_plain_500_and_logged(app: Any, client: Any, settings: Any,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise pw.OperationalError("could not connect to server")

    monkeypatch.setattr(models.db.obj, "connect", refuse)
    with caplog.at_level(logging.ERROR, logger="wechat_bot.handler"):
        r = client.post("/wechat", query_string=_signed_query(settings.wechat.token),
                        data=text_xml(OPENID, "帮助").encode(), content_type="text/xml")
    assert r.status_code == 500 and r.get_data(as_text=True) == "internal error"
    assert "request failed" in caplog.text


def test_chunked_body_through_a_real_server(live: Any) -> None:
    """A body without Content-Length (chunked) is read by the lane when the server terminates it."""
    qs = urllib.parse.urlencode(_signed_query(live.settings.wechat.token))
    host, port = live.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = text_xml(OPENID, "帮助").encode()
    conn.request("POST", f"/wechat?{qs}", body=iter([body[:40], body[40:]]),
                 headers={"Content-Type": "text/xml"}, encode_chunked=True)
    r = conn.getresponse()
    text = r.read().decode()
    assert r.status == 200, text
    assert "<Content><![CDATA[" in text and OPENID in text


def test_broken_chunked_body_is_a_400(live: Any) -> None:
    qs = urllib.parse.urlencode(_signed_query(live.settings.wechat.token))
    host, port = live.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /wechat?{qs} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nnot-a-chunk-size\r\n<xml/>\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


@pytest.mark.parametrize("raw_echostr", ["%FFab", "é", "%E4%BD%A0%E5%A5%BD", "a+b%20c", "%zz"])
def test_query_strings_are_decoded_alike(both: Any, client: Any, settings: Any, raw_echostr: str) -> None:
    """The lane reads QUERY_STRING as werkzeug's request.args does (raw UTF-8, invalid escapes kept)."""
    query = urllib.parse.urlencode(_signed_query(settings.wechat.token)) + "&echostr=" + raw_echostr
    environ = {"QUERY_STRING": query.encode("utf-8").decode("latin-1")}  # as a WSGI server hands it over
    lane, view = both(lambda: client.get("/wechat", environ_overrides=environ))
    assert lane.status_code == view.status_code == 200
    assert lane.get_data() == view.get_data()


@pytest.mark.parametrize("content_length,chunked", [("2_7_3", False), ("+20", False), ("-5", False), ("abc", False),
                                                    ("20", True)])
def test_odd_content_lengths_are_read_alike(both: Any, client: Any, settings: Any, content_length: str,
                                            chunked: bool) -> None:
    body = text_xml(OPENID, "帮助").encode()
    environ = {"CONTENT_LENGTH": content_length}
    if chunked:  # a length beside Transfer-Encoding: chunked is ignored
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"

    def send() -> Any:
        return client.post("/wechat", query_string=_signed_query(settings.wechat.token), data=body,
                           content_type="text/xml", environ_overrides=environ)

    lane, view = both(send)
    assert (lane.status_code, _fields(lane)) == (view.status_code, _fields(view))


def test_head_is_a_url_check_not_a_message(both: Any, client: Any, settings: Any) -> None:
    before = models.db.execute_sql("SELECT COUNT(*) FROM wechat_message_seen").fetchone()[0]
    query = _signed_query(settings.wechat.token, echostr="42")
    lane, view = both(lambda: client.open("/wechat", method="HEAD", query_string=query,
                                          data=text_xml(OPENID, "帮助").encode(), content_type="text/xml"))
    assert lane.status_code == view.status_code == 200 and lane.get_data() == b""
    assert models.db.execute_sql("SELECT COUNT(*) FROM wechat_message_seen").fetchone()[0] == before


@pytest.mark.parametrize("mode", ["safe", "compatible"])
def test_an_encrypting_account_refuses_unencrypted_messages(settings: Any, mode: str) -> None:
    """Review finding: with safe mode set up, a plain message was still accepted – and plain mode's URL
    signature does not cover the body, so one URL seen in a log let anyone post as anyone."""
    import dataclasses

    from app import create_app

    encrypting = dataclasses.replace(settings, wechat=dataclasses.replace(settings.wechat, message_mode=mode))
    app = create_app(encrypting)
    wx = WeChat(app.test_client(), encrypting)
    before = models.db.execute_sql("SELECT COUNT(*) FROM wechat_message_seen").fetchone()[0]
    assert wx.post(text_xml(OPENID, "帮助"), mode="plain").status_code == 403
    assert models.db.execute_sql("SELECT COUNT(*) FROM wechat_message_seen").fetchone()[0] == before
    assert wx.say(OPENID, "帮助", mode="aes")
    assert wx.say(OPENID, "帮助", mode="compat")
