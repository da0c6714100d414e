"""Identifier check digits and masking."""
from __future__ import annotations

import pytest

import codes


@pytest.mark.parametrize("code", ["91350100M000100Y43", "91110000802100433B",
                                  codes.make_credit_code("91360100MA351111")])
def test_valid_credit_codes(code: str) -> None:
    assert codes.credit_code_error(code) is None


@pytest.mark.parametrize("code, reason", [
    ("91350100M000100Y42", "校验位"), ("91350100M000100Y4", "18位"), ("91350100M000I00Y43", "不允许"),
    ("91350100M000101Y43", "组织机构代码"),
])
def test_invalid_credit_codes(code: str, reason: str) -> None:
    assert reason in codes.credit_code_error(code)


def test_id_numbers() -> None:
    assert codes.id_number_error("11010519491231002X") is None
    assert "校验位" in codes.id_number_error("110105194912310021")
    assert codes.id_number_error("1101051949123100") is not None
    # nothing of the last six characters, the secret that binds a student and confirms a signature
    assert codes.mask_id("11010519491231002X") == "1101**************"
    assert codes.mask_phone("13812345678") == "138****5678"


def test_tables_are_data() -> None:
    assert codes.label("unit_nature", "23") == "医疗卫生单位"
    assert codes.is_enterprise("31") and not codes.is_enterprise("10")
