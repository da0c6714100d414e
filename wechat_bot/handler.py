"""``/wechat``: the official account's message endpoint.

The view checks the signature, decrypts (safe and compatible modes), de-duplicates, dispatches to
``replies`` and answers within WeChat's 5 seconds (no network calls here; slow work goes to the
outbox). In order, a POST is refused with:

* 403 – missing or wrong ``signature`` (or ``msg_signature`` in AES mode), or a timestamp more than
  :data:`MAX_SKEW_SECONDS` from now (a replayed request);
* 413 – a body larger than :data:`MAX_BODY_BYTES` (by Content-Length or by what was actually read);
* 400 – a DOCTYPE/ENTITY declaration (XXE, billion laughs: refused before any parser sees it),
  non-XML, XML that is not a WeChat message, or an Encrypt that does not decrypt with our key.

Nothing is processed in any of these cases. WeChat's retries (text by MsgId, events by
FromUserName + CreateTime) are processed once, across processes: a unique-key insert in
``wechat_message_seen``, or Redis ``SET NX`` when ``[redis] url`` is set; a retry gets the first
attempt's reply when it is ready, else "success". An error inside a handler answers "success"
(WeChat would only retry into the same failure) and is logged with the message key.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler
from flask import Blueprint, Flask, Response, current_app, request
from wechatpy import create_reply
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner
from werkzeug.wsgi import get_content_length

import models
from settings import Settings
from wechat_bot import inbound, push, replies
from wechat_bot.records import WechatDeliveryReport, WechatMessageSeen

log = logging.getLogger(__name__)

bp = Blueprint("wechat_handler", __name__)

MAX_BODY_BYTES = 64 * 1024
"""Largest message body accepted; real messages are a few hundred bytes."""
MAX_SKEW_SECONDS = 300
"""Requests whose timestamp is further from now are refused as replays. WeChat retries within ~15 s."""
DEDUP_SECONDS = 900
"""How long a message key is remembered in Redis (WeChat retries for about 15 seconds)."""
PASSIVE_TEXT_BYTES = 2000
"""A passive text reply longer than this (WeChat's limit is 2048 bytes) is split; the rest is sent later."""
PURGE_EVERY = 1000
"""On average once per this many messages, forget database keys older than a day."""

@bp.route("/wechat", methods=["GET", "POST"])
def wechat() -> Response:
    """WeChat's server URL through Flask (apps without the :class:`MessageLane`, e.g. tests')."""
    settings: Settings = current_app.config["TRIPACT"]
    status, mimetype, body = respond(settings, request.method, request.args, lambda: _wsgi_body(request.environ))
    return Response(body, status=status, mimetype=mimetype)


def respond(settings: Settings, method: str, args: Mapping[str, str],
            read_body: Callable[[], bytes | None]) -> tuple[int, str, str]:
    """The whole endpoint: (status, mimetype, body) for one request. GET (and HEAD) is the URL check,
    POST a message or event; ``read_body`` returns the body, or None when it exceeds MAX_BODY_BYTES."""
    token = settings.wechat.token
    timestamp = args.get("timestamp", "")
    nonce = args.get("nonce", "")
    if not token or not _signed(args.get("signature", ""), token, timestamp, nonce):
        return 403, "text/plain", "forbidden"
    if method in ("GET", "HEAD"):  # Flask answers HEAD with the GET view (and drops the body)
        echostr = args.get("echostr")
        return (200, "text/plain", echostr) if echostr is not None else (400, "text/plain", "missing echostr")
    if not _fresh(timestamp):
        return 403, "text/plain", "stale timestamp"
    try:
        body = read_body()
    except inbound.BadMessage as exc:
        log.info("wechat: refused a message: %s", exc)
        return 400, "text/plain", "bad request"
    if body is None:
        return 413, "text/plain", "body too large"
    aes = args.get("encrypt_type", "raw").lower() == "aes"
    if not aes and settings.wechat.message_mode != "plain":
        # the account encrypts: an unencrypted message, whose body no signature covers, is forged
        log.warning("wechat: an unencrypted message refused (message_mode = %s)", settings.wechat.message_mode)
        return 403, "text/plain", "forbidden"
    crypto = None
    xml: bytes | str
    try:
        if aes:
            crypto = _crypto(settings)
            xml = _decrypt(crypto, body, args.get("msg_signature", ""), timestamp, nonce)
        else:
            xml = body
        msg, fields = inbound.parse(xml)
    except _Forbidden:
        return 403, "text/plain", "forbidden"
    except inbound.BadMessage as exc:
        log.info("wechat: refused a message: %s", exc)
        return 400, "text/plain", "bad request"
    reply_xml = _process(settings, msg, message_key(fields))
    if not reply_xml:
        return 200, "text/plain", "success"
    if crypto is not None:
        reply_xml = crypto.encrypt_message(reply_xml, nonce, str(int(time.time())))
    return 200, "application/xml", reply_xml


class MessageLane:
    """WSGI middleware that serves ``/wechat`` without Flask's request machinery.

    WeChat's message POSTs are the one hot, machine-to-machine route: no cookie, no session, no
    template, no user. Routing, request/app contexts and the before/teardown hooks cost as much
    as the message itself (bench/wechat.py), so this lane answers GET/POST ``/wechat`` directly
    through :func:`respond` – the same checks as the blueprint view – and hands every other
    request to Flask unchanged. It opens and closes the pooled database connection itself, as
    the app's request hooks do, and turns an unexpected error into a plain 500 (logged), as
    Flask would."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], settings: Settings) -> None:
        self.wsgi_app = wsgi_app
        self.settings = settings

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if environ.get("PATH_INFO") != "/wechat" or method not in ("GET", "POST"):
            return self.wsgi_app(environ, start_response)
        args: dict[str, str] = {}
        # decoded as werkzeug's request.args decodes it: the raw bytes as UTF-8, invalid escapes kept
        query = environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", "replace")
        for name, value in parse_qsl(query, keep_blank_values=True, errors="werkzeug.url_quote"):
            args.setdefault(name, value)  # the first of repeated parameters, as request.args.get
        try:
            models.db.connect(reuse_if_open=True)
            status, mimetype, body = respond(self.settings, method, args, lambda: _wsgi_body(environ))
        except Exception:  # noqa: BLE001 - outside the handlers (database down…): what Flask would answer
            log.exception("wechat: request failed")
            status, mimetype, body = 500, "text/plain", "internal error"
        finally:
            if not models.db.is_closed():
                models.db.close()
        data = body.encode("utf-8")
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", f"{mimetype}; charset=utf-8"), ("Content-Length", str(len(data)))])
        return [data]


def install_lane(app: Flask, settings: Settings) -> None:
    """Put the :class:`MessageLane` in front of ``app``."""
    app.wsgi_app = MessageLane(app.wsgi_app, settings)  # type: ignore[method-assign]


# ---------------------------------------------------------------- checks

class _Forbidden(Exception):
    pass


def _signed(signature: str, token: str, timestamp: str, nonce: str, *extra: str) -> bool:
    """WeChat's signature: sha1 of the sorted [token, timestamp, nonce(, encrypt)], compared in
    constant time (wechatpy's check_signature compares with ``!=``)."""
    if not signature or not timestamp or not nonce:
        return False
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce, *extra)
    return hmac.compare_digest(str(signer.signature).encode(), signature.encode("utf-8", "replace"))


def _fresh(timestamp: str) -> bool:
    try:
        return abs(time.time() - int(timestamp)) <= MAX_SKEW_SECONDS
    except ValueError:
        return False


def _wsgi_body(environ: dict[str, Any]) -> bytes | None:
    """The body from the WSGI environ (for the lane and the blueprint view alike) by werkzeug's rules
    (``get_input_stream``): a stream the server terminates (chunked; gunicorn always) is read as it
    is; otherwise at most Content-Length bytes, none without a length, and a malformed length or one
    beside ``Transfer-Encoding: chunked`` counts as werkzeug counts it. None when the body is larger
    than MAX_BODY_BYTES; a body that cannot be read is a :class:`inbound.BadMessage`."""
    declared = get_content_length(environ)
    if declared is not None and declared > MAX_BODY_BYTES:
        return None
    stream = environ["wsgi.input"]
    try:
        if environ.get("wsgi.input_terminated"):
            data = stream.read(MAX_BODY_BYTES + 1)
        elif declared is None:
            return b""
        else:
            data = stream.read(declared)
    except (OSError, ValueError) as exc:  # a broken chunked encoding, a client gone mid-body
        raise inbound.BadMessage(f"body could not be read ({type(exc).__name__})") from exc
    return None if len(data) > MAX_BODY_BYTES else data


def _crypto(settings: Settings) -> WeChatCrypto:
    key = settings.wechat.encoding_aes_key
    if not key:
        raise inbound.BadMessage("encrypted message but no encoding_aes_key configured")
    return WeChatCrypto(settings.wechat.token, key, settings.wechat.appid)


def _decrypt(crypto: WeChatCrypto, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
    envelope = inbound.xml_fields(inbound.utf8(body))
    encrypt = envelope.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise inbound.BadMessage("safe mode without Encrypt")
    if not _signed(msg_signature, crypto.token, timestamp, nonce, encrypt):
        raise _Forbidden()
    try:
        return str(crypto.decrypt_message({"Encrypt": encrypt}, msg_signature, timestamp, nonce))
    except Exception as exc:  # noqa: BLE001 - wrong key: bad padding, bad length, bad UTF-8, wrong appid
        raise inbound.BadMessage(f"Encrypt does not decrypt ({type(exc).__name__})") from exc


# ---------------------------------------------------------------- de-duplication and dispatch

def message_key(fields: dict[str, Any]) -> str | None:
    """What identifies a message across WeChat's retries: MsgId; for events FromUserName + CreateTime
    (+ the event and its key, so that two taps on different menu items in one second stay apart;
    a retry repeats them all)."""
    if fields.get("MsgType") == "event":
        if fields.get("MsgID"):  # TEMPLATESENDJOBFINISH and other job reports
            return f"job:{fields['MsgID']}"
        event_key = hashlib.sha1(str(fields.get("EventKey") or "").encode()).hexdigest()[:12]
        event = str(fields.get("Event") or "")[:40]
        return f"evt:{fields['FromUserName']}:{fields['CreateTime']}:{event}:{event_key}"
    msg_id = fields.get("MsgId")
    return f"msg:{msg_id}" if msg_id else None


def loggable(key: str | None) -> str:
    """A message key for the logs: event keys keep only the start of the openid."""
    if key is None:
        return "message without id"
    kind, _, rest = key.partition(":")
    if kind == "evt":
        openid, _, tail = rest.partition(":")
        return f"evt:{openid[:6]}…:{tail}"
    return key


class _Seen:
    """The de-duplication store: Redis when configured, else the database."""

    def __init__(self, settings: Settings) -> None:
        self.redis = None
        if settings.redis.url:
            from wechat_bot.client import redis_client

            self.redis = redis_client(settings.redis.url)

    def _rkey(self, key: str) -> str:
        return "tripact:wechat:seen:" + key

    def claim(self, key: str, reply_xml: str = "") -> bool:
        """Take ``key`` (True for the first taker), storing ``reply_xml`` with it when already known."""
        if secrets.randbelow(PURGE_EVERY) == 0:  # housekeeping without a scheduler of its own
            WechatMessageSeen.purge()
            WechatDeliveryReport.purge()
        if self.redis is not None:
            return bool(self.redis.set(self._rkey(key), reply_xml, nx=True, ex=DEDUP_SECONDS))
        return WechatMessageSeen.claim(key, reply_xml)

    def cached(self, key: str) -> str:
        if self.redis is not None:
            value = self.redis.get(self._rkey(key))
            return value.decode("utf-8") if value else ""
        return WechatMessageSeen.cached_reply(key)

    def remember(self, key: str, reply_xml: str) -> None:
        if not reply_xml:
            return
        if self.redis is not None:
            self.redis.set(self._rkey(key), reply_xml, xx=True, ex=DEDUP_SECONDS)
        else:
            WechatMessageSeen.remember_reply(key, reply_xml)


def _process(settings: Settings, msg: Any, key: str | None) -> str:
    """Run the message's handler once; return the plain reply XML ("" for no reply)."""
    try:
        seen = _Seen(settings)
        if key is not None and replies.registry.is_read_only(msg):
            # Answering changes nothing: answer first, then claim with the reply in one write; a
            # retry that lost the race gets the first answer. (A reply long enough to queue its rest
            # has a side effect, so it takes the claim-first path below.)
            reply = replies.dispatch(replies.Incoming(msg, settings))
            if not _needs_split(reply):
                reply_xml = _render(reply, msg)
                if seen.claim(key, reply_xml):
                    return reply_xml
                log.info("wechat: duplicate %s", loggable(key))
                return seen.cached(key)
        if key is not None and not seen.claim(key):
            log.info("wechat: duplicate %s", loggable(key))
            return seen.cached(key)
        reply = replies.dispatch(replies.Incoming(msg, settings))
        reply_xml = _render(reply, msg)
        if key is not None:
            seen.remember(key, reply_xml)
        return reply_xml
    except Exception:  # noqa: BLE001 - WeChat must get "success", not a retry into the same failure
        log.exception("wechat: handling %s (%s) failed", loggable(key), getattr(msg, "type", "?"))
        return ""


def _needs_split(reply: replies.Reply) -> bool:
    """Whether the text, as it will be sent (escaped), is too long for one passive reply."""
    return isinstance(reply, str) and len(_escaped(reply).encode("utf-8")) > PASSIVE_TEXT_BYTES


def _escaped(text: str) -> str:
    """The text as sent: ``]]>`` cannot end the CDATA early, and ``<``/``>`` are full-width – WeChat
    renders <a href> in text messages, and user-supplied text (a termination reason, a unit name)
    must not become a link inside the official account's own chat."""
    return text.replace("]]>", "]] >").replace("<", "＜").replace(">", "＞")


def _render(reply: replies.Reply, msg: Any) -> str:
    """The reply XML; a text too long for a passive reply is split and the rest queued."""
    if reply is None or reply == "":
        return ""
    if isinstance(reply, str):
        reply = _escaped(reply)  # the bot's own wording uses plain URLs only
        if len(reply.encode("utf-8")) > PASSIVE_TEXT_BYTES:
            parts = split_text(reply, PASSIVE_TEXT_BYTES)
            for part in parts[1:]:
                push.send_text_later(str(msg.source), part)
            reply = parts[0]
        return text_reply_xml(msg, reply)
    return str(create_reply(reply, msg, render=True))


def text_reply_xml(msg: Any, content: str) -> str:
    """A passive text reply, as wechatpy's ``TextReply.render`` writes it, without its per-field
    descriptor machinery (a tenth of what answering a message costs). ``content`` must already be
    free of ``]]>``; both user names were checked by :func:`inbound.parse`."""
    return (f"<xml>\n<MsgType><![CDATA[text]]></MsgType>\n"
            f"<FromUserName><![CDATA[{msg.target}]]></FromUserName>\n"
            f"<ToUserName><![CDATA[{msg.source}]]></ToUserName>\n"
            f"<CreateTime>{int(time.time())}</CreateTime>\n"
            f"<Content><![CDATA[{content}]]></Content>\n</xml>")


def split_text(text: str, limit: int) -> list[str]:
    """Split at line ends into parts of at most ``limit`` UTF-8 bytes (a long line is cut)."""
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode("utf-8")) > limit:
            cut = len(line.encode("utf-8")[:limit].decode("utf-8", "ignore"))
            parts, current = parts + ([current] if current else []), ""
            parts.append(line[:cut])
            line = line[cut:]
        if len((current + line).encode("utf-8")) > limit:
            parts.append(current)
            current = ""
        current += line
    if current:
        parts.append(current)
    return [p.rstrip("\n") for p in parts if p.strip()]


__all__ = ["bp", "respond", "MessageLane", "install_lane", "message_key", "split_text", "text_reply_xml",
           "MAX_BODY_BYTES", "MAX_SKEW_SECONDS"]
