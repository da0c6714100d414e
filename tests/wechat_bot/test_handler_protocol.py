"""/wechat as WeChat's servers see it: URL check, plain / compatible / safe (AES) messages, refusals.

Signatures and encryption are built here from WeChat's documentation, not with the app's helpers
or wechatpy: signature = sha1 of the sorted, concatenated [token, timestamp, nonce]; safe mode
encrypts ``16 random bytes + 4-byte big-endian length + xml + appid`` with AES-256-CBC, key =
base64decode(EncodingAESKey + "="), iv = key[:16], PKCS#7 padding to a multiple of 32, and signs
msg_signature = sha1 of the sorted [token, timestamp, nonce, Encrypt]. The helpers are reused by the
other test_handler*/test_replies*/test_push* modules.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import os
import secrets
import struct
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wechat_bot import handler

ACCOUNT = "gh_test000000000"


# ---------------------------------------------------------------- WeChat's side, from the documentation

def sha1_sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_xml(openid: str, msg_type: str, create_time: int | None = None, **fields: Any) -> str:
    parts = [f"<ToUserName>{cdata(ACCOUNT)}</ToUserName>", f"<FromUserName>{cdata(openid)}</FromUserName>",
             f"<CreateTime>{create_time or int(time.time())}</CreateTime>",
             f"<MsgType>{cdata(msg_type)}</MsgType>"]
    for name, value in fields.items():
        text = str(value) if isinstance(value, int) else cdata(str(value))
        parts.append(f"<{name}>{text}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def text_xml(openid: str, content: str, msg_id: int | None = None, create_time: int | None = None) -> str:
    msg_id = msg_id or secrets.randbelow(10**18)
    return message_xml(openid, "text", create_time, Content=content, MsgId=msg_id)


_event_clock = itertools.count(int(time.time()))


def event_xml(openid: str, event: str, create_time: int | None = None, **fields: Any) -> str:
    """An event; by default each gets its own CreateTime (WeChat treats same sender + second as a retry)."""
    return message_xml(openid, "event", create_time or next(_event_clock), Event=event, **fields)


def aes_key_bytes(encoding_aes_key: str) -> bytes:
    return base64.b64decode(encoding_aes_key + "=")


def aes_encrypt(xml: str, encoding_aes_key: str, appid: str) -> str:
    key = aes_key_bytes(encoding_aes_key)
    body = xml.encode("utf-8")
    plain = os.urandom(16) + struct.pack(">I", len(body)) + body + appid.encode("utf-8")
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode("ascii")


def aes_decrypt(encrypt: str, encoding_aes_key: str) -> tuple[str, str]:
    """(xml, appid) from an Encrypt value."""
    key = aes_key_bytes(encoding_aes_key)
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = dec.update(base64.b64decode(encrypt)) + dec.finalize()
    plain = plain[:-plain[-1]]
    length = struct.unpack(">I", plain[16:20])[0]
    return plain[20:20 + length].decode("utf-8"), plain[20 + length:].decode("utf-8")


class WeChat:
    """Posts to /wechat the way WeChat's servers do, through a Flask test client or a real URL."""

    def __init__(self, client: Any, settings: Any, mode: str = "plain") -> None:
        self.client = client
        self.token = settings.wechat.token
        self.aes_key = settings.wechat.encoding_aes_key
        self.appid = settings.wechat.appid
        self.mode = mode

    def params(self, body_xml: str, *, mode: str | None = None, timestamp: int | None = None,
               aes_key: str | None = None) -> tuple[dict[str, str], str]:
        mode = mode or self.mode
        ts, nonce = str(timestamp or int(time.time())), str(secrets.randbelow(10**10))
        params = {"signature": sha1_sign(self.token, ts, nonce), "timestamp": ts, "nonce": nonce,
                  "openid": "x"}
        body = body_xml
        if mode in ("aes", "compat"):
            encrypt = aes_encrypt(body_xml, aes_key or self.aes_key, self.appid)
            params.update(encrypt_type="aes", msg_signature=sha1_sign(self.token, ts, nonce, encrypt))
            if mode == "aes":
                body = (f"<xml><ToUserName>{cdata(ACCOUNT)}</ToUserName>"
                        f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>")
            else:
                body = body_xml[:-len("</xml>")] + f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>"
        return params, body

    def post(self, body_xml: str, **kw: Any) -> Any:
        params, body = self.params(body_xml, **kw)
        return self.client.post("/wechat", query_string=params, data=body.encode("utf-8"),
                                content_type="text/xml")

    def reply(self, response: Any) -> dict[str, str] | None:
        """The reply's fields (decrypted in safe mode); None for "success"/empty."""
        text = response.get_data(as_text=True)
        assert response.status_code == 200, (response.status_code, text)
        if text.strip() in ("", "success"):
            return None
        root = ET.fromstring(text)
        encrypt = root.findtext("Encrypt")
        if encrypt is not None:
            ts, nonce = root.findtext("TimeStamp") or "", root.findtext("Nonce") or ""
            assert root.findtext("MsgSignature") == sha1_sign(self.token, ts, nonce, encrypt)
            xml, appid = aes_decrypt(encrypt, self.aes_key)
            assert appid == self.appid
            root = ET.fromstring(xml)
        return {child.tag: child.text or "" for child in root}

    def say(self, openid: str, content: str, **kw: Any) -> str | None:
        """Send a text; return the reply's Content (None for no reply)."""
        r = self.reply(self.post(text_xml(openid, content), **kw))
        return r["Content"] if r else None

    def event(self, openid: str, event: str, **fields: Any) -> str | None:
        r = self.reply(self.post(event_xml(openid, event, **fields)))
        return r["Content"] if r else None


@pytest.fixture
def app(app):  # type: ignore[no-untyped-def]
    """The app with the message endpoint (until wechat_bot.init_app registers it itself)."""
    if "wechat_handler" not in app.blueprints:
        app.register_blueprint(handler.bp)
    return app


@pytest.fixture
def wx(client, settings) -> WeChat:  # type: ignore[no-untyped-def]
    return WeChat(client, settings)


OPENID = "oTestUser0000000000000000001"


# ---------------------------------------------------------------- URL check

def test_url_check_echoes_echostr(client, settings) -> None:  # type: ignore[no-untyped-def]
    ts, nonce, echostr = str(int(time.time())), "12345", "7312980312786342163"
    r = client.get("/wechat", query_string={"signature": sha1_sign(settings.wechat.token, ts, nonce),
                                            "timestamp": ts, "nonce": nonce, "echostr": echostr})
    assert r.status_code == 200
    assert r.get_data(as_text=True) == echostr


@pytest.mark.parametrize("change", ["signature", "missing", "token"])
def test_url_check_refuses_bad_signature(client, settings, change: str) -> None:  # type: ignore[no-untyped-def]
    ts, nonce = str(int(time.time())), "12345"
    sig = sha1_sign("other-token" if change == "token" else settings.wechat.token, ts, nonce)
    params = {"signature": sig[:-1] + ("0" if sig[-1] != "0" else "1") if change == "signature" else sig,
              "timestamp": ts, "nonce": nonce, "echostr": "abc"}
    if change == "missing":
        del params["signature"]
    r = client.get("/wechat", query_string=params)
    assert r.status_code == 403
    assert "abc" not in r.get_data(as_text=True)


# ---------------------------------------------------------------- the three modes

@pytest.mark.parametrize("mode", ["plain", "compat", "aes"])
def test_text_message_in_every_mode(wx: WeChat, mode: str) -> None:
    wx.mode = mode
    response = wx.post(text_xml(OPENID, "帮助"))
    reply = wx.reply(response)
    assert reply is not None
    assert reply["MsgType"] == "text" and reply["ToUserName"] == OPENID and reply["FromUserName"] == ACCOUNT
    assert "进度" in reply["Content"] and "/m/bind" in reply["Content"]
    if mode != "plain":
        assert b"<Encrypt>" in response.data and "帮助".encode() not in response.data


def test_replayed_message_in_safe_mode_gets_the_same_reply_freshly_encrypted(wx: WeChat) -> None:
    wx.mode = "aes"
    xml = text_xml(OPENID, "帮助", msg_id=6_000_000_001)
    first, second = wx.post(xml), wx.post(xml)
    assert first.data != second.data  # new nonce and random prefix
    assert wx.reply(first) == wx.reply(second)


def test_encrypted_message_decides_not_the_plain_copy(wx: WeChat, settings) -> None:  # type: ignore[no-untyped-def]
    # Compatible mode carries plain fields too; only the signed, encrypted content counts.
    params, body = wx.params(text_xml(OPENID, "帮助"), mode="compat")
    body = body.replace(cdata("帮助"), cdata("胡说八道"))
    reply = wx.reply(wx.client.post("/wechat", query_string=params, data=body.encode(),
                                    content_type="text/xml"))
    assert reply is not None and "进度 – 查看我的协议进度" in reply["Content"]
    assert not reply["Content"].startswith("抱歉")


# ---------------------------------------------------------------- refusals: nothing processed

def _processed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    from wechat_bot import replies

    real = replies.dispatch

    def spy(incoming: Any) -> Any:
        calls.append(incoming)
        return real(incoming)
    monkeypatch.setattr(replies, "dispatch", spy)
    return calls


def test_bad_signature_is_refused(wx: WeChat, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _processed(monkeypatch)
    params, body = wx.params(text_xml(OPENID, "帮助"))
    params["signature"] = "0" * 40
    assert wx.client.post("/wechat", query_string=params, data=body).status_code == 403
    del params["signature"]
    assert wx.client.post("/wechat", query_string=params, data=body).status_code == 403
    assert calls == []


def test_bad_msg_signature_is_refused(wx: WeChat, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _processed(monkeypatch)
    params, body = wx.params(text_xml(OPENID, "帮助"), mode="aes")
    params["msg_signature"] = sha1_sign("x", "y")
    assert wx.client.post("/wechat", query_string=params, data=body).status_code == 403
    assert calls == []


def test_wrong_aes_key_is_refused(wx: WeChat, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _processed(monkeypatch)
    other_key = base64.b64encode(os.urandom(32)).decode()[:43]
    for _ in range(5):  # random keys fail in different places: padding, length, UTF-8, appid
        r = wx.post(text_xml(OPENID, "帮助"), mode="aes", aes_key=other_key)
        assert r.status_code == 400
        other_key = base64.b64encode(os.urandom(32)).decode()[:43]
    assert calls == []


@pytest.mark.parametrize("skew", [-3600, 3600, -400])
def test_stale_or_future_timestamp_is_refused(wx: WeChat, monkeypatch: pytest.MonkeyPatch, skew: int) -> None:
    calls = _processed(monkeypatch)
    r = wx.post(text_xml(OPENID, "帮助"), timestamp=int(time.time()) + skew)
    assert r.status_code == 403
    assert calls == []


def test_retry_delay_within_tolerance_is_accepted(wx: WeChat) -> None:
    assert wx.reply(wx.post(text_xml(OPENID, "帮助"), timestamp=int(time.time()) - 60)) is not None


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                            for i in range(1, 10))
                  + ']><xml><ToUserName>a</ToUserName><FromUserName>oX</FromUserName>'
                  '<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol9;</Content>'
                  '<MsgId>1</MsgId></xml>')
XXE = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       '<xml><ToUserName>a</ToUserName><FromUserName>oX</FromUserName><CreateTime>1</CreateTime>'
       '<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>2</MsgId></xml>')
XXE_PARAM = ('<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>'
             '<xml><MsgType>text</MsgType></xml>')


HOSTILE = {
    "billion-laughs": BILLION_LAUGHS, "xxe": XXE, "xxe-parameter": XXE_PARAM,
    "xxe-lowercase": XXE.replace("DOCTYPE", "doctype"), "text": "not xml at all",
    "json": '{"MsgType": "text"}', "unclosed": "<xml><MsgType>text</MsgType>", "html": "<html><body/></html>",
    "no-children": "<xml>just text</xml>",
    "missing-fields": "<xml><MsgType>text</MsgType></xml>",
    "bad-openid": text_xml("oBad openid with spaces", "帮助"),
    "bad-msgid": message_xml(OPENID, "text", Content="x", MsgId="12abc"),
    "nested-msgtype": "<xml><ToUserName>a</ToUserName><FromUserName>oX</FromUserName>"
                      "<CreateTime>1</CreateTime><MsgType><a>b</a></MsgType></xml>",
    "garbage": "\xff\xfe<xml>", "empty": "",
}


@pytest.mark.parametrize("mode", ["plain", "aes"])
def test_hostile_or_malformed_bodies_get_400(wx: WeChat, monkeypatch: pytest.MonkeyPatch,
                                             mode: str) -> None:
    # One app for all the bodies (an app per case would make this the slowest test of the suite).
    calls = _processed(monkeypatch)
    for name, body in HOSTILE.items():
        r = wx.post(body, mode=mode)
        assert r.status_code == 400, (name, r.status_code, r.get_data(as_text=True))
    assert calls == []


def test_utf16_body_cannot_smuggle_a_doctype(wx: WeChat, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _processed(monkeypatch)
    body = BILLION_LAUGHS.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    params, _ = wx.params(body)
    r = wx.client.post("/wechat", query_string=params, data=body.encode("utf-16"), content_type="text/xml")
    assert r.status_code == 400
    assert calls == []


def test_entities_in_the_aes_envelope_are_refused(wx: WeChat) -> None:
    params, body = wx.params(text_xml(OPENID, "帮助"), mode="aes")
    body = '<!DOCTYPE x [<!ENTITY e "e">]>' + body
    assert wx.client.post("/wechat", query_string=params, data=body).status_code == 400


def test_ten_megabyte_body_is_refused_before_reading(wx: WeChat, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _processed(monkeypatch)
    big = text_xml(OPENID, "a" * (10 * 1024 * 1024))
    r = wx.post(big)
    assert r.status_code == 413
    assert calls == []


def test_body_just_over_the_limit_is_refused(wx: WeChat) -> None:
    body = text_xml(OPENID, "帮助")
    body = body[:-len("</xml>")] + "<Pad>" + "p" * (handler.MAX_BODY_BYTES - len(body)) + "</Pad></xml>"
    assert len(body.encode()) > handler.MAX_BODY_BYTES
    assert wx.post(body).status_code == 413


def test_unknown_message_types_get_a_helpful_answer(wx: WeChat) -> None:
    xml = message_xml(OPENID, "image", PicUrl="http://x/y.jpg", MediaId="m", MsgId=99)
    assert "文字消息" in (wx.reply(wx.post(xml)) or {}).get("Content", "")
    assert wx.event(OPENID, "VIEW", EventKey="http://127.0.0.1/m/") is None


def test_internal_error_answers_success_and_logs_the_message_id(wx: WeChat, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    from wechat_bot import replies

    def boom(incoming: Any) -> Any:
        raise RuntimeError("database on fire")
    monkeypatch.setattr(replies, "dispatch", boom)
    r = wx.post(text_xml(OPENID, "帮助", msg_id=424242))
    assert r.status_code == 200 and r.get_data(as_text=True) == "success"
    assert any("msg:424242" in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_long_reply_is_split_and_the_rest_queued(wx: WeChat, monkeypatch: pytest.MonkeyPatch) -> None:
    from models import OutboxJob
    from wechat_bot import replies

    long_text = "\n".join(f"第{i}行：" + "很长的内容" * 20 for i in range(40))
    monkeypatch.setitem(replies.registry.texts, "长", lambda m: long_text)
    reply = wx.say(OPENID, "长")
    assert reply is not None and len(reply.encode()) <= 2048
    queued = list(OutboxJob.select().where(OutboxJob.kind == "wechat_text"))
    assert queued and all(j.payload["openid"] == OPENID for j in queued)
    assert "\n".join([reply, *(j.payload["text"] for j in queued)]) == long_text


def test_split_text_respects_the_byte_limit() -> None:
    text = "一" * 3000 + "\n" + "short\n" * 3
    parts = handler.split_text(text, 2000)
    assert all(len(p.encode()) <= 2000 for p in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")


def test_chunked_body_without_length_is_cut_at_the_limit(serve: Any) -> None:
    """No Content-Length to check: the limit applies to what is actually read."""
    import requests

    from app import create_app

    def build(settings: Any) -> Any:
        application = create_app(settings)
        if "wechat_handler" not in application.blueprints:
            application.register_blueprint(handler.bp)
        return application
    live = serve(build)
    wx = WeChat(None, live.settings)
    body = text_xml(OPENID, "帮助")
    padded = body[:-len("</xml>")] + "<Pad>" + "p" * (2 * handler.MAX_BODY_BYTES) + "</Pad></xml>"

    def chunks(data: bytes) -> Any:
        for i in range(0, len(data), 8192):
            yield data[i:i + 8192]
    params, _ = wx.params(body)
    r = requests.post(live.url("/wechat"), params=params, data=chunks(padded.encode()), timeout=10)
    assert r.status_code == 413
    params, _ = wx.params(body)
    r = requests.post(live.url("/wechat"), params=params, data=chunks(body.encode()), timeout=10)
    assert r.status_code == 200 and "进度" in r.text
