"""Mobile pages: binding, applying, confirming, signing, termination, permissions, CSRF, throttling."""
from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

import storage
import wechat_bot.pages_store  # noqa: F401 - registers the pages' tables before the schema is made
import wechat_bot.records  # noqa: F401
import wechat_bot.store  # noqa: F401
import workflow
from models import Agreement, WechatBinding
from tests import factories
from tests.factories import World
from wechat_bot.records import StaffBindingCode

CSRF = "t" * 43


@pytest.fixture
def app(app):  # type: ignore[no-untyped-def]
    from wechat_bot import pages

    pages.init_app(app)
    return app


class Phone:
    """One WeChat user's browser: logged in as ``openid``, posting forms with the session's CSRF token."""

    def __init__(self, app: Any, openid: str) -> None:
        self.client = app.test_client()
        self.openid = openid
        with self.client.session_transaction() as s:
            s["openid"] = openid
            s["csrf"] = CSRF

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, csrf: str | None = CSRF) -> Any:
        data = dict(data or {})
        if csrf is not None:
            data["csrf_token"] = csrf
        return self.client.post(path, data=data)


@pytest.fixture
def world(app: Any) -> World:
    return World()


def student_phone(app: Any, world: World, student: Any = None, openid: str = "o_student") -> Phone:
    WechatBinding.create(openid=openid, student=(student or world.student).id)
    return Phone(app, openid)


def employer_phone(app: Any, world: World, user: Any = None, openid: str = "o_hr") -> Phone:
    WechatBinding.create(openid=openid, employer_user=(user or world.user).id)
    return Phone(app, openid)


def drawn_png(strokes: int = 6, size: tuple[int, int] = (600, 200), background: Any = (0, 0, 0, 0),
              mode: str = "RGBA") -> str:
    img = Image.new(mode, size, background)
    d = ImageDraw.Draw(img)
    for i in range(strokes):
        d.line([(40 + i * 60, 40), (80 + i * 60, 160), (120 + i * 60, 60)], fill=(0, 0, 0, 255), width=5)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def text(r: Any) -> str:
    return r.get_data(as_text=True)


# ---------------------------------------------------------------- binding

def bind_form(world: World, **kw: str) -> dict[str, str]:
    s = world.student
    data = {"school": world.school.code, "student_no": s.student_no, "name": s.name,
            "id_last6": s.id_number[-6:]}
    data.update(kw)
    return data


def test_student_binds_with_roster_data(app: Any, world: World) -> None:
    phone = Phone(app, "o_new")
    r = phone.get("/m/bind")
    assert r.status_code == 200 and "学生身份绑定" in text(r)
    r = phone.post("/m/bind", bind_form(world, id_last6=world.student.id_number[-6:].lower()))
    assert r.status_code == 302
    assert WechatBinding.get(WechatBinding.openid == "o_new").student_id == world.student.id
    r = phone.get("/m/bind")
    assert "已绑定" in text(r) and world.student.id_number not in text(r)


@pytest.mark.parametrize("field,value,expected", [
    ("school", "99999", "未找到该学校"),
    ("student_no", "NOPE", "未找到此学号"),
    ("name", "别人", "姓名或身份证号后六位与学校名单不一致"),
    ("id_last6", "000000", "姓名或身份证号后六位与学校名单不一致"),
])
def test_failed_match_says_what_to_check(app: Any, world: World, field: str, value: str,
                                         expected: str) -> None:
    r = Phone(app, "o_new").post("/m/bind", bind_form(world, **{field: value}))
    assert r.status_code == 400 and expected in text(r)
    assert WechatBinding.select().count() == 0


def test_missing_fields_are_named(app: Any, world: World) -> None:
    r = Phone(app, "o_new").post("/m/bind", bind_form(world, name=""))
    assert r.status_code == 400 and "必填" in text(r)


def test_repeated_failures_are_throttled(app: Any, world: World) -> None:
    phone = Phone(app, "o_guesser")
    for _ in range(5):
        assert phone.post("/m/bind", bind_form(world, id_last6="000000")).status_code == 400
    r = phone.post("/m/bind", bind_form(world))  # even the right answer now waits
    assert r.status_code == 429 and "15分钟" in text(r)
    assert WechatBinding.select().count() == 0


