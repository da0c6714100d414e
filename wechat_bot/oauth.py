"""WeChat web login (snsapi_base) for the mobile pages.

A page decorated with :func:`login_required` needs an openid in the session. Without one the user
is sent to WeChat's authorize URL with a fresh ``state`` ([A-Za-z0-9], 32 characters) remembered in
the session together with the page to return to. WeChat comes back to ``/m/oauth/callback`` with a
single-use ``code`` and the ``state``; the state must be one this session issued and not yet used
(otherwise 403: a forged or replayed callback). The code is exchanged for the openid through
wechatpy's ``WeChatOAuth`` pointed at ``[wechat] api_base`` (the sandbox in development); tests may
replace the exchange with ``app.extensions["wechat_oauth_exchange"] = lambda code: openid``.
The session is then rotated (cleared and refilled) so that nothing set before login survives it.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
import string
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, redirect, request, session
from werkzeug.exceptions import Forbidden

from settings import Settings
from wechat_bot import pages_texts as T

log = logging.getLogger(__name__)

SESSION_OPENID = "openid"
SESSION_STATES = "oauth_states"
MAX_PENDING_STATES = 5
"""Logins started in other tabs that may still come back; older ones are forgotten."""
STATE_TTL_SECONDS = 600
"""How long a login may take between leaving for WeChat's authorize page and coming back. The
database remembers used states for a day (WechatMessageSeen's purge), far longer."""
STATE_RE = re.compile(r"^[A-Za-z0-9]{1,128}\Z")
CALLBACK_PATH = "/m/oauth/callback"
DEFAULT_NEXT = "/m/"
EXCHANGE_EXTENSION = "wechat_oauth_exchange"

F = TypeVar("F", bound=Callable[..., Any])


class LoginFailed(Exception):
    """WeChat did not turn the code into an openid (expired, used, or WeChat unreachable)."""


def current_openid() -> str | None:
    """The logged-in openid, or None."""
    openid = session.get(SESSION_OPENID)
    return openid if isinstance(openid, str) and openid else None


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site's mobile pages, else the home page (no open redirect)."""
    if not target or not isinstance(target, str):
        return DEFAULT_NEXT
    if not target.startswith("/m/") or target.startswith("//") or "\\" in target \
            or any(c in target for c in "\r\n\t") or target.startswith(CALLBACK_PATH):
        return DEFAULT_NEXT
    return target


def _settings() -> Settings:
    return current_app.config["TRIPACT"]  # type: ignore[no-any-return]


def callback_url() -> str:
    """The redirect_uri given to WeChat: the configured public base URL plus the callback path."""
    return _settings().server.base_url.rstrip("/") + CALLBACK_PATH


def new_state() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


def authorize_url(next_path: str) -> str:
    """Remember a fresh state for ``next_path`` in the session; return WeChat's authorize URL."""
    from wechat_bot.client import make_oauth

    state = new_state()
    pending = [p for p in session.get(SESSION_STATES, []) if isinstance(p, list) and len(p) == 3]
    pending.append([state, safe_next(next_path), int(time.time())])
    session[SESSION_STATES] = pending[-MAX_PENDING_STATES:]
    return str(make_oauth(_settings(), callback_url(), scope="snsapi_base", state=state).authorize_url)


def take_state(state: str) -> str | None:
    """Consume ``state`` if this session issued it within :data:`STATE_TTL_SECONDS`; return the page to
    go back to, else None.

    The session is a signed cookie, so removing the state from it does not stop a replay of the
    cookie as it was before the callback: each state is also claimed once in the database."""
    if not STATE_RE.match(state or ""):
        return None
    pending = session.get(SESSION_STATES, [])
    found = None
    keep = []
    now = time.time()
    for item in pending if isinstance(pending, list) else []:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                and isinstance(item[2], int) and now - item[2] <= STATE_TTL_SECONDS):
            continue  # malformed or expired: forgotten
        if found is None and hmac.compare_digest(item[0].encode(), state.encode()):
            found = item[1]
            continue
        keep.append(item)
    session[SESSION_STATES] = keep
    if found is None:
        return None
    from wechat_bot.records import WechatMessageSeen

    if not WechatMessageSeen.claim("oauth:" + hashlib.sha256(state.encode()).hexdigest()[:40]):
        log.warning("oauth state replayed (a session cookie from before its callback)")
        return None
    return found


def exchange_code(code: str) -> str:
    """The openid for an OAuth ``code``, asked of WeChat's sns/oauth2/access_token (or the test fake)."""
    fake = current_app.extensions.get(EXCHANGE_EXTENSION)
    if fake is not None:
        openid = fake(code)
    else:
        from wechatpy.exceptions import WeChatException

        from wechat_bot.client import make_oauth

        try:
            result = make_oauth(_settings(), callback_url()).fetch_access_token(code)
        except (WeChatException, OSError, ValueError) as exc:
            # requests' errors are OSErrors; a non-JSON body is a ValueError.
            raise LoginFailed(str(exc)) from exc
        openid = result.get("openid") if isinstance(result, dict) else None
    if not isinstance(openid, str) or not 1 <= len(openid) <= 64:
        raise LoginFailed("no openid in WeChat's answer")
    return openid


def login_required(view: F) -> F:
    """Send users without an openid in the session through WeChat's silent login first."""
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_openid() is None:
            if request.method == "GET":
                back = request.full_path if request.query_string else request.path
            else:  # a form posted after the session ended: start again from the home page
                back = DEFAULT_NEXT
            return redirect(authorize_url(back), code=302)
        return view(*args, **kwargs)
    return wrapped  # type: ignore[return-value]


def callback() -> Any:
    """GET /m/oauth/callback?code=&state=: check the state, exchange the code, log in, go back."""
    from flask import render_template

    state = request.args.get("state", "")
    target = take_state(state)
    if target is None:
        log.info("oauth callback with an unknown or used state from %s", request.remote_addr)
        exc = Forbidden()
        exc.description_zh = T.LOGIN_STATE_INVALID  # type: ignore[attr-defined]
        raise exc
    code = request.args.get("code", "")
    if not code or len(code) > 128:
        # The user refused, or WeChat sent nothing usable.
        return render_template("wechat_bot/error.html", code=400, title=T.LOGIN_NOT_AUTHORISED_TITLE,
                               message=T.LOGIN_NOT_AUTHORISED), 400
    try:
        openid = exchange_code(code)
    except LoginFailed as exc:
        log.warning("oauth code exchange failed: %s", exc)
        return render_template("wechat_bot/error.html", code=502, title=T.LOGIN_FAILED_TITLE,
                               message=T.LOGIN_FAILED), 502
    pending = session.get(SESSION_STATES, [])
    session.clear()  # rotate: nothing from before the login survives it
    session[SESSION_STATES] = pending
    session[SESSION_OPENID] = openid
    return redirect(safe_next(target), code=302)


def logout() -> None:
    """Forget the login (the next page view logs in again)."""
    session.clear()


__all__ = ["login_required", "current_openid", "callback", "exchange_code", "safe_next", "authorize_url",
           "LoginFailed"]
