"""Keep secrets out of logs and stored error texts.

HTTP client errors quote the URL they failed on, and WeChat's URLs carry the AppSecret, access
tokens and OAuth codes in their query strings. :func:`redact` blanks those values; :func:`install`
makes every log record pass through it (message, arguments and traceback text), whichever handler
later writes it.
"""
from __future__ import annotations

import logging
import re
import traceback

_SECRET_PARAMS = re.compile(
    r"(?i)\b(secret|appsecret|access_token|refresh_token|code|ticket|password|signature|msg_signature|"
    r"encoding_aes_key|sign)=([^&\s'\"<>)]+)")
_BEARER = re.compile(r"(?i)(authorization:\s*\S+\s+)(\S+)")


def redact(text: str) -> str:
    """``text`` with the values of secret-bearing query parameters replaced by ``***``."""
    return _BEARER.sub(r"\1***", _SECRET_PARAMS.sub(r"\1=***", text))


_installed = False


def install() -> None:
    """Redact every log record at creation (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logged as it is
            return record
        record.msg, record.args = redact(message), ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
