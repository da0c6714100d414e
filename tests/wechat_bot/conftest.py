"""Fixtures for the WeChat surface: the app (with its sandbox) served by a real HTTP server on a free
loopback port, so the real wechatpy client can talk to it."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

import models
from settings import Settings, defaults_for_tests
from wechat_bot.sandbox import relay
from wechat_bot.store import SandboxUser


@dataclass
class LiveServer:
    app: Flask
    settings: Settings
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url + path

    def add_user(self, nickname: str = "张三", subscribed: bool = True) -> SandboxUser:
        return SandboxUser.create(
            openid="o" + secrets.token_hex(13), nickname=nickname, subscribed=subscribed
        )


def _serve(tmp_path: Path, build: Callable[[Settings], Flask], **overrides: Any) -> Iterator[LiveServer]:
    holder: dict[str, Flask] = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: holder["app"](environ, start), threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    wechat = {
        "appid": "wx_sandbox_" + secrets.token_hex(4),
        "api_base": base + "/sandbox/",
        **overrides.pop("wechat", {}),
    }
    settings = defaults_for_tests(tmp_path, server={"base_url": base}, wechat=wechat, **overrides)
    app = build(settings)
    app.config["SANDBOX_EVENT_DELAY"] = 0.0
    models.upgrade()
    holder["app"] = app
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LiveServer(app, settings, base)
    finally:
        relay.wait_for_deliveries(10)
        server.shutdown()
        thread.join(5)
        server.server_close()
        if not models.db.is_closed():
            models.db.close()


def build_full_app(settings: Settings) -> Flask:
    from app import create_app

    return create_app(settings)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    """The whole app (create_app) with the sandbox, on a real loopback server."""
    yield from _serve(tmp_path, build_full_app)


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., LiveServer]:
    """Start a server for an app built by ``build(settings)``, with settings overrides."""
    gens: list[Iterator[LiveServer]] = []

    def start(build: Callable[[Settings], Flask] = build_full_app, **overrides: Any) -> LiveServer:
        gen = _serve(tmp_path, build, **overrides)
        gens.append(gen)
        return next(gen)

    yield start  # type: ignore[misc]
    for gen in gens:
        for _ in gen:
            pass


# ---------------------------------------------------------------- a stand-in /wechat handler


def build_stub_app(settings: Settings) -> Flask:
    """A minimal app: database, the sandbox and a /wechat endpoint that checks every request the way
    the real handler must (signature, safe-mode decryption with wechatpy) and echoes text messages.
    Messages it accepted are kept in ``app.config["RECEIVED"]``."""
    import time as _time

    from flask import abort, request
    from wechatpy import parse_message
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.exceptions import InvalidSignatureException
    from wechatpy.replies import TextReply
    from wechatpy.utils import check_signature

    from wechat_bot import sandbox

    app = Flask(__name__)
    app.config.update(TRIPACT=settings, SECRET_KEY="test", RECEIVED=[])
    app.config.update(STUB_SLOW_EVENTS=0.0, STUB_SLOW_TEXT=0.0)
    models.init_db(settings.database_url)

    @app.before_request
    def _connect() -> None:
        models.db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc: BaseException | None) -> None:
        if not models.db.is_closed():
            models.db.close()

    sandbox.init_app(app, settings)
    w = settings.wechat

    @app.post("/wechat")
    def wechat() -> Any:
        args = request.args
        try:
            check_signature(w.token, args["signature"], args["timestamp"], args["nonce"])
        except InvalidSignatureException:
            abort(403)
        crypto = WeChatCrypto(w.token, w.encoding_aes_key, w.appid)
        body = request.get_data()
        if args.get("encrypt_type") == "aes":
            body = crypto.decrypt_message(body, args["msg_signature"], args["timestamp"], args["nonce"])
        msg = parse_message(body)
        import xmltodict

        app.config["RECEIVED"].append(dict(xmltodict.parse(body)["xml"]))
        if msg.type == "event" and msg.event == "templatesendjobfinish":
            _time.sleep(app.config["STUB_SLOW_EVENTS"])
            return "success"
        if msg.type != "text":
            return ""
        if msg.content == "slow":
            _time.sleep(app.config["STUB_SLOW_TEXT"])
        # wechatpy does not escape "]]>" inside CDATA: a reply containing it is broken XML.
        reply = TextReply(content="收到：" + msg.content.replace("]]>", ""), message=msg).render()
        if args.get("encrypt_type") == "aes":
            return crypto.encrypt_message(reply, args["nonce"], args["timestamp"])
        return reply

    return app


@pytest.fixture
def stub_server(serve: Callable[..., LiveServer]) -> LiveServer:
    """The sandbox on a minimal app whose /wechat verifies and echoes (see build_stub_app)."""
    return serve(build_stub_app)
