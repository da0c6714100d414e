"""In a phone-sized Chromium: bind as a student, sign with a drawn signature (student, then the employer
with seal and PIN), and terminate (employer starts, student agrees). Screenshots: test-output/e2e/."""
from __future__ import annotations

import io
import re
from typing import Any

import pytest
from PIL import Image

import jobs
from models import Agreement, AgreementSignature, WechatBinding
from tests import factories
from tests.e2e.conftest import LiveApp, off_loop, screenshot
from tests.factories import World

pytestmark = pytest.mark.e2e


def draw_signature(page: Any) -> None:
    """Write a scribble on the canvas with mouse events (three strokes)."""
    canvas = page.locator("#sigpad")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    for stroke in range(3):
        x0, y0 = box["x"] + 30 + stroke * 100, box["y"] + box["height"] * 0.7
        page.mouse.move(x0, y0)
        page.mouse.down()
        for i in range(1, 12):
            page.mouse.move(x0 + i * 7, y0 - (i % 4) * 25, steps=2)
        page.mouse.up()


def test_student_binds(phone: Any, live_app: LiveApp) -> None:
    world = off_loop(World)
    s = world.student
    page = phone("o_e2e_bind")
    page.goto(live_app.url("/m/bind"))  # OAuth round trip through the sandbox first
    # Chromium keeps the authorize URL's #wechat_redirect through the redirects; WeChat drops it.
    assert page.url.split("#")[0] == live_app.url("/m/bind")
    page.fill("#school", world.school.code)
    page.fill("#student_no", s.student_no)
    page.fill("#name", s.name)
    page.fill("#id_last6", "000000")
    page.click("button[type=submit]")
    page.locator(".msg.err").wait_for()
    assert "姓名或身份证号后六位与学校名单不一致" in page.inner_text(".msg.err")
    screenshot(page, "bind-mismatch")
    page.fill("#id_last6", s.id_number[-6:])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/m/$"))
    assert WechatBinding.get(WechatBinding.openid == "o_e2e_bind").student_id == s.id
    page.goto(live_app.url("/m/bind"))
    assert "已绑定" in page.inner_text("main") and s.name in page.inner_text("main")
    screenshot(page, "bind-done")


def test_sign_with_drawn_signature(phone: Any, live_app: LiveApp) -> None:
    world = off_loop(World)
    a = off_loop(world.agreement_at, "awaiting_student")
    student = phone("o_e2e_signer", student=world.student)
    student.goto(live_app.url(f"/m/agreements/{a.id}/sign"))
    # The agreement is read as page images of its PDF, all of them loaded.
    pages = student.locator("#document img.page")
    assert pages.count() >= 1
    for i in range(pages.count()):
        pages.nth(i).scroll_into_view_if_needed()
        assert student.wait_for_function("img => img.complete && img.naturalWidth > 500", arg=pages.nth(i)
                                         .element_handle())
    student.fill("#id_last6", a.id_number[-6:])
    student.click("button[type=submit]")  # nothing drawn yet: the page says so and stays
    assert "请先在签名区域手写" in student.inner_text("#sigpad-error")
    draw_signature(student)
    screenshot(student, "sign-student")
    student.click("button[type=submit]")
    student.wait_for_url(live_app.url(f"/m/agreements/{a.id}"))
    assert "学校签署中" in student.inner_text("#status")
    sig = AgreementSignature.get((AgreementSignature.agreement == a.id)
                                 & (AgreementSignature.party == "student"))
    assert sig.image_sha256
    off_loop(jobs.drain)  # the school signs by itself
    assert Agreement.get_by_id(a.id).status == "awaiting_employer"

    hr = phone("o_e2e_hr", employer_user=world.user)
    hr.goto(live_app.url(f"/m/agreements/{a.id}"))
    hr.get_by_role("link", name="去签署").click()
    hr.wait_for_url(live_app.url(f"/m/agreements/{a.id}/sign"))
    hr.check(f"input[name=seal_id][value='{world.employer_seal.id}']")
    hr.fill("#pin", factories.PIN)
    screenshot(hr, "sign-employer")
    hr.click("button[type=submit]")
    hr.wait_for_url(live_app.url(f"/m/agreements/{a.id}"))
    assert "已完成" in hr.inner_text("#status")
    assert Agreement.get_by_id(a.id).status == "completed"


def test_drawn_signature_is_a_transparent_png(phone: Any, live_app: LiveApp) -> None:
    """What the canvas sends is what the server accepts: a PNG with transparent background and ink."""
    world = off_loop(World)
    a = off_loop(world.agreement_at, "awaiting_student")
    page = phone("o_e2e_png", student=world.student)
    page.goto(live_app.url(f"/m/agreements/{a.id}/sign"))
    draw_signature(page)
    data_url = page.evaluate("document.getElementById('sigpad').toDataURL('image/png')")
    import base64

    img = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    assert img.format == "PNG" and img.mode == "RGBA"
    alpha = img.getchannel("A")
    assert alpha.getpixel((0, 0)) == 0 and alpha.getextrema()[1] == 255


def test_termination_employer_starts_student_agrees(phone: Any, live_app: LiveApp) -> None:
    world = off_loop(World)
    a = off_loop(world.agreement_at, "completed")
    hr = phone("o_e2e_hr2", employer_user=world.user)
    hr.goto(live_app.url(f"/m/agreements/{a.id}"))
    hr.get_by_role("link", name="发起解约").click()
    hr.wait_for_url(live_app.url(f"/m/agreements/{a.id}/termination"))
    hr.fill("#reason", "公司业务调整，岗位取消")
    hr.fill("#pin", factories.PIN)
    hr.click("button[type=submit]")
    hr.wait_for_url(live_app.url(f"/m/agreements/{a.id}"))
    assert "解约待学生确认" in hr.inner_text("#status")

    student = phone("o_e2e_student2", student=world.student)
    student.on("dialog", lambda d: d.accept())
    student.goto(live_app.url(f"/m/agreements/{a.id}"))
    student.get_by_role("link", name="处理解约申请").click()
    student.wait_for_url(live_app.url(f"/m/agreements/{a.id}/termination"))
    assert "公司业务调整" in student.inner_text("#termination-reason")
    student.fill("#id_last6", world.student.id_number[-6:])
    screenshot(student, "termination-student")
    student.click("button[value=agree]")
    student.wait_for_url(live_app.url(f"/m/agreements/{a.id}"))
    assert "已解约" in student.inner_text("#status")
    screenshot(student, "termination-done")
    assert Agreement.get_by_id(a.id).status == "terminated"
