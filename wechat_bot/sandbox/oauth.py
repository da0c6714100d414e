"""Web authorisation: open.weixin.qq.com/connect/oauth2/authorize and api.weixin.qq.com/sns/...

In WeChat the phone's user is known; in the sandbox it is the simulator's current user (cookie
``sandbox_openid``, set by the phone page). Without one, the authorize page asks who is using the phone.
"""

from __future__ import annotations

import hmac
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

import models
from wechat_bot.sandbox import common, is_loopback
from wechat_bot.sandbox.common import now, wx_error, wx_json
from wechat_bot.store import SandboxOAuthCode, SandboxToken, SandboxUser

COOKIE = "sandbox_openid"
SCOPES = ("snsapi_base", "snsapi_userinfo")
STATE_RE = re.compile(r"^[A-Za-z0-9]{0,128}\Z")
OAUTH_TOKEN_TTL = 7200
REFRESH_TTL = 30 * 24 * 3600


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/connect/oauth2/authorize", view_func=authorize, methods=["GET", "POST"])
    bp.add_url_rule("/sns/oauth2/access_token", view_func=sns_access_token)
    bp.add_url_rule("/sns/oauth2/refresh_token", view_func=sns_refresh_token)
    bp.add_url_rule("/sns/userinfo", view_func=sns_userinfo)
    bp.add_url_rule("/sns/auth", view_func=sns_auth)


def current_user() -> SandboxUser | None:
    openid = request.cookies.get(COOKIE, "")
    return SandboxUser.get_or_none(SandboxUser.openid == openid) if openid else None


def _error_page(errcode: int, message: str) -> tuple[str, int]:
    return render_template("wechat_sandbox/oauth_error.html", errcode=errcode, message=message), 200


def redirect_allowed(redirect_uri: str) -> bool:
    """WeChat only redirects to the configured web-authorisation domain (here: base_url's host)."""
    target = urlsplit(redirect_uri)
    if target.scheme not in ("http", "https") or not target.hostname:
        return False
    configured = urlsplit(common.settings().server.base_url).hostname or ""
    if target.hostname == configured:
        return True
    loopback_names = ("localhost",)
    both_local = (is_loopback(target.hostname) or target.hostname in loopback_names) and (
        is_loopback(configured) or configured in loopback_names
    )
    return both_local


def authorize() -> BaseResponse | tuple[str, int]:
    """Check the request as WeChat does, then redirect to redirect_uri?code=...&state=..."""
    args = request.values
    appid, redirect_uri, scope = args.get("appid", ""), args.get("redirect_uri", ""), args.get("scope", "")
    state = args.get("state", "")
    if not appid:
        return _error_page(10012, "appid 不能为空")
    if appid != common.settings().wechat.appid:
        return _error_page(10016, "appid 参数错误")
    if not redirect_uri:
        return _error_page(10011, "redirect_uri 不能为空")
    if not redirect_allowed(redirect_uri):
        return _error_page(10003, "redirect_uri 域名与后台配置不一致")
    if args.get("response_type") != "code":
        return _error_page(10004, "response_type 参数错误")
    if not scope:
        return _error_page(10010, "scope 不能为空")
    if scope not in SCOPES:
        return _error_page(10005, "此公众号并没有这些 scope 的权限")
    if not STATE_RE.match(state):
        return _error_page(10013, "state 只能是字母和数字，最多 128 字节")
    user = current_user()
    chosen = args.get("as_openid") if request.method == "POST" else None
    if chosen:
        user = SandboxUser.get_or_none(SandboxUser.openid == chosen)
    if user is None:
        users = list(SandboxUser.select().order_by(SandboxUser.id.desc()).limit(50))
        return render_template(
            "wechat_sandbox/oauth_pick.html",
            users=users,
            args=args,
            phone_url=url_for("wechat_sandbox.phone"),
        ), 200
    code = common.random_string(32, common.ALNUM)
    SandboxOAuthCode.create(
        code=code, openid=user.openid, scope=scope, expires_at=now() + float(common.conf("SANDBOX_CODE_TTL"))
    )
    resp = redirect(_with_query(redirect_uri, code=code, state=state), code=302)
    if chosen:
        resp.set_cookie(COOKIE, user.openid, path="/sandbox", samesite="Lax")
    return resp


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _check_app() -> Response | None:
    s = common.settings().wechat
    if request.args.get("appid") != s.appid:
        return wx_error(40013)
    return None


