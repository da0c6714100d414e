"""Form helpers of the WeChat pages: CSRF tokens, number parsing, the terms form and the drawn signature.

Every POST form carries ``csrf_token``; :func:`check_csrf` compares it with the session's token in
constant time. Parsers return ``(value, errors)`` with Chinese reasons keyed by form field, so a page
can show each reason beside its field instead of failing the request.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import io
import re
import secrets
import struct
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import session
from PIL import Image, UnidentifiedImageError
from werkzeug.datastructures import MultiDict

from wechat_bot import pages_texts as T
from workflow import Terms

CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"

# The drawn signature: a PNG data URL from the canvas.
SIGNATURE_MAX_BYTES = 512 * 1024
SIGNATURE_MIN_SIDE, SIGNATURE_MAX_SIDE = 100, 2000
SIGNATURE_MIN_INK_PIXELS = 80
"""Fewer opaque pixels than this is a blank canvas or a dot, not a signature."""
SIGNATURE_MIN_TRANSPARENT = 0.3
"""At least this share of the pixels must be transparent: the signature goes over the document."""


def csrf_token() -> str:
    """The session's CSRF token (created on first use); put it in every POST form."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return token


def check_csrf(form: MultiDict[str, str]) -> None:
    """Abort with 400 unless the form's token equals the session's token."""
    expected = session.get(CSRF_KEY)
    given = form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not expected or not given \
            or not hmac.compare_digest(expected.encode(), given.encode()):
        raise _bad_request()


def _bad_request() -> Any:
    from werkzeug.exceptions import BadRequest

    exc = BadRequest()
    exc.description_zh = T.CSRF_FAILED  # type: ignore[attr-defined]
    return exc


def text(form: MultiDict[str, str], name: str, max_len: int = 500) -> str:
    """A stripped text field, cut to ``max_len`` characters."""
    return (form.get(name) or "").strip()[:max_len]


def small_int(raw: str | None) -> int | None:
    """An id or version typed into a form or URL: 1 to 9 ASCII digits, else None. (``str.isdigit``
    accepts "²", which ``int`` refuses.)"""
    return int(raw) if raw and re.fullmatch(r"[0-9]{1,9}", raw) else None


def yuan_to_fen(raw: str) -> int:
    """'8000' or '8000.5' yuan -> 800050 fen; ValueError for anything else (negative, 3 decimals...)."""
    raw = raw.strip().replace(",", "").replace("，", "")
    if not re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,2})?", raw):
        raise ValueError(raw)
    try:
        return int(Decimal(raw) * 100)
    except InvalidOperation as exc:  # pragma: no cover - excluded by the pattern
        raise ValueError(raw) from exc


def fen_to_yuan(fen: int | None) -> str:
    """800050 -> '8000.50'; 800000 -> '8000'."""
    if fen is None:
        return ""
    yuan, cents = divmod(int(fen), 100)
    return f"{yuan}" if cents == 0 else f"{yuan}.{cents:02d}"


def optional_int(raw: str) -> int:
    """A whole number from a form field; ValueError otherwise."""
    raw = raw.strip()
    if not re.fullmatch(r"\d{1,4}", raw):
        raise ValueError(raw)
    return int(raw)


TERM_FIELDS = ("position", "work_location", "salary_yuan", "probation_months", "internship_period",
               "contract_years", "damages_yuan", "remarks")
# Terms.validate() reports by dataclass field; the form names the money fields in yuan.
_FORM_NAME = {"monthly_salary_fen": "salary_yuan", "liquidated_damages_fen": "damages_yuan"}


def terms_form_values(t: Any) -> dict[str, str]:
    """Form values for an object with the Terms fields (a Terms or an Agreement)."""
    return {
        "position": t.position, "work_location": t.work_location,
        "salary_yuan": fen_to_yuan(t.monthly_salary_fen),
        "probation_months": "" if t.probation_months is None else str(t.probation_months),
        "internship_period": t.internship_period,
        "contract_years": "" if t.contract_years is None else str(t.contract_years),
        "damages_yuan": fen_to_yuan(t.liquidated_damages_fen), "remarks": t.remarks,
    }