def test_guesses_at_one_student_from_many_accounts_are_throttled(app: Any, world: World) -> None:
    for i in range(10):
        r = Phone(app, f"o_bot_{i}").post("/m/bind", bind_form(world, id_last6="000000"))
        assert r.status_code == 400
    assert Phone(app, "o_bot_last").post("/m/bind", bind_form(world)).status_code == 429


def test_binding_oneself_does_not_buy_more_guesses(app: Any, world: World) -> None:
    """Review finding: 4 wrong guesses at another student, bind to oneself (which used to clear the
    failures), unbind, guess again – the window's count must hold."""
    other = factories.make_student(world.school)
    phone = Phone(app, "o_guesser")
    wrong = {"school": world.school.code, "student_no": other.student_no, "name": other.name,
             "id_last6": "000000"}
    for _ in range(4):
        assert phone.post("/m/bind", wrong).status_code == 400
    assert phone.post("/m/bind", bind_form(world)).status_code == 302  # the 5th attempt: oneself
    assert phone.post("/m/unbind").status_code == 302
    assert phone.post("/m/bind", wrong).status_code == 429


def test_one_openid_per_student(app: Any, world: World) -> None:
    student_phone(app, world, openid="o_first")
    r = Phone(app, "o_second").post("/m/bind", bind_form(world))
    assert r.status_code == 409 and "已绑定其他微信号" in text(r)


def test_unbind(app: Any, world: World) -> None:
    phone = student_phone(app, world)
    assert phone.post("/m/unbind").status_code == 302
    assert WechatBinding.select().count() == 0


def test_post_without_or_with_wrong_csrf_token_is_refused(app: Any, world: World) -> None:
    phone = Phone(app, "o_new")
    for token in (None, "wrong-token"):
        r = phone.post("/m/bind", bind_form(world), csrf=token)
        assert r.status_code == 400 and "页面已过期" in text(r)
    assert WechatBinding.select().count() == 0


def test_disabled_staff_account_is_refused(app: Any, world: World) -> None:
    a = world.agreement_at("applied")
    hr = employer_phone(app, world)
    world.user.active = False
    world.user.save()
    for path in ("/m/agreements", f"/m/agreements/{a.id}", f"/m/agreements/{a.id}/confirm"):
        r = hr.get(path)
        assert r.status_code == 403 and "已停用" in text(r)


def test_unbound_user_is_sent_to_binding(app: Any, world: World) -> None:
    r = Phone(app, "o_new").get("/m/agreements")
    assert r.status_code == 302 and r.headers["Location"].startswith("/m/bind")


def test_staff_binds_with_one_time_code(app: Any, world: World) -> None:
    code = StaffBindingCode.issue(world.user.id).code
    phone = Phone(app, "o_staff")
    assert phone.get(f"/m/bind/staff?code={code}").status_code == 200
    r = phone.post("/m/bind/staff", {"code": code})
    assert r.status_code == 302
    assert WechatBinding.get(WechatBinding.openid == "o_staff").employer_user_id == world.user.id
    r = Phone(app, "o_other").post("/m/bind/staff", {"code": code})
    assert r.status_code == 400 and "已被使用" in text(r)
    r = Phone(app, "o_other").post("/m/bind/staff", {"code": "NOSUCHCODE"})
    assert r.status_code == 400 and "绑定码无效" in text(r)


# ---------------------------------------------------------------- applying

TERMS_FORM = {"position": "后端工程师", "work_location": "南昌", "salary_yuan": "8500.5",
              "probation_months": "3",
              "contract_years": "3", "damages_yuan": "3000", "remarks": "五险一金"}


