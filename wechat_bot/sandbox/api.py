"""The server-to-server API (api.weixin.qq.com/cgi-bin/... and mp.weixin.qq.com's showqrcode)."""

from __future__ import annotations

import hmac
import io
import json
import secrets
from typing import Any

import qrcode
from flask import Blueprint, Response, abort, render_template, request

import models
from wechat_bot.sandbox import common, fields, relay
from wechat_bot.sandbox.common import now, ok, wx_error, wx_json
from wechat_bot.store import SandboxKV, SandboxQRCode, SandboxTemplateMessage, SandboxToken, SandboxUser

MENU_TYPES = {
    "click",
    "view",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "media_id",
    "view_limited",
    "article_id",
    "article_view_limited",
    "miniprogram",
}
QR_ACTIONS = {"QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"}
QR_MAX_EXPIRE = 30 * 24 * 3600
QR_DEFAULT_EXPIRE = 60
DEDUP_SECONDS = 600


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/cgi-bin/token", view_func=token)
    bp.add_url_rule("/cgi-bin/menu/create", view_func=menu_create, methods=["POST"])
    bp.add_url_rule("/cgi-bin/menu/get", view_func=menu_get)
    bp.add_url_rule("/cgi-bin/menu/delete", view_func=menu_delete)
    bp.add_url_rule("/cgi-bin/message/template/send", view_func=template_send, methods=["POST"])
    bp.add_url_rule("/cgi-bin/qrcode/create", view_func=qrcode_create, methods=["POST"])
    bp.add_url_rule("/cgi-bin/showqrcode", view_func=showqrcode)
    bp.add_url_rule("/q/<code>", view_func=qr_landing)
    bp.add_url_rule("/cgi-bin/user/info", view_func=user_info)
    bp.add_url_rule("/cgi-bin/user/get", view_func=user_get)
    bp.add_url_rule("/cgi-bin/<path:rest>", view_func=not_implemented, methods=["GET", "POST"])


# ---------------------------------------------------------------- access token


def token() -> Response:
    """GET cgi-bin/token?grant_type=client_credential&appid=&secret= -> {access_token, expires_in}.
    A new token leaves older ones valid for SANDBOX_TOKEN_OVERLAP seconds more, as WeChat does."""
    s = common.settings().wechat
    args = request.args
    if args.get("grant_type") != "client_credential":
        return wx_error(40002)
    if not args.get("appid"):
        return wx_error(41002)
    if args["appid"] != s.appid:
        return wx_error(40013)
    if not args.get("secret"):
        return wx_error(41004)
    if not hmac.compare_digest(args["secret"].encode(), s.appsecret.encode()):
        return wx_error(40125)
    expires_in = int(common.conf("SANDBOX_TOKEN_EXPIRES_IN"))
    t = now()
    value = common.random_string(136)
    with models.db.atomic():
        cutoff = t + float(common.conf("SANDBOX_TOKEN_OVERLAP"))
        (
            SandboxToken.update(expires_at=cutoff, superseded_at=t)
            .where(
                (SandboxToken.kind == "client")
                & (SandboxToken.superseded_at.is_null())
                & (SandboxToken.expires_at > cutoff)
            )
            .execute()
        )
        (
            SandboxToken.update(superseded_at=t)
            .where((SandboxToken.kind == "client") & (SandboxToken.superseded_at.is_null()))
            .execute()
        )
        SandboxToken.create(token=value, kind="client", issued_at=t, expires_at=t + expires_in)
    return wx_json({"access_token": value, "expires_in": expires_in})


# ---------------------------------------------------------------- menu


def _check_menu(menu: Any) -> int | None:
    """The errcode for an invalid menu, None when WeChat would take it."""
    buttons = menu.get("button") if isinstance(menu, dict) else None
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        return 40016
    for b in buttons:
        if not isinstance(b, dict) or not 0 < len(str(b.get("name", "")).encode()) <= 16:
            return 40018
        subs = b.get("sub_button")
        if subs:
            if not isinstance(subs, list) or len(subs) > 5:
                return 40023
            for sb in subs:
                if not isinstance(sb, dict) or not 0 < len(str(sb.get("name", "")).encode()) <= 60:
                    return 40025
                code = _check_leaf(sb, sub=True)
                if code:
                    return code
        else:
            code = _check_leaf(b, sub=False)
            if code:
                return code
    return None


