"""The pages on every database backend: binding (unique openid/student, throttling table) and the whole
life cycle through the pages."""
from __future__ import annotations

from typing import Any

import pytest

from models import Agreement, WechatBinding
from tests import factories
from tests.wechat_bot import test_pages as pages_tests
from tests.wechat_bot.test_pages import Phone, bind_form

app = pages_tests.app
world = pages_tests.world


@pytest.fixture
def db_url(any_db: str) -> str:
    return any_db


def test_binding_and_throttling(app: Any, world: Any) -> None:
    phone = Phone(app, "o_a")
    for _ in range(5):
        assert phone.post("/m/bind", bind_form(world, id_last6="000000")).status_code == 400
    assert phone.post("/m/bind", bind_form(world)).status_code == 429
    assert Phone(app, "o_b").post("/m/bind", bind_form(world)).status_code == 302
    assert Phone(app, "o_c").post("/m/bind", bind_form(world)).status_code == 409
    assert [b.openid for b in WechatBinding.select()] == ["o_b"]


def test_life_cycle_and_stale_tab(app: Any, world: Any) -> None:
    pages_tests.test_whole_life_cycle_through_the_pages(app, world)
    a = Agreement.get()  # completed; the employer user "o_hr" now submits a stale termination form
    r = Phone(app, "o_hr").post(f"/m/agreements/{a.id}/termination",
                                {"action": "initiate", "version": a.version - 1, "reason": "调整",
                                 "pin": factories.PIN})
    assert r.status_code == 409 and "协议已被他人更新" in r.get_data(as_text=True)
    assert Agreement.get_by_id(a.id).status == "completed"


@pytest.mark.parametrize("request_args", [
    ("get", "/m/apply?q=a%00b", None), ("get", "/m/apply?invite=A%00", None),
    ("post", "/m/bind", {"school": "10001\x00", "student_no": "1", "name": "x", "id_last6": "000000"}),
    ("post", "/m/bind/staff", {"code": "AB\x00CD"}),
    ("get", "/verify/ABCD%00EFGH", None),
])
def test_nul_characters_are_refused_on_every_database(app: Any, world: Any, request_args: Any) -> None:
    """Review finding: PostgreSQL refuses NUL in any text value; such requests answered 500 there."""
    method, path, form = request_args
    phone = pages_tests.student_phone(app, world) if path != "/m/bind" else Phone(app, "o_nul")
    r = phone.get(path) if method == "get" else phone.post(path, form)
    assert r.status_code == 400 and "无效字符" in r.get_data(as_text=True)