def test_student_searches_fills_previews_and_applies(app: Any, world: World) -> None:
    phone = student_phone(app, world)
    r = phone.get("/m/apply", query_string={"q": world.employer.name[:6]})
    assert world.employer.name in text(r)
    r = phone.get("/m/apply", query_string={"q": world.employer.credit_code})
    assert world.employer.name in text(r)
    assert "填写协议条款" in text(phone.get(f"/m/apply?employer={world.employer.id}"))
    form = {"employer": world.employer.id, **TERMS_FORM}
    r = phone.post("/m/apply", {**form, "action": "preview"})
    assert r.status_code == 200 and "请核对申请内容" in text(r) and "8500.50 元" in text(r)
    assert Agreement.select().count() == 0
    r = phone.post("/m/apply", {**form, "action": "submit"})
    assert r.status_code == 302
    a = Agreement.get()
    assert a.status == "applied" and a.monthly_salary_fen == 850050 and a.liquidated_damages_fen == 300000
    assert r.headers["Location"] == f"/m/agreements/{a.id}"
    assert "已有进行中的协议" in text(phone.get("/m/apply"))


@pytest.mark.parametrize("field,value,message", [
    ("salary_yuan", "八千", "请填写月薪"),
    ("salary_yuan", "-1", "请填写月薪"),
    ("salary_yuan", "100.123", "请填写月薪"),
    ("probation_months", "7", "试用期不得超过6个月"),
    ("position", "", "请填写岗位"),
])
def test_bad_terms_are_shown_beside_the_field(app: Any, world: World, field: str, value: str,
                                              message: str) -> None:
    phone = student_phone(app, world)
    r = phone.post("/m/apply", {"employer": world.employer.id, **TERMS_FORM, field: value,
                                "action": "submit"})
    assert r.status_code == 400 and message in text(r)
    assert Agreement.select().count() == 0


def test_invitation_code_opens_the_terms_form(app: Any, world: World) -> None:
    from wechat_bot.records import EmployerInvitation

    code = EmployerInvitation.code_for(world.employer.id)
    phone = student_phone(app, world)
    r = phone.get(f"/m/apply?invite={code}")
    assert r.status_code == 200 and world.employer.name in text(r) and "填写协议条款" in text(r)
    EmployerInvitation.revoke(world.employer.id)
    assert phone.get(f"/m/apply?invite={code}").status_code == 404


def test_unapproved_employer_cannot_be_chosen(app: Any, world: World) -> None:
    pending = factories.make_employer(review_status="pending")
    phone = student_phone(app, world)
    assert phone.get(f"/m/apply?employer={pending.id}").status_code == 404
    body = text(phone.get("/m/apply", query_string={"q": pending.name}))
    assert f"employer={pending.id}" not in body and "未找到已通过审核的单位" in body


def test_employer_user_cannot_apply(app: Any, world: World) -> None:
    assert employer_phone(app, world).get("/m/apply").status_code == 403


# ---------------------------------------------------------------- seeing agreements

def test_lists_and_details_are_limited_to_own_agreements(app: Any, world: World) -> None:
    mine = world.agreement_at("applied")
    other_student = factories.make_student(world.school)
    theirs = world.agreement_at("applied", other_student)
    other_world_agreement = World().agreement_at("applied")
    phone = student_phone(app, world)
    r = phone.get("/m/agreements")
    assert mine.number in text(r) and theirs.number not in text(r)
    assert phone.get(f"/m/agreements/{mine.id}").status_code == 200
    for a in (theirs, other_world_agreement):
        for suffix in ("", "/sign", "/termination", "/pdf", "/evidence"):
            assert phone.get(f"/m/agreements/{a.id}{suffix}").status_code == 404
        assert phone.post(f"/m/agreements/{a.id}/withdraw", {"version": a.version}).status_code == 404
    hr = employer_phone(app, world)
    assert theirs.number in text(hr.get("/m/agreements?todo=1"))
    assert hr.get(f"/m/agreements/{other_world_agreement.id}").status_code == 404
    assert hr.get(f"/m/agreements/{other_world_agreement.id}/confirm").status_code == 404
    assert phone.get("/m/agreements/999999").status_code == 404


def test_detail_shows_status_history_and_masked_data(app: Any, world: World) -> None:
    a = world.agreement_at("applied")
    hr = employer_phone(app, world)
    r = hr.get(f"/m/agreements/{a.id}")
    assert r.headers["Cache-Control"] == "private, no-store"
    body = text(r)
    assert "待用人单位确认" in body and "确认或拒绝" in body and "申请协议" in body
    assert a.id_number not in body and a.student_phone not in body
    body = text(student_phone(app, world).get(f"/m/agreements/{a.id}"))
    assert "等待用人单位确认" in body and a.id_number not in body


