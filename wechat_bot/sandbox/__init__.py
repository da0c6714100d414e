"""Local stand-in for the WeChat servers and a phone simulator (demo and tests only).

Mounted under ``/sandbox``; answers loopback clients only (403 otherwise). The real wechatpy client
works against it by changing base URLs only (see ``wechat_bot.client``): same paths, parameters, JSON
shapes and errcodes as api.weixin.qq.com / open.weixin.qq.com / mp.weixin.qq.com for what the app uses:

* ``cgi-bin/token``, ``cgi-bin/menu/{create,get,delete}``, ``cgi-bin/message/template/send``,
  ``cgi-bin/message/custom/send`` (48-hour window),
  ``cgi-bin/qrcode/create``, ``cgi-bin/showqrcode``, ``cgi-bin/user/{info,get}``
* ``connect/oauth2/authorize``, ``sns/oauth2/{access_token,refresh_token}``, ``sns/userinfo``, ``sns/auth``
* ``phone``: the simulator page; it talks to the app's real ``/wechat`` endpoint as WeChat does.

A *sandbox AppID* is one starting with ``wx_sandbox`` (the default is ``wx_sandbox_appid``): real AppIDs
are ``wx`` + 16 hex digits and never contain ``_``. With any other AppID the sandbox refuses to start
unless ``[wechat] allow_sandbox_with_real_appid`` is set.

All state lives in the database (``sandbox_*`` tables), so several worker processes agree.
Tunables (``app.config``): ``SANDBOX_TOKEN_EXPIRES_IN`` (7200 s), ``SANDBOX_TOKEN_OVERLAP`` (300 s,
how long an old access token keeps working after a new one is fetched), ``SANDBOX_CODE_TTL`` (300 s),
``SANDBOX_REPLY_TIMEOUT`` (5 s, WeChat's wait for the app's reply), ``SANDBOX_EVENT_DELAY`` (0.2 s,
before TEMPLATESENDJOBFINISH is posted), ``SANDBOX_DELIVER_EVENTS`` (True; tests that call the sandbox
through Flask's test client, with no server listening at base_url, set it False).
"""

from __future__ import annotations

import ipaddress
import logging

from flask import Blueprint, Flask, abort, request

from settings import Settings

log = logging.getLogger(__name__)

SANDBOX_APPID_PREFIX = "wx_sandbox"
ACCOUNT_ID = "gh_sandbox00000"
"""The official account's original id (ToUserName of incoming messages)."""

DEFAULTS = {
    "SANDBOX_TOKEN_EXPIRES_IN": 7200,
    "SANDBOX_TOKEN_OVERLAP": 300,
    "SANDBOX_CODE_TTL": 300,
    "SANDBOX_REPLY_TIMEOUT": 5.0,
    "SANDBOX_EVENT_DELAY": 0.2,
    "SANDBOX_DELIVER_EVENTS": True,
}


class SandboxConfigError(RuntimeError):
    """The sandbox was asked to run with settings it must refuse (a real AppID)."""


def is_sandbox_appid(appid: str) -> bool:
    """True for AppIDs only the sandbox uses (``wx_sandbox...``)."""
    return appid.startswith(SANDBOX_APPID_PREFIX)


def check_settings(settings: Settings) -> None:
    """Raise :class:`SandboxConfigError` when the sandbox must not run with these settings."""
    if not is_sandbox_appid(settings.wechat.appid) and not settings.wechat.allow_sandbox_with_real_appid:
        raise SandboxConfigError(
            f"[wechat] appid {settings.wechat.appid!r} looks like a real official account: the local WeChat "
            f"sandbox only runs with a sandbox AppID (starting with {SANDBOX_APPID_PREFIX!r}). Turn "
            "[wechat] sandbox off, or set [wechat] allow_sandbox_with_real_appid = true if you really "
            "mean to simulate that account locally."
        )


def is_loopback(addr: str | None) -> bool:
    try:
        return ipaddress.ip_address((addr or "").split("%")[0]).is_loopback
    except ValueError:
        return False


FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _loopback_only() -> None:
    """Serve only this machine: the socket peer must be loopback (before any proxy rewriting), no
    proxy may have forwarded the request, and the Host must name loopback (no DNS rebinding)."""
    peer = request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR", request.remote_addr)
    forwarded = [h for h in FORWARDING_HEADERS if h in request.headers]
    host = _host_name(request.host or "")
    if not is_loopback(peer) or forwarded or (host not in LOOPBACK_HOSTS and not is_loopback(host)):
        log.warning("sandbox: refused request (peer %s, forwarded %s, host %s)", peer, forwarded, host)
        abort(403)


def create_blueprint() -> Blueprint:
    from wechat_bot.sandbox import api, custom, oauth, phone

    bp = Blueprint(
        "wechat_sandbox",
        __name__,
        url_prefix="/sandbox",
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    bp.before_request(_loopback_only)
    custom.register(bp)
    api.register(bp)  # last: it ends with a catch-all for the APIs the sandbox does not simulate
    oauth.register(bp)
    phone.register(bp)
    return bp


def init_app(app: Flask, settings: Settings) -> None:
    """Register the sandbox routes under /sandbox; refuse a real-looking AppID (see module doc)."""
    check_settings(settings)
    import wechat_bot.store  # noqa: F401 - registers the sandbox tables

    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    if not is_loopback(settings.server.host) and settings.server.host not in ("localhost",):
        log.warning(
            "sandbox: the server listens on %s; /sandbox still answers loopback clients only",
            settings.server.host,
        )
    app.register_blueprint(create_blueprint())
    log.info("WeChat sandbox enabled at %s/sandbox/phone", settings.server.base_url.rstrip("/"))


__all__ = ["init_app", "SandboxConfigError", "is_sandbox_appid", "check_settings", "ACCOUNT_ID"]
