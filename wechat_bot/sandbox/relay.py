"""Talking to the app's ``/wechat`` endpoint exactly as WeChat does.

WeChat POSTs the message XML to the configured server URL (here ``<server.base_url>/wechat``) with
query parameters ``signature`` (sha1 of the sorted [token, timestamp, nonce]), ``timestamp``, ``nonce``
and ``openid``. In safe mode (``aes``) it adds ``encrypt_type=aes`` and ``msg_signature`` (sha1 of the
sorted [token, timestamp, nonce, Encrypt]) and the body carries only ``ToUserName`` and ``Encrypt``
(AES-256-CBC of the message, wechatpy's PrpCrypto); compatible mode (``compat``) sends both the plain
fields and ``Encrypt``. It waits 5 seconds for the reply and, on a timeout, tries again with the same
message, three attempts in all. A reply of ``""`` or ``success`` means "no reply".
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
import xmltodict
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import WeChatSigner, to_text

import models
from settings import Settings
from wechat_bot.sandbox import ACCOUNT_ID

log = logging.getLogger(__name__)

MODES = ("plain", "compat", "aes")
ATTEMPTS = 3
UNAVAILABLE = "该公众号暂时无法提供服务，请稍后再试"


def cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_xml(openid: str, msg_type: str, fields: dict[str, Any], create_time: int | None = None) -> str:
    """The XML WeChat posts for a message or event from ``openid`` (string values as CDATA)."""
    parts = [
        f"<ToUserName>{cdata(ACCOUNT_ID)}</ToUserName>",
        f"<FromUserName>{cdata(openid)}</FromUserName>",
        f"<CreateTime>{create_time or int(time.time())}</CreateTime>",
        f"<MsgType>{cdata(msg_type)}</MsgType>",
    ]
    for name, value in fields.items():
        parts.append(
            f"<{name}>{value}</{name}>" if isinstance(value, int) else f"<{name}>{cdata(str(value))}</{name}>"
        )
    return "<xml>" + "".join(parts) + "</xml>"


def sign(*values: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*values)
    return str(signer.signature)


@dataclass
class Delivery:
    """The outcome of one message posted to the app."""

    request_xml: str
    status: int | None = None
    reply_xml: str = ""
    reply: dict[str, Any] | None = (
        None  # {"type": "text", "content": ...} / {"type": "news", "articles": [...]}
    )
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error


def server_url(settings: Settings) -> str:
    return settings.server.base_url.rstrip("/") + "/wechat"


def post_to_app(
    settings: Settings, openid: str, xml: str, mode: str, timeout: float = 5.0, attempts: int = ATTEMPTS
) -> Delivery:
    """POST ``xml`` to the app as WeChat would; decode the reply."""
    token = settings.wechat.token
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    params = {
        "signature": sign(token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": openid,
    }
    body = xml
    if mode in ("aes", "compat"):
        if not settings.wechat.encoding_aes_key:
            return Delivery(xml, error="安全模式需要配置 encoding_aes_key")
        key = WeChatCrypto(token, settings.wechat.encoding_aes_key, settings.wechat.appid).key
        encrypt = to_text(PrpCrypto(key).encrypt(xml, settings.wechat.appid))
        params.update(encrypt_type="aes", msg_signature=sign(token, timestamp, nonce, encrypt))
        if mode == "aes":
            body = (
                f"<xml><ToUserName>{cdata(ACCOUNT_ID)}</ToUserName><Encrypt>{cdata(encrypt)}</Encrypt></xml>"
            )
        else:
            body = xml[: -len("</xml>")] + f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>"
    result = Delivery(xml, detail={"url": server_url(settings), "mode": mode})
    for attempt in range(1, attempts + 1):
        try:
            res = requests.post(
                server_url(settings),
                params=params,
                data=body.encode("utf-8"),
                timeout=timeout,
                headers={"Content-Type": "text/xml", "User-Agent": "Mozilla/4.0"},
            )
        except requests.Timeout:
            result.error = f"{UNAVAILABLE}（{timeout:g} 秒内没有回复，第 {attempt} 次）"
            continue
        except requests.RequestException as exc:
            result.error = f"{UNAVAILABLE}（无法连接 {server_url(settings)}：{type(exc).__name__}）"
            return result
        result.status = res.status_code
        result.detail["attempts"] = attempt
        if res.status_code != 200:
            result.error = f"{UNAVAILABLE}（/wechat 返回 HTTP {res.status_code}）"
            return result
        result.error = ""
        _decode_reply(settings, res.text, mode, openid, result)
        return result
    return result


def _decode_reply(settings: Settings, text: str, mode: str, openid: str, result: Delivery) -> None:
    result.reply_xml = text
    if text.strip() in ("", "success"):
        result.reply = None
        return
    try:
        doc = xmltodict.parse(text)["xml"]
        if "Encrypt" in doc:
            crypto = WeChatCrypto(
                settings.wechat.token, settings.wechat.encoding_aes_key, settings.wechat.appid
            )
            plain = crypto.decrypt_message(
                text, doc.get("MsgSignature"), doc.get("TimeStamp"), doc.get("Nonce")
            )
            result.reply_xml = to_text(plain)
            doc = xmltodict.parse(result.reply_xml)["xml"]
        elif mode == "aes":
            result.detail["warning"] = "安全模式下回复未加密"
    except Exception as exc:  # noqa: BLE001 - any malformed reply is shown to the simulator user
        result.error = f"{UNAVAILABLE}（回复无法解析：{type(exc).__name__}）"
        return
    if doc.get("ToUserName") != openid:
        result.detail["warning"] = "回复的 ToUserName 与用户 openid 不一致"
    msg_type = doc.get("MsgType") or ""
    if msg_type == "text":
        result.reply = {"type": "text", "content": doc.get("Content") or ""}
    elif msg_type == "news":
        items = (doc.get("Articles") or {}).get("item") or []
        items = items if isinstance(items, list) else [items]
        result.reply = {
            "type": "news",
            "articles": [
                {
                    "title": i.get("Title") or "",
                    "description": i.get("Description") or "",
                    "picurl": i.get("PicUrl") or "",
                    "url": i.get("Url") or "",
                }
                for i in items
            ],
        }
    else:
        result.reply = {"type": msg_type or "unknown", "content": f"[{msg_type} 消息]"}


# ---------------------------------------------------------------- TEMPLATESENDJOBFINISH

_threads: set[threading.Thread] = set()
_threads_guard = threading.Lock()


def deliver_template_events(
    settings: Settings, mode: str, timeout: float = 5.0, msgid: int | None = None
) -> int:
    """Post TEMPLATESENDJOBFINISH for pending template messages (one, or all); return how many were tried.
    Best effort: the app's answer is recorded, never raised."""
    from wechat_bot.store import SandboxTemplateMessage as M

    query = M.select().where((M.event_status == "pending") & (M.event_attempts < ATTEMPTS))
    if msgid is not None:
        query = query.where(M.msgid == msgid)
    tried = 0
    for msg in list(query.limit(20)):
        # Claim the row so two workers (or the thread and a poll) do not both post it.
        claimed = (
            M.update(event_attempts=M.event_attempts + 1)
            .where((M.id == msg.id) & (M.event_attempts == msg.event_attempts))
            .execute()
        )
        if not claimed:
            continue
        tried += 1
        xml = message_xml(
            msg.openid,
            "event",
            {"Event": "TEMPLATESENDJOBFINISH", "MsgID": int(msg.msgid), "Status": "success"},
            create_time=int(msg.created_at),
        )
        outcome = post_to_app(settings, msg.openid, xml, mode, timeout=timeout, attempts=1)
        status = (
            "delivered" if outcome.ok else ("failed" if msg.event_attempts + 1 >= ATTEMPTS else "pending")
        )
        M.update(event_status=status, event_error=outcome.error).where(M.id == msg.id).execute()
    return tried


def deliver_later(settings: Settings, mode: str, msgid: int, delay: float, timeout: float) -> None:
    """Post the TEMPLATESENDJOBFINISH of ``msgid`` from a background thread after ``delay`` seconds."""

    def run() -> None:
        try:
            time.sleep(delay)
            with models.db.connection_context():
                deliver_template_events(settings, mode, timeout=timeout, msgid=msgid)
        except Exception:  # noqa: BLE001 - best effort; the phone page's poll retries
            log.warning("sandbox: TEMPLATESENDJOBFINISH for msgid %s not delivered", msgid, exc_info=True)
        finally:
            with _threads_guard:
                _threads.discard(threading.current_thread())

    t = threading.Thread(target=run, name=f"sandbox-event-{msgid}", daemon=True)
    with _threads_guard:
        _threads.add(t)
    t.start()


def wait_for_deliveries(timeout: float = 10.0) -> None:
    """Wait for the background event deliveries of this process (tests)."""
    deadline = time.monotonic() + timeout
    while True:
        with _threads_guard:
            pending = list(_threads)
        if not pending or time.monotonic() > deadline:
            return
        pending[0].join(max(0.0, deadline - time.monotonic()))