def test_pdf_and_evidence_are_clean_404s_before_the_student_signs(app: Any, world: World) -> None:
    a = world.agreement_at("awaiting_student")
    phone = student_phone(app, world)
    r = phone.get(f"/m/agreements/{a.id}/pdf")
    assert r.status_code == 404 and "尚未生成" in text(r)
    r = phone.get(f"/m/agreements/{a.id}/evidence")
    assert r.status_code == 404 and "尚未生成" in text(r)


def test_signed_pdf_and_evidence_download(app: Any, world: World) -> None:
    a = world.agreement_at("completed")
    for phone in (student_phone(app, world), employer_phone(app, world)):
        for suffix, name in (("pdf", f"{a.number}.pdf"), ("evidence", f"evidence-{a.number}.pdf")):
            r = phone.get(f"/m/agreements/{a.id}/{suffix}")
            assert r.status_code == 200 and r.mimetype == "application/pdf"
            assert r.get_data().startswith(b"%PDF-") and name in r.headers["Content-Disposition"]


def test_student_withdraws(app: Any, world: World) -> None:
    a = world.agreement_at("applied")
    r = student_phone(app, world).post(f"/m/agreements/{a.id}/withdraw", {"version": a.version})
    assert r.status_code == 302 and Agreement.get_by_id(a.id).status == "withdrawn"


# ---------------------------------------------------------------- confirming

def test_employer_confirms_with_edited_terms_and_details(app: Any, world: World) -> None:
    a = world.agreement_at("applied")
    hr = employer_phone(app, world)
    assert "确认协议" in text(hr.get(f"/m/agreements/{a.id}/confirm"))
    r = hr.post(f"/m/agreements/{a.id}/confirm", {
        "action": "confirm", "version": a.version, **TERMS_FORM, "salary_yuan": "9000",
        "employer_address": "南昌市红谷滩区", "employer_postcode": "330000", "affiliation_code": "40",
        "accepts_hukou": "1"})
    assert r.status_code == 302
    a = Agreement.get_by_id(a.id)
    assert a.status == "awaiting_student" and a.monthly_salary_fen == 900000
    assert a.employer_address == "南昌市红谷滩区" and a.affiliation_code == "40" and a.accepts_hukou


def test_employer_rejects_with_reason(app: Any, world: World) -> None:
    a = world.agreement_at("applied")
    hr = employer_phone(app, world)
    r = hr.post(f"/m/agreements/{a.id}/confirm", {"action": "reject", "version": a.version, "reason": ""})
    assert r.status_code == 400 and "请填写拒绝原因" in text(r)
    r = hr.post(f"/m/agreements/{a.id}/confirm",
                {"action": "reject", "version": a.version, "reason": "岗位已满"})
    assert r.status_code == 302
    a = Agreement.get_by_id(a.id)
    assert a.status == "rejected" and a.closed_reason == "岗位已满"


def test_student_cannot_confirm(app: Any, world: World) -> None:
    a = world.agreement_at("applied")
    assert student_phone(app, world).get(f"/m/agreements/{a.id}/confirm").status_code == 403


def test_confirming_twice_is_a_wrong_state(app: Any, world: World) -> None:
    a = world.agreement_at("awaiting_student")
    r = employer_phone(app, world).get(f"/m/agreements/{a.id}/confirm")
    assert r.status_code == 409 and "待学生签署" in text(r)


# ---------------------------------------------------------------- signing

def test_student_signs_with_drawn_signature_and_id_check(app: Any, world: World) -> None:
    a = world.agreement_at("awaiting_student")
    phone = student_phone(app, world)
    body = text(phone.get(f"/m/agreements/{a.id}/sign"))
    assert 'id="sigpad"' in body and "高校毕业生就业协议书" in body
    r = phone.post(f"/m/agreements/{a.id}/sign", {"version": a.version, "signature": drawn_png(),
                                                   "id_last6": a.id_number[-6:]})
    assert r.status_code == 302
    assert Agreement.get_by_id(a.id).status == "awaiting_school"