def parse_terms(form: MultiDict[str, str]) -> tuple[Terms | None, dict[str, str]]:
    """The Terms from a terms form, validated by the workflow's rules, or the errors per form field."""
    errors: dict[str, str] = {}
    salary = damages = 0
    probation: int | None = None
    years: int | None = None
    try:
        salary = yuan_to_fen(form.get("salary_yuan", ""))
    except ValueError:
        errors["salary_yuan"] = T.SALARY_INVALID
    raw_damages = form.get("damages_yuan", "").strip()
    if raw_damages:
        try:
            damages = yuan_to_fen(raw_damages)
        except ValueError:
            errors["damages_yuan"] = T.DAMAGES_INVALID
    if form.get("probation_months", "").strip():
        try:
            probation = optional_int(form["probation_months"])
        except ValueError:
            errors["probation_months"] = T.PROBATION_INVALID
    if form.get("contract_years", "").strip():
        try:
            years = optional_int(form["contract_years"])
        except ValueError:
            errors["contract_years"] = T.CONTRACT_YEARS_INVALID
    terms = Terms(position=text(form, "position", 200), work_location=text(form, "work_location", 200),
                  monthly_salary_fen=salary, probation_months=probation,
                  internship_period=text(form, "internship_period", 100), contract_years=years,
                  liquidated_damages_fen=damages, remarks=text(form, "remarks", 4000))
    from workflow import InvalidInput

    try:
        terms.validate()
    except InvalidInput as exc:
        for key, reason in exc.fields.items():
            errors.setdefault(_FORM_NAME.get(key, key), reason)
    return (None, errors) if errors else (terms, {})


def decode_signature(data_url: str) -> tuple[bytes | None, str]:
    """The PNG bytes of a drawn signature (``data:image/png;base64,...``) or (None, reason in Chinese).

    Checked with Pillow: a real PNG, sensible size, and enough ink that it is not a blank canvas."""
    prefix = "data:image/png;base64,"
    if not data_url or not data_url.startswith(prefix):
        return None, T.SIGNATURE_MISSING
    encoded = data_url[len(prefix):]
    if len(encoded) > SIGNATURE_MAX_BYTES * 4 // 3 + 8:
        return None, T.SIGNATURE_TOO_LARGE
    try:
        png = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None, T.SIGNATURE_INVALID
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        return None, T.SIGNATURE_INVALID
    try:
        with Image.open(io.BytesIO(png)) as img:
            if img.format != "PNG":
                return None, T.SIGNATURE_INVALID
            w, h = img.size
            if not (SIGNATURE_MIN_SIDE <= w <= SIGNATURE_MAX_SIDE and 50 <= h <= SIGNATURE_MAX_SIDE):
                return None, T.SIGNATURE_SIZE
            img.load()
            has_alpha = img.mode in ("RGBA", "LA") or "transparency" in img.info
            alpha = img.convert("RGBA").getchannel("A")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error,
            Image.DecompressionBombError):
        # a damaged PNG makes Pillow raise any of these (SyntaxError: "broken PNG file (chunk …)")
        return None, T.SIGNATURE_INVALID
    opaque = alpha.point(lambda v: 255 if v > 32 else 0).histogram()[255]
    if not has_alpha or (w * h - opaque) < SIGNATURE_MIN_TRANSPARENT * w * h:
        return None, T.SIGNATURE_NOT_TRANSPARENT
    if opaque < SIGNATURE_MIN_INK_PIXELS:
        return None, T.SIGNATURE_BLANK
    return png, ""


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two short secrets, ignoring case and surrounding spaces."""
    return bool(expected) and hmac.compare_digest(given.strip().upper().encode(),
                                                  expected.strip().upper().encode())
