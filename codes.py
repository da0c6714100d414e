"""Code tables (loaded from codes.toml) and the check-digit rules of Chinese identifiers.

* Unified social credit code (统一社会信用代码), GB 32100-2015: 18 characters from a 31-letter alphabet;
  position 18 is a mod-31 check character and positions 9-17 are an organisation code (GB 11714)
  whose own mod-11 check character is position 17.
* Resident ID number (居民身份证号码), GB 11643-1999: 17 digits and an ISO 7064 MOD 11-2 check character.
"""
from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

_CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_ID_CHECK = "10X98765432"


@cache
def tables() -> dict[str, Any]:
    """All code tables, read once from codes.toml."""
    return tomllib.loads((Path(__file__).with_name("codes.toml")).read_text("utf-8"))


def label(table: str, code: str | None) -> str:
    """The Chinese label of a code, or the code itself when unknown."""
    if code is None:
        return ""
    return str(tables()[table].get(code, code))


def is_enterprise(nature_code: str) -> bool:
    """Whether a unit of this nature may register online (enterprises) or needs a school-issued account."""
    return nature_code in tables()["enterprise_natures"]["codes"]


def _org_check(body8: str) -> str:
    """GB 11714 check character for the 8-character organisation-code body."""
    # GB 11714 values letters by the full Latin alphabet (A=10 ... Z=35), unlike GB 32100.
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def _credit_check(body17: str) -> str:
    total = sum(_CREDIT_ALPHABET.index(c) * w for c, w in zip(body17, _CREDIT_WEIGHTS, strict=True))
    return _CREDIT_ALPHABET[(31 - total % 31) % 31]


def credit_code_error(code: str) -> str | None:
    """None when ``code`` is a well-formed unified social credit code, else the reason in Chinese."""
    if not isinstance(code, str) or len(code) != 18:
        return "统一社会信用代码应为18位"
    code = code.upper()
    if any(c not in _CREDIT_ALPHABET for c in code):
        return "统一社会信用代码含有不允许的字符（不使用 I、O、Z、S、V）"
    if code[16] != _org_check(code[8:16]):
        return "统一社会信用代码中的组织机构代码校验位不正确"
    if code[17] != _credit_check(code[:17]):
        return "统一社会信用代码校验位不正确"
    return None


def make_credit_code(prefix16: str) -> str:
    """Complete a 16-character body (registration authority, type, region, org body) with both checks.

    Used by the demo and tests to make valid codes; ``prefix16`` is the first 16 characters."""
    body16 = prefix16.upper()
    if len(body16) != 16:
        raise ValueError("need the first 16 characters")
    body17 = body16 + _org_check(body16[8:16])
    return body17 + _credit_check(body17)


def id_number_error(number: str) -> str | None:
    """None when ``number`` is a well-formed 18-character resident ID number, else the reason in Chinese."""
    if not isinstance(number, str) or not re.fullmatch(r"\d{17}[\dXx]", number):
        return "身份证号码应为17位数字加1位数字或X"
    total = sum(int(c) * w for c, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    if number[17].upper() != _ID_CHECK[total % 11]:
        return "身份证号码校验位不正确"
    return None


def make_id_number(body17: str) -> str:
    """Complete 17 digits with the check character (demo and tests)."""
    total = sum(int(c) * w for c, w in zip(body17, _ID_WEIGHTS, strict=True))
    return body17 + _ID_CHECK[total % 11]


def mask_id(number: str | None) -> str:
    """An ID number as it may be shown: the first 4 characters (the province and city), then stars.

    Nothing of the end is shown, unlike the usual "first 3 + last 4": the last six characters are
    the secret a student binds with and confirms a signature with, and four of them on the public
    /verify page would leave a guesser 31 birthdays to try."""
    if not number:
        return ""
    return number[:4] + "*" * (len(number) - 4) if len(number) > 8 else "*" * len(number)


def mask_name(name: str | None) -> str:
    """A person's name as it may be shown publicly: the family name and stars (王**)."""
    if not name:
        return ""
    return name[:1] + "*" * (len(name) - 1) if len(name) > 1 else name


def mask_phone(phone: str | None) -> str:
    """A phone number as it may be shown: 138****5678."""
    if not phone:
        return ""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "*" * len(phone)