def _check_leaf(b: dict[str, Any], sub: bool) -> int | None:
    kind = b.get("type")
    if kind not in MENU_TYPES:
        return 40024 if sub else 40017
    if kind == "click" and not 0 < len(str(b.get("key", "")).encode()) <= 128:
        return 40026 if sub else 40019
    if kind == "view" and not 0 < len(str(b.get("url", "")).encode()) <= 1024:
        return 40027 if sub else 40097
    return None


def menu_create() -> Response:
    err = common.check_access_token()
    if err:
        return err
    menu, err = common.json_body()
    if err:
        return err
    code = _check_menu(menu)
    if code:
        return wx_error(code)
    SandboxKV.write("menu", {"button": menu["button"]})  # type: ignore[index]
    return ok()


def menu_get() -> Response:
    err = common.check_access_token()
    if err:
        return err
    menu = SandboxKV.read("menu")
    if not menu:
        return wx_error(46003)
    return wx_json({"menu": menu})


def menu_delete() -> Response:
    err = common.check_access_token()
    if err:
        return err
    SandboxKV.remove("menu")
    return ok()


# ---------------------------------------------------------------- template messages


def template_send() -> Response:
    """POST cgi-bin/message/template/send: validate, record for the user's phone, and post
    TEMPLATESENDJOBFINISH to the app in the background."""
    body, err = common.authorized_json()
    if body is None:
        return err  # type: ignore[return-value]
    openid = str(body.get("touser") or "")
    user = SandboxUser.get_or_none(SandboxUser.openid == openid)
    if user is None:
        return wx_error(40003)
    if not user.subscribed:
        return wx_error(43004)
    template_id = body.get("template_id")
    if not isinstance(template_id, str) or not 0 < len(template_id) <= 128:
        return wx_error(40037)
    problem = fields.check_data(body.get("data"))
    if problem:
        return wx_error(47003, problem)
    client_msg_id = str(body.get("client_msg_id") or "")[:64]
    t = now()
    with models.db.atomic():
        if client_msg_id:
            M = SandboxTemplateMessage
            earlier = (
                M.select()
                .where(
                    (M.openid == openid)
                    & (M.client_msg_id == client_msg_id)
                    & (M.created_at > t - DEDUP_SECONDS)
                )
                .first()
            )
            if earlier is not None:
                return ok(msgid=int(earlier.msgid))
        msgid = _new_msgid()
        SandboxTemplateMessage.create(
            msgid=msgid,
            openid=openid,
            template_id=template_id,
            url=str(body.get("url") or ""),
            miniprogram=body.get("miniprogram"),
            data_json=json.dumps(body["data"], ensure_ascii=False),
            client_msg_id=client_msg_id,
            created_at=t,
        )
    if common.conf("SANDBOX_DELIVER_EVENTS"):
        relay.deliver_later(
            common.settings(),
            current_mode(),
            msgid,
            delay=float(common.conf("SANDBOX_EVENT_DELAY")),
            timeout=float(common.conf("SANDBOX_REPLY_TIMEOUT")),
        )
    return ok(msgid=msgid)


def _new_msgid() -> int:
    return 2_000_000_000 + secrets.randbelow(10**15)


def current_mode() -> str:
    """How the simulated WeChat posts to the app: plain, compat or aes (safe mode, the default with a key)."""
    mode = SandboxKV.read("mode")
    if mode in relay.MODES:
        return str(mode)
    return "aes" if common.settings().wechat.encoding_aes_key else "plain"


# ---------------------------------------------------------------- QR codes


