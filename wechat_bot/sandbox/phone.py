"""The phone simulator: a mobile page that acts as a WeChat user of the official account.

Everything the user does becomes what WeChat would post to the app's real ``/wechat`` endpoint
(signed, optionally encrypted – see ``relay``); the reply is decoded and shown as a chat bubble.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

import models
from wechat_bot.client import REAL_OAUTH_BASE
from wechat_bot.sandbox import ACCOUNT_ID, api, common, relay
from wechat_bot.sandbox.common import now
from wechat_bot.sandbox.oauth import COOKIE, current_user, redirect_allowed
from wechat_bot.store import SandboxKV, SandboxMessageLog, SandboxTemplateMessage, SandboxUser

COOKIE_PATH = "/sandbox"


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/phone", view_func=phone, endpoint="phone")
    bp.add_url_rule("/phone/api/state", view_func=state)
    bp.add_url_rule("/phone/api/users", view_func=create_user, methods=["POST"])
    bp.add_url_rule("/phone/api/select", view_func=select_user, methods=["POST"])
    bp.add_url_rule("/phone/api/mode", view_func=set_mode, methods=["POST"])
    bp.add_url_rule("/phone/api/send", view_func=send, methods=["POST"])
    bp.add_url_rule("/phone/api/inbox", view_func=inbox)
    bp.add_url_rule("/phone/open", view_func=open_as_user)


def phone() -> str:
    return render_template("wechat_sandbox/phone.html", account=ACCOUNT_ID)


def _user_json(u: SandboxUser) -> dict[str, Any]:
    return {"openid": u.openid, "nickname": u.nickname, "subscribed": u.subscribed}


def switch_phone(resp: BaseResponse, openid: str) -> BaseResponse:
    """Make ``openid`` the simulator's current user. Each simulated user is a different phone: when the
    user changes, the app's session cookie is dropped too, so the app's pages log in again (via OAuth)."""
    previous = request.cookies.get(COOKIE, "")
    resp.set_cookie(COOKIE, openid, path=COOKIE_PATH, samesite="Lax")
    if previous and previous != openid:
        cfg = current_app.config
        resp.delete_cookie(
            cfg.get("SESSION_COOKIE_NAME") or "session",
            path=cfg.get("SESSION_COOKIE_PATH") or cfg.get("APPLICATION_ROOT") or "/",
            domain=cfg.get("SESSION_COOKIE_DOMAIN") or None,
        )
    return resp


def _with_cookie(payload: dict[str, Any], openid: str | None) -> BaseResponse:
    resp = jsonify(payload)
    return switch_phone(resp, openid) if openid else resp


def state() -> Response:
    """Users, the current user, the stored menu and the message mode."""
    me = current_user()
    users = [_user_json(u) for u in SandboxUser.select().order_by(SandboxUser.id)]
    return jsonify(
        users=users,
        current=_user_json(me) if me else None,
        menu=SandboxKV.read("menu"),
        mode=api.current_mode(),
        modes=list(relay.MODES),
        account=ACCOUNT_ID,
        server_url=relay.server_url(common.settings()),
        has_aes_key=bool(common.settings().wechat.encoding_aes_key),
    )


def _payload() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400)
    return data


def create_user() -> BaseResponse:
    """Create a simulated user (``nickname``); with ``subscribe`` true it follows the account at once."""
    data = _payload()
    nickname = str(data.get("nickname") or "").strip()[:32] or f"用户{secrets.randbelow(10000):04d}"
    openid = "o" + common.random_string(27)
    user = SandboxUser.create(openid=openid, nickname=nickname)
    result: dict[str, Any] = {"user": _user_json(user)}
    if data.get("subscribe", True):
        result["delivery"] = _subscribe(user, scene="", ticket="")
        result["user"] = _user_json(SandboxUser.get_by_id(user.id))
    return _with_cookie(result, openid)


def select_user() -> BaseResponse:
    openid = str(_payload().get("openid") or "")
    user = SandboxUser.get_or_none(SandboxUser.openid == openid)
    if user is None:
        abort(404)
    return _with_cookie({"user": _user_json(user)}, openid)


def set_mode() -> Response:
    mode = str(_payload().get("mode") or "")
    if mode not in relay.MODES:
        abort(400)
    SandboxKV.write("mode", mode)
    return jsonify(mode=mode)


# ---------------------------------------------------------------- sending to the app


def _deliver(
    user: SandboxUser, kind: str, summary: str, msg_type: str, fields: dict[str, Any]
) -> dict[str, Any]:
    xml = relay.message_xml(user.openid, msg_type, fields)
    d = relay.post_to_app(
        common.settings(),
        user.openid,
        xml,
        api.current_mode(),
        timeout=float(common.conf("SANDBOX_REPLY_TIMEOUT")),
    )
    SandboxMessageLog.create(
        openid=user.openid,
        kind=kind,
        summary=summary,
        request_xml=d.request_xml,
        reply_xml=d.reply_xml,
        reply=d.reply,
        error=d.error,
    )
    return {
        "kind": kind,
        "summary": summary,
        "ok": d.ok,
        "status": d.status,
        "error": d.error,
        "reply": d.reply,
        "request_xml": d.request_xml,
        "reply_xml": d.reply_xml,
        "detail": d.detail,
    }


def _subscribe(user: SandboxUser, scene: str, ticket: str) -> dict[str, Any]:
    (
        SandboxUser.update(subscribed=True, subscribe_time=now(), qr_scene=scene)
        .where(SandboxUser.id == user.id)
        .execute()
    )
    fields: dict[str, Any] = {"Event": "subscribe"}
    if scene:
        fields.update(EventKey=f"qrscene_{scene}", Ticket=ticket)
    else:
        fields["EventKey"] = ""
    return _deliver(
        user, "event:subscribe", "关注公众号" + (f"（扫码 {scene}）" if scene else ""), "event", fields
    )


def send() -> Response:
    """One user action -> what WeChat posts to /wechat; answers the decoded reply (or a clear error)."""
    data = _payload()
    user = current_user()
    if user is None:
        return jsonify(ok=False, error="请先选择或创建一个用户"), 400  # type: ignore[return-value]
    kind = data.get("kind")
    if kind == "subscribe":
        return jsonify(_subscribe(user, "", ""))
    if kind == "unsubscribe":
        SandboxUser.update(subscribed=False).where(SandboxUser.id == user.id).execute()
        return jsonify(
            _deliver(user, "event:unsubscribe", "取消关注", "event", {"Event": "unsubscribe", "EventKey": ""})
        )
    if kind == "scan":
        return _scan(user, str(data.get("code") or ""))
    if not user.subscribed:
        return jsonify(
            ok=False, error="请先关注公众号"
        )  # WeChat cannot message an account one does not follow
    if kind == "text":
        content = str(data.get("content") or "")
        if not content.strip():
            abort(400)
        return jsonify(
            _deliver(
                user,
                "text",
                content,
                "text",
                {"Content": content, "MsgId": 10**18 + secrets.randbelow(10**18)},
            )
        )
    if kind == "click":
        key = str(data.get("key") or "")
        return jsonify(
            _deliver(
                user,
                "event:CLICK",
                f"点击菜单 {data.get('name') or key}",
                "event",
                {"Event": "CLICK", "EventKey": key},
            )
        )
    if kind == "view":
        url = str(data.get("url") or "")
        result = _deliver(
            user,
            "event:VIEW",
            f"打开菜单链接 {data.get('name') or url}",
            "event",
            {"Event": "VIEW", "EventKey": url},
        )
        result["open_url"] = url
        return jsonify(result)
    abort(400)


def _scan(user: SandboxUser, code: str) -> Response:
    """Scan a parametric QR code given by ticket, url or scene value."""
    from wechat_bot.store import SandboxQRCode as Q

    row = api.find_qrcode(code)
    if row is None and code:
        row = (
            Q.select()
            .where((Q.scene == code.strip()) & (Q.expires_at.is_null() | (Q.expires_at > now())))
            .order_by(Q.id.desc())
            .first()
        )
    if row is None:
        return jsonify(ok=False, error="二维码不存在或已过期")
    if not user.subscribed:
        return jsonify(_subscribe(user, row.scene, row.ticket))
    return jsonify(
        _deliver(
            user,
            "event:SCAN",
            f"扫码 {row.scene}",
            "event",
            {"Event": "SCAN", "EventKey": row.scene, "Ticket": row.ticket},
        )
    )


# ---------------------------------------------------------------- receiving


def inbox() -> Response:
    """The current user's template messages and chat history; also retries pending
    TEMPLATESENDJOBFINISH events (in the background) that no worker thread delivered."""
    user = current_user()
    if user is None:
        return jsonify(templates=[], log=[])
    _retry_pending_events()
    M = SandboxTemplateMessage
    templates = [
        {
            "msgid": str(m.msgid),
            "template_id": m.template_id,
            "url": m.url,
            "created_at": m.created_at,
            "fields": [
                {"key": k, "value": (v or {}).get("value", ""), "hidden": k in ("first", "remark")}
                for k, v in (m.data or {}).items()
            ],
            "event_status": m.event_status,
            "event_error": m.event_error,
        }
        for m in M.select().where(M.openid == user.openid).order_by(M.id.desc()).limit(50)
    ]
    L = SandboxMessageLog
    log = [
        {
            "id": r.id,
            "kind": r.kind,
            "summary": r.summary,
            "reply": r.reply,
            "error": r.error,
            "created_at": r.created_at,
            "request_xml": r.request_xml,
            "reply_xml": r.reply_xml,
        }
        for r in L.select().where(L.openid == user.openid).order_by(L.id.desc()).limit(50)
    ]
    return jsonify(templates=templates, log=log[::-1])


_retry_guard = threading.Lock()


def _retry_pending_events() -> None:
    M = SandboxTemplateMessage
    stale = (
        M.select()
        .where(
            (M.event_status == "pending") & (M.event_attempts < relay.ATTEMPTS) & (M.created_at < now() - 10)
        )
        .exists()
    )
    if not stale or not _retry_guard.acquire(blocking=False):
        return
    settings, mode = common.settings(), api.current_mode()
    timeout = float(common.conf("SANDBOX_REPLY_TIMEOUT"))

    def run() -> None:
        try:
            with models.db.connection_context():
                relay.deliver_template_events(settings, mode, timeout=timeout)
        except Exception:  # noqa: BLE001 - best effort
            relay.log.warning("sandbox: retrying template events failed", exc_info=True)
        finally:
            _retry_guard.release()

    threading.Thread(target=run, name="sandbox-event-retry", daemon=True).start()


def open_as_user() -> BaseResponse:
    """Open ``url`` in the browser as the simulator's user ``openid`` (template links, VIEW menus):
    the app's OAuth redirect then comes back to the sandbox's authorize page with that user."""
    url = request.args.get("url", "")
    if url.startswith(REAL_OAUTH_BASE):  # a link built for the real WeChat: authorize here instead
        base = common.settings().server.base_url.rstrip("/")
        url = base + "/sandbox/connect/" + url[len(REAL_OAUTH_BASE) :]
    if not redirect_allowed(url):  # only the app's own pages, as WeChat's web view with OAuth would
        abort(400)
    openid = request.args.get("openid") or request.cookies.get(COOKIE, "")
    resp = redirect(url, code=302)
    if SandboxUser.get_or_none(SandboxUser.openid == openid) is not None:
        switch_phone(resp, openid)
    return resp