def _issue(openid: str, scope: str) -> dict[str, object]:
    t = now()
    access = common.random_string(88)
    refresh = common.random_string(88)
    SandboxToken.create(
        token=access, kind="oauth", openid=openid, scope=scope, issued_at=t, expires_at=t + OAUTH_TOKEN_TTL
    )
    SandboxToken.create(
        token=refresh,
        kind="oauth_refresh",
        openid=openid,
        scope=scope,
        issued_at=t,
        expires_at=t + REFRESH_TTL,
    )
    return {
        "access_token": access,
        "expires_in": OAUTH_TOKEN_TTL,
        "refresh_token": refresh,
        "openid": openid,
        "scope": scope,
    }


def sns_access_token() -> Response:
    """GET sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code."""
    err = _check_app()
    if err:
        return err
    if not hmac.compare_digest(
        request.args.get("secret", "").encode(), common.settings().wechat.appsecret.encode()
    ):
        return wx_error(40125)
    if request.args.get("grant_type") != "authorization_code":
        return wx_error(40002)
    code = request.args.get("code", "")
    if not code:
        return wx_error(41008)
    with models.db.atomic():
        row = SandboxOAuthCode.get_or_none(SandboxOAuthCode.code == code)
        if row is None or row.expires_at <= now():
            return wx_error(40029)
        # Single use, also across processes: only one UPDATE can flip used_at from NULL.
        claimed = (
            SandboxOAuthCode.update(used_at=now())
            .where((SandboxOAuthCode.id == row.id) & SandboxOAuthCode.used_at.is_null())
            .execute()
        )
        if not claimed:
            return wx_error(40163)
        return wx_json(_issue(row.openid, row.scope))


def sns_refresh_token() -> Response:
    err = _check_app()
    if err:
        return err
    if request.args.get("grant_type") != "refresh_token":
        return wx_error(40002)
    row = SandboxToken.get_or_none(
        (SandboxToken.token == request.args.get("refresh_token", "")) & (SandboxToken.kind == "oauth_refresh")
    )
    if row is None:
        return wx_error(40030)
    if row.expires_at <= now():
        return wx_error(42002)
    t = now()
    access = common.random_string(88)
    SandboxToken.create(
        token=access,
        kind="oauth",
        openid=row.openid,
        scope=row.scope,
        issued_at=t,
        expires_at=t + OAUTH_TOKEN_TTL,
    )
    return wx_json(
        {
            "access_token": access,
            "expires_in": OAUTH_TOKEN_TTL,
            "refresh_token": row.token,
            "openid": row.openid,
            "scope": row.scope,
        }
    )


def _oauth_token() -> tuple[SandboxToken | None, Response | None]:
    if not request.args.get("access_token"):
        return None, wx_error(41001)
    row = common.oauth_token_row()
    if row is None:
        return None, wx_error(40001)
    if row.expires_at <= now():
        return None, wx_error(42001)
    if request.args.get("openid") and request.args["openid"] != row.openid:
        return None, wx_error(40003)
    return row, None


def sns_userinfo() -> Response:
    row, err = _oauth_token()
    if err or row is None:
        return err  # type: ignore[return-value]
    if row.scope != "snsapi_userinfo":
        return wx_error(48001)
    user = SandboxUser.get_or_none(SandboxUser.openid == row.openid)
    nickname = user.nickname if user else ""
    return wx_json(
        {
            "openid": row.openid,
            "nickname": nickname,
            "sex": 0,
            "province": "",
            "city": "",
            "country": "",
            "headimgurl": "",
            "privilege": [],
        }
    )


def sns_auth() -> Response:
    _row, err = _oauth_token()
    if err:
        return err
    return wx_json({"errcode": 0, "errmsg": "ok"})