def qrcode_create() -> Response:
    """POST cgi-bin/qrcode/create for the four parametric kinds."""
    body, err = common.authorized_json()
    if body is None:
        return err  # type: ignore[return-value]
    action = body.get("action_name")
    if action not in QR_ACTIONS:
        return wx_error(40097, "action_name")
    scene_info = (
        (body.get("action_info") or {}).get("scene") if isinstance(body.get("action_info"), dict) else None
    )
    if not isinstance(scene_info, dict):
        return wx_error(40097, "action_info")
    if action.endswith("STR_SCENE"):
        scene = scene_info.get("scene_str")
        if not isinstance(scene, str) or not 1 <= len(scene) <= 64:
            return wx_error(40097, "scene_str must be 1-64 characters")
    else:
        sid = scene_info.get("scene_id")
        limit = 100_000 if action == "QR_LIMIT_SCENE" else 2**32 - 1
        if isinstance(sid, bool) or not isinstance(sid, int) or not 1 <= sid <= limit:
            return wx_error(40097, f"scene_id must be 1-{limit}")
        scene = str(sid)
    permanent = action.startswith("QR_LIMIT")
    if permanent:
        existing = SandboxQRCode.get_or_none(
            (SandboxQRCode.action_name == action) & (SandboxQRCode.scene == scene)
        )
        if existing is not None:
            return wx_json({"ticket": existing.ticket, "url": _qr_url(existing.code)})
        expire = None
    else:
        expire = body.get("expire_seconds", QR_DEFAULT_EXPIRE)
        if isinstance(expire, bool) or not isinstance(expire, int) or not 1 <= expire <= QR_MAX_EXPIRE:
            return wx_error(40097, "expire_seconds must be 1-2592000")
    code = common.random_string(22, common.ALNUM)
    ticket = "gQ" + common.random_string(94, common.ALNUM) + "=="
    SandboxQRCode.create(
        ticket=ticket,
        code=code,
        action_name=action,
        scene=scene,
        expires_at=None if expire is None else now() + expire,
    )
    result: dict[str, Any] = {"ticket": ticket, "url": _qr_url(code)}
    if expire is not None:
        result = {"ticket": ticket, "expire_seconds": expire, "url": result["url"]}
    return wx_json(result)


def _qr_url(code: str) -> str:
    return common.settings().server.base_url.rstrip("/") + f"/sandbox/q/{code}"


def find_qrcode(ticket_or_url: str) -> SandboxQRCode | None:
    """A live QR code by ticket or by its url (what a phone reads from the image)."""
    key = ticket_or_url.strip()
    row = SandboxQRCode.get_or_none(SandboxQRCode.ticket == key)
    if row is None and "/q/" in key:
        row = SandboxQRCode.get_or_none(SandboxQRCode.code == key.rsplit("/q/", 1)[1].strip("/"))
    if row is not None and row.expires_at is not None and row.expires_at <= now():
        return None
    return row


def showqrcode() -> Response:
    """GET cgi-bin/showqrcode?ticket= -> the QR image (PNG) encoding the code's url."""
    row = find_qrcode(request.args.get("ticket", ""))
    if row is None:
        abort(404)
    img = qrcode.make(_qr_url(row.code))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return Response(buf.getvalue(), mimetype="image/png")


def qr_landing(code: str) -> str:
    """What a phone camera outside WeChat would open: tell the user to scan in the simulator."""
    row = SandboxQRCode.get_or_none(SandboxQRCode.code == code)
    if row is None:
        abort(404)
    return render_template("wechat_sandbox/qr_landing.html", row=row)


# ---------------------------------------------------------------- users


def user_info() -> Response:
    err = common.check_access_token()
    if err:
        return err
    user = SandboxUser.get_or_none(SandboxUser.openid == request.args.get("openid", ""))
    if user is None:
        return wx_error(40003)
    if not user.subscribed:
        return wx_json({"subscribe": 0, "openid": user.openid})
    scene_id = user.qr_scene if user.qr_scene.isdigit() else ""
    return wx_json(
        {
            "subscribe": 1,
            "openid": user.openid,
            "language": "zh_CN",
            "subscribe_time": int(user.subscribe_time or 0),
            "remark": "",
            "groupid": 0,
            "tagid_list": [],
            "subscribe_scene": "ADD_SCENE_QR_CODE" if user.qr_scene else "ADD_SCENE_SEARCH",
            "qr_scene": int(scene_id or 0),
            "qr_scene_str": "" if scene_id else user.qr_scene,
        }
    )


def user_get() -> Response:
    err = common.check_access_token()
    if err:
        return err
    openids = [u.openid for u in SandboxUser.select().where(SandboxUser.subscribed).order_by(SandboxUser.id)]
    return wx_json(
        {
            "total": len(openids),
            "count": len(openids),
            "data": {"openid": openids},
            "next_openid": openids[-1] if openids else "",
        }
    )


def not_implemented(rest: str) -> Response:
    err = common.check_access_token()
    if err:
        return err
    return wx_error(48001, f"(cgi-bin/{rest} is not simulated by the sandbox)")
