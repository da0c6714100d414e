"""Frozen report types of :func:`signing.verify.verify_pdf` and the CLI exit-code contract."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ArchiveMatch", "SignatureReport", "VerificationReport", "exit_code"]


@dataclass(frozen=True)
class ArchiveMatch:
    """What the archive knows about a file hash (returned by the ``known_document_hashes`` callback)."""

    agreement_no: str
    description: str = ""
    """E.g. "completed copy" or "after school signature"."""
    in_force: bool = True
    """False for a genuine file that is not an agreement in force: an intermediate revision, or an
    agreement since terminated or cancelled. ``verify_pdf`` then reports it as not ok."""
    status_zh: str = ""
    """Why it is not in force, in Chinese (e.g. "该协议已解约"); shown on the report page."""


@dataclass(frozen=True)
class SignatureReport:
    """Result for one signature or document timestamp in the file."""

    field_name: str
    kind: str
    """"signature" (a party or the platform) or "document_timestamp"."""
    signer_subject: str
    signer_serial: int | None
    signing_time: dt.datetime | None
    timestamp_authority: str | None
    timestamp_time: dt.datetime | None
    timestamp_valid: bool
    intact: bool
    valid: bool
    trusted: bool
    revoked: bool
    revoked_subject: str | None
    covers_revision: int
    """Index (0-based) of the revision the signature covers."""
    total_revisions: int
    modification: str
    """"none", "lta_updates", "form_filling", "annotations", "other" or "unknown"."""
    agreement_no: str | None
    """Agreement number written into the event certificate (OU "Agreement ...")."""
    problems: tuple[tuple[str, str], ...]
    """(Chinese, English) description of each problem; empty when the signature is fine."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong with this signature."""
        return not self.problems


@dataclass(frozen=True)
class VerificationReport:
    """Document-level verdict plus one :class:`SignatureReport` per signature."""

    readable: bool
    sha256: str
    size: int
    signatures: tuple[SignatureReport, ...] = ()
    agreement_no: str | None = None
    archive_checked: bool = False
    archive_match: ArchiveMatch | None = None
    ok: bool = False
    reason_zh: str = ""
    reason_en: str = ""
    problems: tuple[tuple[str, str], ...] = field(default=())

    @property
    def matches_archive(self) -> bool | None:
        """True/False when an archive was consulted, None otherwise."""
        return (self.archive_match is not None) if self.archive_checked else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (datetimes as ISO 8601 strings)."""
        data = asdict(self)
        data["matches_archive"] = self.matches_archive
        for sig, rep in zip(data["signatures"], self.signatures, strict=True):
            sig["ok"] = rep.ok
        return _jsonable(data)  # type: ignore[no-any-return]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def exit_code(report: VerificationReport) -> int:
    """CLI exit code: 0 all valid (and archived if checked), 1 anything wrong, 2 unreadable PDF."""
    if not report.readable:
        return 2
    return 0 if report.ok else 1
