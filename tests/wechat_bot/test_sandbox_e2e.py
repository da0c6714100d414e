"""The phone simulator in a real headless browser at a phone's viewport."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.mark.e2e
def test_phone_creates_a_user_and_chats(live, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("chromium not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            page = browser.new_page(
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                locale="zh-CN",
            )
            page.goto(live.url("/sandbox/phone"))
            page.click("#new-user-toggle")
            page.fill("#nickname", "张三（学生）")
            page.click("#create-user")
            page.wait_for_selector("text=已切换到新用户「张三（学生）」", timeout=10_000)
            page.wait_for_function(
                "document.querySelector('#user-select').selectedOptions[0].textContent.includes('张三（学生）')"
            )

            page.fill("#input", "我的协议")
            page.click("#send")
            page.wait_for_selector(".row.me .bubble >> text=我的协议")
            # The app answers (a bot bubble), stays silent, or - while /wechat does not exist - the simulator
            # says so plainly; never an endless "typing" bubble.
            page.wait_for_function("document.querySelectorAll('.pending-row').length === 0", timeout=20_000)
            last = page.locator("#chat .row.bot").last
            text = last.inner_text()
            if last.locator(".bubble.error").count():
                assert "该公众号暂时无法提供服务" in text and ("404" in text or "HTTP" in text)
            page.click("[data-tab=templates]")
            page.click("[data-tab=chat]")
            OUTPUT.mkdir(exist_ok=True)
            shot = OUTPUT / "sandbox-phone.png"
            page.screenshot(path=str(shot), full_page=True)
            shutil.copy(shot, tmp_path / shot.name)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
