"""Browser tests of the mobile pages: the whole app (with the WeChat sandbox) on a real loopback server,
driven by Playwright with Debian's Chromium in a phone-sized viewport. Users log in through the real
OAuth round trip: the sandbox's authorize page knows the phone's user from its ``sandbox_openid`` cookie,
and the app exchanges the code with wechatpy over HTTP against the same server."""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from werkzeug.serving import make_server

import models
import wechat_bot.pages_store  # noqa: F401 - registers the pages' tables
import wechat_bot.records  # noqa: F401
import wechat_bot.store  # noqa: F401
from models import WechatBinding
from settings import PROJECT_ROOT, defaults_for_tests
from wechat_bot.store import SandboxUser

T = TypeVar("T")
CHROMIUM = os.environ.get("TRIPACT_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "test-output" / "e2e"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True, "locale": "zh-CN"}


@dataclass
class LiveApp:
    app: Flask
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture
def live_app(tmp_path: Path, pki_dir: Path) -> Iterator[LiveApp]:
    """create_app() with the mobile pages, served on 127.0.0.1:<free port> in a thread."""
    from app import create_app
    from wechat_bot import pages

    holder: dict[str, Flask] = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: holder["app"](environ, start), threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    settings = defaults_for_tests(tmp_path, server={"base_url": base}, signing={"pki_dir": str(pki_dir)})
    app = create_app(settings)
    pages.init_app(app)  # until wechat_bot.init_app registers the pages itself
    models.db.connect(reuse_if_open=True)
    models.upgrade()
    holder["app"] = app
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LiveApp(app, base)
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
        if not models.db.is_closed():
            models.db.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module. Not per session: while Playwright's sync API is running, its
    asyncio loop occupies the main thread and code that calls ``asyncio.run`` (the signing step)
    fails there, so it must stop before other modules' tests run."""
    if not shutil.which(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        yield b
        b.close()


@pytest.fixture
def phone(browser: Any, live_app: LiveApp) -> Iterator[Any]:
    """``phone(openid, student=None, employer_user=None)`` -> a Playwright page of that WeChat user
    (a sandbox user, optionally already bound)."""
    contexts: list[Any] = []

    def open_phone(openid: str, student: Any = None, employer_user: Any = None) -> Any:
        SandboxUser.create(openid=openid, nickname=openid, subscribed=True)
        if student is not None or employer_user is not None:
            WechatBinding.create(openid=openid, student=student, employer_user=employer_user)
        ctx = browser.new_context(**PHONE)
        ctx.set_default_timeout(10_000)
        ctx.add_cookies([{"name": "sandbox_openid", "value": openid, "domain": "127.0.0.1",
                          "path": "/sandbox"}])
        contexts.append(ctx)
        return ctx.new_page()

    yield open_phone
    for ctx in contexts:
        ctx.close()


def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a worker thread. Playwright's sync API keeps an asyncio loop running in the test's
    thread, and the signing step uses ``asyncio.run`` (pyHanko), which refuses to run inside one."""
    result: list[T] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with models.db.connection_context():
                result.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    if errors:
        raise errors[0]
    return result[0]


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
