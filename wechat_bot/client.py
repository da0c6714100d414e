"""The WeChat API client every process shares: one access token for all workers and machines.

``make_client(settings)`` returns a real :class:`wechatpy.WeChatClient` (subclass) that

* talks to ``settings.wechat.api_base`` when set – with the sandbox on and no api_base, to
  ``<server.base_url>/sandbox/`` – including the token URL wechatpy hard-codes and the sub-APIs that
  carry their own absolute ``https://api.weixin.qq.com/...`` base;
* keeps the access token in shared storage: Redis (wechatpy's ``RedisStorage``) when
  ``settings.redis.url`` is set, else the ``wechat_session`` table. Its expiry is stored beside it
  (wechatpy 1.8 keeps ``expires_at`` in process memory only), so any process knows when it is due;
* refreshes the token in one process at a time under a lease (Redis ``SET NX PX`` or the
  ``wechat_lock`` row); the others wait for the new token instead of fetching their own – every fetch
  invalidates the previous token after WeChat's overlap, so racing fetches would churn tokens;
* on errcode 40001/40014/42001 refreshes once (unless another process already did) and retries once.

``make_oauth(settings, redirect_uri, scope, state)`` returns a :class:`wechatpy.oauth.WeChatOAuth`
pointed at the same base.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any
from urllib.parse import urljoin

import peewee as pw
import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.oauth import WeChatOAuth
from wechatpy.session import SessionStorage

import models
from settings import Settings
from wechat_bot.store import WechatLock, WechatSession

log = logging.getLogger(__name__)

REAL_API_BASE = "https://api.weixin.qq.com/"
REAL_OAUTH_BASE = "https://open.weixin.qq.com/connect/"
REAL_QRCODE_SHOW = "https://mp.weixin.qq.com/cgi-bin/showqrcode"

TOKEN_ERRCODES = (40001, 40014, 42001)
REFRESH_MARGIN_SECONDS = 300
"""Refresh this long before the stored expiry (WeChat keeps the old token valid ~5 min after a fetch)."""
LOCK_TTL_MS = 15_000
WAIT_SECONDS = 20.0
HTTP_TIMEOUT = 10.0


def api_base(settings: Settings) -> str:
    """Base URL of the WeChat API for these settings, ending with '/'."""
    base = settings.wechat.api_base
    if not base:
        base = (
            settings.server.base_url.rstrip("/") + "/sandbox/" if settings.wechat.sandbox else REAL_API_BASE
        )
    return base if base.endswith("/") else base + "/"


def qrcode_image_url(settings: Settings, ticket: str) -> str:
    """Where the image of a parametric QR code is shown (mp.weixin.qq.com's showqrcode or the sandbox's)."""
    from urllib.parse import quote

    base = api_base(settings)
    show = REAL_QRCODE_SHOW if base == REAL_API_BASE else urljoin(base, "cgi-bin/showqrcode")
    return f"{show}?ticket={quote(ticket, safe='')}"


# ---------------------------------------------------------------- shared storage and lease


class DatabaseStorage(SessionStorage):  # type: ignore[misc]
    """wechatpy session storage in the ``wechat_session`` table (values JSON-encoded, optional ttl)."""

    def get(self, key: str, default: Any = None) -> Any:
        import json

        row = WechatSession.get_or_none(WechatSession.key == key)
        if row is None or (row.expires_at is not None and row.expires_at <= time.time()):
            return default
        return json.loads(row.value)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        import json

        if value is None:
            return
        text = json.dumps(value)
        expires_at = time.time() + ttl if ttl else None
        with models.db.atomic():
            updated = (
                WechatSession.update(value=text, expires_at=expires_at)
                .where(WechatSession.key == key)
                .execute()
            )
            if not updated:
                try:
                    with models.db.atomic():
                        WechatSession.create(key=key, value=text, expires_at=expires_at)
                except pw.IntegrityError:  # another process inserted it first
                    (
                        WechatSession.update(value=text, expires_at=expires_at)
                        .where(WechatSession.key == key)
                        .execute()
                    )

    def delete(self, key: str) -> None:
        WechatSession.delete().where(WechatSession.key == key).execute()


class Lease:
    """A cross-process mutex with a time-to-live: Redis SET NX PX, else a ``wechat_lock`` row."""

    _RELEASE_LUA = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
    )

    def __init__(self, name: str, redis_client: Any = None, ttl_ms: int = LOCK_TTL_MS) -> None:
        self.name = name
        self.redis = redis_client
        self.ttl_ms = ttl_ms
        self.holder = uuid.uuid4().hex

    def acquire(self) -> bool:
        """Try once; True when this object now holds the lease."""
        if self.redis is not None:
            return bool(self.redis.set(f"tripact:lock:{self.name}", self.holder, nx=True, px=self.ttl_ms))
        now = time.time()
        expires_at = now + self.ttl_ms / 1000
        try:
            with models.db.atomic():
                WechatLock.insert(name=self.name, holder=self.holder, expires_at=expires_at).execute()
            return True
        except pw.IntegrityError:
            pass
        taken = (
            WechatLock.update(holder=self.holder, expires_at=expires_at)
            .where((WechatLock.name == self.name) & (WechatLock.expires_at < now))
            .execute()
        )
        return bool(taken)

    def release(self) -> None:
        if self.redis is not None:
            self.redis.eval(self._RELEASE_LUA, 1, f"tripact:lock:{self.name}", self.holder)
            return
        WechatLock.delete().where(
            (WechatLock.name == self.name) & (WechatLock.holder == self.holder)
        ).execute()


_redis_clients: dict[str, Any] = {}
_redis_guard = threading.Lock()


def redis_client(url: str) -> Any:
    """One redis client (connection pool) per URL per process."""
    with _redis_guard:
        if url not in _redis_clients:
            import redis

            _redis_clients[url] = redis.Redis.from_url(url)
        return _redis_clients[url]


# ---------------------------------------------------------------- the client


class SharedTokenWeChatClient(WeChatClient):  # type: ignore[misc]
    """wechatpy's client with a configurable base URL and a token shared (with its expiry) by every
    process. Use :func:`make_client` to build one."""

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        base_url: str,
        session: SessionStorage,
        redis: Any = None,
        timeout: float = HTTP_TIMEOUT,
    ) -> None:
        super().__init__(appid, secret, session=session, timeout=timeout, auto_retry=False)
        self.base_url = base_url
        # An instance attribute shadows the class attribute wechatpy reads in _request.
        self.API_BASE_URL = base_url + "cgi-bin/"
        self._redis = redis
        self.fetch_count = 0  # tokens fetched by this instance (tests and diagnostics)

    # -- URLs ---------------------------------------------------------------

    def _rebase(self, url: str) -> str:
        if self.base_url != REAL_API_BASE and url.startswith(REAL_API_BASE):
            return self.base_url + url[len(REAL_API_BASE) :]
        return url

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        """wechatpy's request, rebased; a token error (40001/40014/42001) refreshes the shared token
        once – unless another process already replaced it – and retries once. (wechatpy's own retry,
        switched off here, would recurse without bound and fetch a token per process.)"""
        if "api_base_url" in kwargs:  # sub-APIs (card, datacube...) carry their own absolute base
            kwargs["api_base_url"] = self._rebase(kwargs["api_base_url"])
        url = self._rebase(url_or_endpoint)
        params = kwargs.get("params")
        if params is None:
            params = kwargs["params"] = {}
        if isinstance(params, dict) and "access_token" not in params:
            params["access_token"] = self.access_token
        try:
            return super()._request(method, url, **kwargs)
        except WeChatClientException as exc:
            if exc.errcode not in TOKEN_ERRCODES or not isinstance(params, dict):
                raise
            log.info(
                "WeChat rejected the access token (errcode %s); refreshing and retrying once", exc.errcode
            )
            params["access_token"] = self.refresh_access_token(stale=params.get("access_token"))
            return super()._request(method, url, **kwargs)

    # -- shared token ---------------------------------------------------------

    @property
    def token_meta_key(self) -> str:
        return f"{self.appid}_access_token_meta"

    def _shared(self) -> tuple[str | None, float]:
        meta = self.session.get(self.token_meta_key)
        if not isinstance(meta, dict) or not meta.get("access_token"):
            return None, 0.0
        return str(meta["access_token"]), float(meta.get("expires_at") or 0)

    def _store(self, token: str, expires_in: int) -> None:
        expires_at = time.time() + expires_in
        # The plain key keeps wechatpy's own convention (and its retry path) working; the meta key
        # carries the expiry and is what this class reads.
        self.session.set(self.token_meta_key, {"access_token": token, "expires_at": expires_at}, expires_in)
        self.session.set(self.access_token_key, token, expires_in)
        self.expires_at = int(expires_at)

    @property
    def access_token(self) -> str:
        """A token valid for at least REFRESH_MARGIN_SECONDS more, refreshed by one process at a time."""
        token, expires_at = self._shared()
        if token and expires_at - time.time() > REFRESH_MARGIN_SECONDS:
            self.expires_at = int(expires_at)
            return token
        return self.refresh_access_token(stale=token)

    def refresh_access_token(self, stale: str | None = None) -> str:
        """Fetch a new token unless another process replaced ``stale`` meanwhile; return the current one.

        Only the lease holder fetches; the others poll the shared storage until a fresh token appears
        or the lease lapses (its holder died), then try to take it themselves."""
        lease = Lease(f"wechat_token:{self.appid}", self._redis)
        deadline = time.monotonic() + WAIT_SECONDS
        delay = 0.02
        while True:
            token, expires_at = self._shared()
            if token and token != stale and expires_at - time.time() > REFRESH_MARGIN_SECONDS:
                self.expires_at = int(expires_at)
                return token
            if lease.acquire():
                try:
                    token, expires_at = self._shared()
                    if token and token != stale and expires_at - time.time() > REFRESH_MARGIN_SECONDS:
                        return token
                    result = self.fetch_access_token()
                    return str(result["access_token"])
                finally:
                    lease.release()
            if time.monotonic() > deadline:
                raise WeChatClientException(
                    None, "timed out waiting for another process to refresh the access token", client=self
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def fetch_access_token(self) -> dict[str, Any]:
        """One raw GET of cgi-bin/token; stores the token and its expiry in the shared storage.
        Call :meth:`refresh_access_token` instead unless you hold the lease."""
        log.info("fetching a WeChat access token for %s", self.appid)
        res = self._http.get(
            self.base_url + "cgi-bin/token",
            timeout=self.timeout,
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )
        try:
            res.raise_for_status()
        except requests.RequestException as exc:
            raise WeChatClientException(
                None, None, client=self, request=exc.request, response=exc.response
            ) from exc
        result: dict[str, Any] = res.json()
        if result.get("errcode"):
            raise WeChatClientException(
                result["errcode"], result.get("errmsg"), client=self, request=res.request, response=res
            )
        self.fetch_count += 1
        self._store(result["access_token"], int(result.get("expires_in") or 7200))
        return result

    # -- helpers wechatpy 1.8 lacks ---------------------------------------------

    def send_template(
        self,
        openid: str,
        template_id: str,
        data: dict[str, Any],
        url: str | None = None,
        client_msg_id: str | None = None,
        miniprogram: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST message/template/send with ``client_msg_id`` (WeChat's 10-minute per-user de-duplication),
        which wechatpy 1.8's ``message.send_template`` cannot pass."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
        if url:
            body["url"] = url
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        if miniprogram:
            body["miniprogram"] = miniprogram
        return self.post("message/template/send", data=body)  # type: ignore[no-any-return]


def session_storage(settings: Settings) -> tuple[SessionStorage, Any]:
    """The shared storage (and redis client, or None) for these settings."""
    if settings.redis.url:
        from wechatpy.session.redisstorage import RedisStorage

        r = redis_client(settings.redis.url)
        return RedisStorage(r, prefix="tripact:wechatpy"), r
    return DatabaseStorage(), None


def make_client(settings: Settings) -> SharedTokenWeChatClient:
    """A WeChat API client for these settings, sharing its access token with every other process."""
    storage, r = session_storage(settings)
    return SharedTokenWeChatClient(
        settings.wechat.appid,
        settings.wechat.appsecret,
        base_url=api_base(settings),
        session=storage,
        redis=r,
    )


class _OAuth(WeChatOAuth):  # type: ignore[misc]
    """wechatpy's OAuth helper with a request timeout (wechatpy sets none)."""

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return super()._request(method, url_or_endpoint, **kwargs)


def make_oauth(
    settings: Settings, redirect_uri: str, scope: str = "snsapi_base", state: str = ""
) -> WeChatOAuth:
    """wechatpy's OAuth helper pointed at the configured base (``authorize_url``, ``fetch_access_token``,
    ``get_user_info``). ``state`` must be [A-Za-z0-9], at most 128 bytes."""
    oauth = _OAuth(settings.wechat.appid, settings.wechat.appsecret, redirect_uri, scope=scope, state=state)
    base = api_base(settings)
    if base != REAL_API_BASE:
        oauth.API_BASE_URL = base
        oauth.OAUTH_BASE_URL = base + "connect/"
    return oauth


__all__ = [
    "make_client",
    "make_oauth",
    "api_base",
    "qrcode_image_url",
    "SharedTokenWeChatClient",
    "DatabaseStorage",
    "Lease",
    "session_storage",
]
