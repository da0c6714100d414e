"""Helpers shared by the sandbox's endpoints: settings, clock, WeChat-style error bodies, token checks."""

from __future__ import annotations

import json
import secrets
import string
import time
from typing import Any

from flask import Response, current_app, request

from settings import Settings
from wechat_bot.store import SandboxToken

# errcode -> errmsg, as WeChat words them
ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40023: "invalid sub button size",
    40025: "invalid sub button name size",
    40026: "invalid sub button key size",
    40027: "invalid sub button url size",
    40029: "invalid code",
    40030: "invalid refresh_token",
    40037: "invalid template_id",
    40097: "invalid args",
    40125: "invalid appsecret",
    40163: "code been used",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    42001: "access_token expired",
    42002: "refresh_token expired",
    43004: "require subscribe",
    44002: "empty post data",
    45015: "response out of time limit or subscription is canceled",
    46003: "menu no exist",
    47001: "data format error",
    47003: "argument invalid!",
    48001: "api unauthorized",
}

ALNUM = string.ascii_letters + string.digits


def settings() -> Settings:
    return current_app.config["TRIPACT"]  # type: ignore[no-any-return]


def conf(key: str) -> Any:
    return current_app.config[key]


def now() -> float:
    """The sandbox clock (epoch seconds)."""
    return time.time()


def random_string(n: int, alphabet: str = ALNUM + "-_") -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def wx_json(payload: dict[str, Any], status: int = 200) -> Response:
    """A JSON body as WeChat sends it (UTF-8, no ASCII escaping)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(
        body, status=status, mimetype="application/json", content_type="application/json; charset=utf-8"
    )


def wx_error(errcode: int, detail: str = "") -> Response:
    """WeChat's error shape: HTTP 200 with errcode/errmsg (errmsg ends with a request id, like WeChat's)."""
    msg = ERRMSG.get(errcode, "error")
    if detail:
        msg = f"{msg} {detail}"
    return wx_json(
        {"errcode": errcode, "errmsg": f"{msg} rid: {secrets.token_hex(4)}-{secrets.token_hex(4)}"}
    )


def ok(**extra: Any) -> Response:
    return wx_json({"errcode": 0, "errmsg": "ok", **extra})


def json_body() -> tuple[dict[str, Any] | None, Response | None]:
    """The POSTed JSON object, or WeChat's error for an empty / malformed body."""
    raw = request.get_data()
    if not raw.strip():
        return None, wx_error(44002)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, wx_error(47001)
    if not isinstance(data, dict):
        return None, wx_error(47001)
    return data, None


def authorized_json() -> tuple[dict[str, Any] | None, Response | None]:
    """(body, None) for a POST with a valid access token and a JSON object body, else (None, error)."""
    err = check_access_token()
    if err:
        return None, err
    body, err = json_body()
    if err or body is None:
        return None, err
    return body, None


def check_access_token(kind: str = "client") -> Response | None:
    """None when the request's ``access_token`` is valid now, else WeChat's error body."""
    token = request.args.get("access_token", "")
    if not token:
        return wx_error(41001)
    row = SandboxToken.get_or_none((SandboxToken.token == token) & (SandboxToken.kind == kind))
    if row is None:
        return wx_error(40001)
    if row.expires_at <= now():
        # A token replaced by a newer one is "not latest"; one that simply ran out is "expired".
        return wx_error(40001 if row.superseded_at else 42001)
    return None


def oauth_token_row() -> SandboxToken | None:
    token = request.args.get("access_token", "")
    row = SandboxToken.get_or_none((SandboxToken.token == token) & (SandboxToken.kind == "oauth"))
    return row
