"""Template-message field kinds, checked the way WeChat checks them (errcode 47003 on a violation).

Since 2023 a template's keys name their kind followed by a number (``thing1``, ``time2``,
``character_string3``...). Keys of the old style (``first``, ``keyword1``, ``remark``) are not checked;
``first`` and ``remark`` are no longer shown on phones.
"""

from __future__ import annotations

import re
from typing import Any

_DATE = r"(\d{4}年\d{1,2}月\d{1,2}日|\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2})"
_CLOCK = r"([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?"
_POINT = rf"({_DATE}(\s*{_CLOCK})?|{_CLOCK})"
_TIME = re.compile(rf"^{_POINT}(\s*~\s*{_POINT})?$")
_AMOUNT = re.compile(r"^[¥￥$€£]?\d{1,10}(\.\d{1,2})?元?$")
_NUMBER = re.compile(r"^\d{1,32}(\.\d+)?$")
_HAN = re.compile(r"^[\u3400-\u9fff]+$")
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]*$")

HIDDEN_KEYS = ("first", "remark")
"""Keys WeChat accepts but no longer shows (since 2023)."""

KINDS = (
    "thing",
    "character_string",
    "phrase",
    "time",
    "date",
    "amount",
    "number",
    "letter",
    "symbol",
    "phone_number",
    "car_number",
    "name",
    "const",
)
_KEY = re.compile(rf"^({'|'.join(sorted(KINDS, key=len, reverse=True))})\d+$")


def kind_of(key: str) -> str | None:
    """The field kind a template key names (``thing3`` -> ``thing``), None for old-style keys."""
    m = _KEY.match(key)
    return m.group(1) if m else None


def check_value(kind: str, value: str) -> str | None:
    """None when ``value`` is valid for ``kind``, else WeChat's complaint."""
    n = len(value)
    if kind == "thing":
        return None if 0 < n <= 20 else "exceed length limit (thing: 20 characters)" if n else "empty"
    if kind == "character_string":
        if n > 32:
            return "exceed length limit (character_string: 32)"
        return (
            None
            if _PRINTABLE_ASCII.match(value)
            else "character_string allows ASCII letters, digits, symbols"
        )
    if kind == "phrase":
        return None if 0 < n <= 5 and _HAN.match(value) else "phrase: up to 5 Chinese characters"
    if kind in ("time", "date"):
        return None if _TIME.match(value.strip()) else f"{kind}: not a date/time WeChat accepts"
    if kind == "amount":
        return None if _AMOUNT.match(value) else "amount: currency symbol + up to 10 digits (2 decimals)"
    if kind == "number":
        return None if _NUMBER.match(value) else "number: up to 32 digits"
    if kind == "letter":
        return None if 0 < n <= 32 and value.isascii() and value.isalpha() else "letter: up to 32 letters"
    if kind == "symbol":
        return (
            None
            if 0 < n <= 5 and _PRINTABLE_ASCII.match(value) and not value.isalnum()
            else "symbol: up to 5"
        )
    if kind == "phone_number":
        return None if 0 < n <= 17 and re.match(r"^[\d+\-() ]+$", value) else "phone_number: up to 17 digits"
    if kind == "car_number":
        return None if 0 < n <= 8 else "car_number: up to 8 characters"
    if kind == "name":
        ok = (_HAN.match(value) and n <= 10) or (value.isascii() and n <= 20)
        return None if ok and n else "name: up to 10 Chinese characters or 20 letters"
    return None


def check_data(data: Any) -> str | None:
    """None when a template message's ``data`` is acceptable, else the errmsg detail for 47003."""
    if not isinstance(data, dict):
        return "data must be an object"
    for key, item in data.items():
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            return f"data.{key}.value invalid"
        kind = kind_of(key)
        if kind is None:
            continue
        problem = check_value(kind, item["value"])
        if problem:
            return f"data.{key}.value invalid: {problem}"
    return None