@pytest.mark.parametrize("signature,message", [
    ("", "请在签名区域手写签名"),
    ("data:image/png;base64,not base64!", "签名图片无效"),
    ("data:image/png;base64," + base64.b64encode(b"GIF89a....").decode(), "签名图片无效"),
    (drawn_png(strokes=0), "签名为空"),
    (drawn_png(size=(40, 20)), "尺寸不正确"),
    (drawn_png(background=(255, 255, 255, 255)), "透明背景"),
    (drawn_png(background=(255, 255, 255), mode="RGB"), "透明背景"),
])
def test_bad_signatures_are_refused(app: Any, world: World, signature: str, message: str) -> None:
    a = world.agreement_at("awaiting_student")
    r = student_phone(app, world).post(f"/m/agreements/{a.id}/sign", {
        "version": a.version, "signature": signature, "id_last6": a.id_number[-6:]})
    assert r.status_code == 400 and message in text(r)
    assert Agreement.get_by_id(a.id).status == "awaiting_student"


def test_wrong_id_characters_are_refused_then_throttled(app: Any, world: World) -> None:
    a = world.agreement_at("awaiting_student")
    phone = student_phone(app, world)
    form = {"version": a.version, "signature": drawn_png(), "id_last6": "000000"}
    for _ in range(5):
        r = phone.post(f"/m/agreements/{a.id}/sign", form)
        assert r.status_code == 400 and "身份证号后六位不正确" in text(r)
    r = phone.post(f"/m/agreements/{a.id}/sign", {**form, "id_last6": a.id_number[-6:]})
    assert r.status_code == 429
    assert Agreement.get_by_id(a.id).status == "awaiting_student"


