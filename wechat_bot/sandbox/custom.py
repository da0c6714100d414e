"""cgi-bin/message/custom/send: customer-service messages, allowed within 48 hours of the user's last
interaction with the account (a message, a menu tap, a scan, subscribing) – errcode 45015 otherwise.
Delivered messages appear in the simulator's chat."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from wechat_bot.sandbox import common
from wechat_bot.sandbox.common import now, ok, wx_error
from wechat_bot.store import SandboxMessageLog, SandboxUser

WINDOW_SECONDS = 48 * 3600


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/cgi-bin/message/custom/send", view_func=custom_send, methods=["POST"])


def _reply_of(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The chat bubble for a customer-service message and a one-line summary."""
    kind = body.get("msgtype")
    part = body.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict):
        return None, ""
    if kind == "text":
        content = part.get("content")
        if not isinstance(content, str) or not content:
            return None, ""
        return {"type": "text", "content": content}, content
    if kind == "news":
        articles = part.get("articles")
        if not isinstance(articles, list) or not articles:
            return None, ""
        items = [
            {
                "title": str(a.get("title") or ""),
                "description": str(a.get("description") or ""),
                "url": str(a.get("url") or ""),
                "picurl": str(a.get("picurl") or ""),
            }
            for a in articles
            if isinstance(a, dict)
        ]
        return {"type": "news", "articles": items}, items[0]["title"] if items else ""
    return {"type": kind, "content": f"[{kind} 消息]"}, f"[{kind}]"


def custom_send() -> Response:
    body, err = common.authorized_json()
    if body is None:
        return err  # type: ignore[return-value]
    openid = str(body.get("touser") or "")
    user = SandboxUser.get_or_none(SandboxUser.openid == openid)
    if user is None:
        return wx_error(40003)
    reply, summary = _reply_of(body)
    if reply is None:
        return wx_error(40097, "msgtype/content")
    L = SandboxMessageLog
    recent = (
        L.select()
        .where(
            (L.openid == openid)
            & (L.kind != "custom")
            & (L.kind != "event:unsubscribe")
            & (L.created_at > now() - WINDOW_SECONDS)
        )
        .exists()
    )
    if not user.subscribed or not recent:
        return wx_error(45015)
    SandboxMessageLog.create(openid=openid, kind="custom", summary=summary, reply=reply)
    return ok()