def test_a_damaged_png_signature_is_refused_not_a_500(app: Any, world: World) -> None:
    import struct

    a = world.agreement_at("awaiting_student")
    png = base64.b64decode(drawn_png().split(",", 1)[1])
    at = png.index(b"IDAT")  # a wrong IDAT length: Pillow raises SyntaxError("broken PNG file")
    length = struct.unpack(">I", png[at - 4:at])[0]
    broken = png[:at - 4] + struct.pack(">I", length // 2) + png[at:]
    r = student_phone(app, world).post(f"/m/agreements/{a.id}/sign", {
        "version": a.version, "signature": "data:image/png;base64," + base64.b64encode(broken).decode(),
        "id_last6": a.id_number[-6:]})
    assert r.status_code == 400 and "签名" in text(r)
    assert Agreement.get_by_id(a.id).status == "awaiting_student"


@pytest.mark.parametrize("value", ["²", "١٢", "1e3", " 7", "-1", "9" * 12])
def test_numbers_in_forms_and_urls_are_ascii_digits(app: Any, world: World, value: str) -> None:
    """Review finding: "²".isdigit() is True but int("²") fails – every such field answered 500."""
    a = world.agreement_at("awaiting_employer")
    hr = employer_phone(app, world)
    assert hr.post(f"/m/agreements/{a.id}/sign", {"version": value, "seal_id": value,
                                                   "pin": factories.PIN}).status_code == 400
    assert student_phone(app, world).get(f"/m/apply?employer={value}").status_code < 500
    assert Agreement.get_by_id(a.id).status == "awaiting_employer"


def test_stale_tab_gets_the_conflict_message(app: Any, world: World) -> None:
    a = world.agreement_at("awaiting_student")
    stale = a.version - 1  # the page was loaded before the employer confirmed
    phone = student_phone(app, world)
    r = phone.post(f"/m/agreements/{a.id}/sign", {"version": stale, "signature": drawn_png(),
                                                   "id_last6": a.id_number[-6:]})
    assert r.status_code == 409 and workflow.CONFLICT_MESSAGE in text(r)
    assert f'href="/m/agreements/{a.id}/sign"' in text(r)  # a refresh link back to the page
    assert Agreement.get_by_id(a.id).status == "awaiting_student"


def test_two_employer_tabs_confirm_and_reject_only_one_wins(app: Any, world: World) -> None:
    a = world.agreement_at("applied")
    hr = employer_phone(app, world)
    assert hr.post(f"/m/agreements/{a.id}/confirm", {"action": "confirm", "version": a.version,
                                                      **TERMS_FORM}).status_code == 302
    r = hr.post(f"/m/agreements/{a.id}/confirm", {"action": "reject", "version": a.version, "reason": "满员"})
    assert r.status_code == 409
    assert Agreement.get_by_id(a.id).status == "awaiting_student"


def test_employer_signs_with_seal_and_pin(app: Any, world: World) -> None:
    a = world.agreement_at("awaiting_employer")
    hr = employer_phone(app, world)
    body = text(hr.get(f"/m/agreements/{a.id}/sign"))
    assert f"/m/seals/{world.employer_seal.id}.png" in body
    assert hr.get(f"/m/seals/{world.employer_seal.id}.png").mimetype == "image/png"
    r = hr.post(f"/m/agreements/{a.id}/sign", {"version": a.version, "seal_id": world.employer_seal.id,
                                                "pin": "000000"})
    assert r.status_code == 400 and "签署密码不正确" in text(r)
    other_seal = factories.make_seal(employer=factories.make_employer())
    assert hr.get(f"/m/seals/{other_seal.id}.png").status_code == 404
    r = hr.post(f"/m/agreements/{a.id}/sign", {"version": a.version, "seal_id": other_seal.id,
                                                "pin": factories.PIN})
    assert r.status_code == 400 and "请选择本单位已启用的印章" in text(r)
    r = hr.post(f"/m/agreements/{a.id}/sign", {"version": a.version, "seal_id": world.employer_seal.id,
                                                "pin": factories.PIN})
    assert r.status_code == 302
    assert Agreement.get_by_id(a.id).status == "completed"


def test_signing_in_the_wrong_state_is_explained(app: Any, world: World) -> None:
    a = world.agreement_at("applied")
    r = student_phone(app, world).get(f"/m/agreements/{a.id}/sign")
    assert r.status_code == 409 and "现在不需要您签署" in text(r)


# ---------------------------------------------------------------- termination

@pytest.mark.parametrize("answer,final", [("agree", "terminated"), ("refuse", "completed")])
def test_termination_employer_starts_student_answers(app: Any, world: World, answer: str, final: str) -> None:
    a = world.agreement_at("completed")
    hr, phone = employer_phone(app, world), student_phone(app, world)
    assert phone.get(f"/m/agreements/{a.id}/termination").status_code == 409
    r = hr.post(f"/m/agreements/{a.id}/termination",
                {"action": "initiate", "version": a.version, "reason": " ", "pin": factories.PIN})
    assert r.status_code == 400 and "请填写解约原因" in text(r)
    # starting a termination binds the unit: the signing PIN confirms it
    r = hr.post(f"/m/agreements/{a.id}/termination", {"action": "initiate", "version": a.version,
                                                       "reason": "岗位调整", "pin": "000000"})
    assert r.status_code == 400 and "签署密码不正确" in text(r)
    assert Agreement.get_by_id(a.id).status == "completed"
    r = hr.post(f"/m/agreements/{a.id}/termination", {"action": "initiate", "version": a.version,
                                                       "reason": "岗位调整", "pin": factories.PIN})
    assert r.status_code == 302
    a = Agreement.get_by_id(a.id)
    assert a.status == "terminating"
    page = text(phone.get(f"/m/agreements/{a.id}/termination"))
    assert "岗位调整" in page and "身份证号后六位" in page
    # the employer cannot answer for the student
    r = hr.post(f"/m/agreements/{a.id}/termination", {"action": "agree", "version": a.version})
    assert r.status_code == 409
    if answer == "agree":  # agreeing ends the agreement: the student confirms with the ID's last six
        r = phone.post(f"/m/agreements/{a.id}/termination",
                       {"action": "agree", "version": a.version, "id_last6": "000000"})
        assert r.status_code == 400 and "身份证号后六位不正确" in text(r)
        assert Agreement.get_by_id(a.id).status == "terminating"
    r = phone.post(f"/m/agreements/{a.id}/termination",
                   {"action": answer, "version": a.version, "note": "不同意",
                    "id_last6": world.student.id_number[-6:]})
    assert r.status_code == 302
    assert Agreement.get_by_id(a.id).status == final


@pytest.mark.parametrize("who", ["student", "employer"])
def test_termination_confirmation_is_throttled(app: Any, world: World, who: str) -> None:
    """Guessing the ID's last six or the PIN on the termination page counts with the signing page's
    failures: after five wrong tries both answer 429, also to the right value."""
    a = world.agreement_at("terminating" if who == "student" else "completed")
    if who == "student":
        phone, field, right, action = student_phone(app, world), "id_last6", world.student.id_number[-6:], "agree"
    else:
        phone, field, right, action = employer_phone(app, world), "pin", factories.PIN, "initiate"
    for _ in range(5):
        r = phone.post(f"/m/agreements/{a.id}/termination",
                       {"action": action, "version": a.version, "reason": "调整", field: "999999"})
        assert r.status_code == 400
    r = phone.post(f"/m/agreements/{a.id}/termination",
                   {"action": action, "version": a.version, "reason": "调整", field: right})
    assert r.status_code == 429 and "验证失败次数过多" in text(r)
    assert Agreement.get_by_id(a.id).status == a.status


@pytest.mark.parametrize("who,expected", [("nobody", "请先绑定身份"), ("student", "申请就业协议"),
                                          ("employer", "待处理的协议：1 份")])
def test_home_page_by_binding(app: Any, world: World, who: str, expected: str) -> None:
    from flask import session

    from wechat_bot.pages import home

    world.agreement_at("applied", factories.make_student(world.school))
    if who == "student":
        student_phone(app, world, openid="o_home")
    elif who == "employer":
        employer_phone(app, world, openid="o_home")
    # Called directly: /m/ still belongs to wechat_bot's placeholder view until the lead swaps it.
    with app.test_request_context("/m/"):
        session["openid"] = "o_home"
        assert expected in home()


def test_whole_life_cycle_through_the_pages(app: Any, world: World) -> None:
    """Apply, confirm, sign (student), school auto-signs, sign (employer), terminate: pages only."""
    import jobs

    phone, hr = student_phone(app, world), employer_phone(app, world)
    r = phone.post("/m/apply", {"employer": world.employer.id, **TERMS_FORM, "action": "submit"})
    assert r.status_code == 302
    a = Agreement.get()
    assert hr.post(f"/m/agreements/{a.id}/confirm", {"action": "confirm", "version": a.version,
                                                      **TERMS_FORM}).status_code == 302
    a = Agreement.get_by_id(a.id)
    assert phone.post(f"/m/agreements/{a.id}/sign", {"version": a.version, "signature": drawn_png(),
                                                      "id_last6": a.id_number[-6:]}).status_code == 302
    jobs.drain()
    a = Agreement.get_by_id(a.id)
    assert a.status == "awaiting_employer"
    assert "请选择印章并签署协议" in text(hr.get(f"/m/agreements/{a.id}"))
    assert hr.post(f"/m/agreements/{a.id}/sign", {"version": a.version, "seal_id": world.employer_seal.id,
                                                   "pin": factories.PIN}).status_code == 302
    a = Agreement.get_by_id(a.id)
    assert a.status == "completed"
    body = text(phone.get(f"/m/agreements/{a.id}"))
    assert "协议已生效" in body and "下载协议PDF" in body
    for step in ("申请协议", "确认协议", "签署协议", "学校签署"):
        assert step in body


# ---------------------------------------------------------------- the document as page images

PAGE_SRC = re.compile(r'src="(/m/agreements/\d+/pages/\d+\.png\?v=\w+)"')


def _page_urls(body: str) -> list[str]:
    return PAGE_SRC.findall(body)


def test_sign_page_shows_the_pages_and_a_new_revision_gets_new_images(app: Any, world: World) -> None:
    a = world.agreement_at("awaiting_student")
    phone = student_phone(app, world)
    before = _page_urls(text(phone.get(f"/m/agreements/{a.id}/sign")))
    assert before
    r = phone.get(before[0])
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert Image.open(io.BytesIO(r.get_data())).width > 500
    assert phone.get(f"/m/agreements/{a.id}/pages/99.png").status_code == 404
    other = World().agreement_at("awaiting_student")
    assert phone.get(f"/m/agreements/{other.id}/pages/1.png").status_code == 404
    assert phone.post(f"/m/agreements/{a.id}/sign", {"version": a.version, "signature": drawn_png(),
                                                      "id_last6": a.id_number[-6:]}).status_code == 302
    after = _page_urls(text(phone.get(f"/m/agreements/{a.id}")))
    assert after and set(after).isdisjoint(before)  # the signed PDF's pages, under a new revision tag
    # only the shown revision's images stay in the store
    a = Agreement.get_by_id(a.id)
    stored = [k for k in storage.get_storage().keys(f"agreements/{a.graduation_year}/{a.number}/pages")
              if k.endswith(".png")]
    tag = after[0].rsplit("v=", 1)[1]
    assert len(stored) == len(after) and all(k.rsplit("/", 1)[1].startswith(tag + "-") for k in stored)
    assert phone.get(before[0]).status_code == 200  # an old URL shows the current revision's page


def test_a_stale_request_never_removes_the_current_revisions_pages(app: Any, world: World) -> None:
    """Review finding: a request that loaded the agreement just before it changed rasterises the old
    revision; its clean-up must leave the new revision's pages alone."""
    from wechat_bot import pages_document

    a = world.agreement_at("awaiting_student")
    stale = Agreement.get_by_id(a.id)
    workflow.student_sign(workflow.Actor.student(world.student), a.id, factories.SIGNATURE)
    fresh = Agreement.get_by_id(a.id)
    folder = f"agreements/{a.graduation_year}/{a.number}/pages"
    with app.test_request_context("/"):
        pages = pages_document.page_count(fresh)
        current = set(storage.get_storage().keys(folder))
        assert pages_document.page_count(stale) == pages  # the old revision, rasterised late
        assert current <= set(storage.get_storage().keys(folder))
        assert pages_document.page_count(fresh) == pages


def test_a_revision_with_a_missing_page_is_rasterised_again(app: Any, world: World) -> None:
    from wechat_bot import pages_document

    a = world.agreement_at("awaiting_student")
    store = storage.get_storage()
    folder = f"agreements/{a.graduation_year}/{a.number}/pages"
    with app.test_request_context("/"):
        pages = pages_document.page_count(a)
        last = next(k for k in store.keys(folder) if k.endswith(f"-{pages}.png"))
        store.delete(last)
        assert pages_document.page_count(a) == pages and store.exists(last)


def test_odd_files_do_not_stop_the_clean_up(app: Any, world: World) -> None:
    from wechat_bot import pages_document

    a = world.agreement_at("awaiting_student")
    store = storage.get_storage()
    folder = f"agreements/{a.graduation_year}/{a.number}/pages"
    with app.test_request_context("/"):
        pages_document.page_count(a)
        old = set(store.keys(folder))
        root = Path(store.root)  # type: ignore[attr-defined]
        (root / folder / ".DS_Store").write_bytes(b"finder")
        workflow.student_sign(workflow.Actor.student(world.student), a.id, factories.SIGNATURE)
        pages_document.page_count(Agreement.get_by_id(a.id))
        assert not old & set(store.keys(folder))  # the old revision is gone despite the odd file


def test_without_poppler_the_document_is_html(app: Any, world: World,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from wechat_bot import pages_document

    a = world.agreement_at("awaiting_student")
    monkeypatch.setattr(pages_document.shutil, "which", lambda name: None)
    body = text(student_phone(app, world).get(f"/m/agreements/{a.id}/sign"))
    assert not _page_urls(body) and "高校毕业生就业协议书" in body and 'id="sigpad"' in body


def test_concurrent_guesses_cannot_overshoot_the_limit(app: Any, world: World) -> None:
    import threading

    import models
    from wechat_bot.pages_store import LIMITS, throttled

    allowed: list[bool] = []
    barrier = threading.Barrier(12)

    def guess() -> None:
        with models.db.connection_context():
            barrier.wait()
            ok = not throttled("bind", "o_attacker")
        allowed.append(ok)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert allowed.count(True) == LIMITS["bind"]
