"""Validation report for any PDF: what the QR verification page, the admin console and the CLI show.

``verify_pdf`` never raises on bad input: garbage, truncated or encrypted files give a report with
``readable=False``. Each signature is checked with pyHanko, offline, against the trust roots given:

* intact (document bytes match the signed digest) and valid (the CMS signature verifies);
* trusted chain to one of ``trust_roots``, evaluated **at the signature's timestamp** (event
  certificates live one day; the RFC 3161 token proves the signature was made while it was valid);
* revocation: every certificate of the chain is looked up in the CRLs embedded in the file (DSS)
  and in ``crls`` passed by the caller (pass the platform's current CRLs to see fresh revocations);
* modifications after the signature (pyHanko difference analysis): adding later signatures,
  the DSS and the document timestamp is allowed; anything else is reported as tampering.

``exit_code(report)`` maps the report onto the CLI contract: 0 = all valid (and matches the
archive when one was consulted), 1 = anything wrong, 2 = not a readable PDF.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as crypto_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import (
    SignatureCoverageLevel,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko_certvalidator import ValidationContext

from . import _sync
from . import verify_texts as T
from .report import ArchiveMatch, SignatureReport, VerificationReport, exit_code

__all__ = ["ArchiveMatch", "SignatureReport", "VerificationReport", "abnormal_report", "exit_code", "verify_pdf"]

log = logging.getLogger(__name__)

TrustRoot: TypeAlias = crypto_x509.Certificate | asn1_x509.Certificate | bytes

_ALLOWED_LEVELS = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES, ModificationLevel.FORM_FILLING)
# after the last signature or document timestamp, only validation data (DSS) and timestamps may follow
_ALLOWED_AFTER_FINAL = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES)

# Bounds far above any agreement (about 200 objects, 5 revisions, 4 signatures) and far below what
# makes pyHanko spend minutes or gigabytes: an xref stream claiming 10^7 entries takes 28 s and
# 2 GB to read; 2000 fields pointing at one signature, quadratic time in the difference analysis.
MAX_OBJECTS = 50_000
MAX_REVISIONS = 16
MAX_SIGNATURES = 8
_SIZE = re.compile(rb"/Size\s+(\d{1,20})")
_INDEX = re.compile(rb"/Index\s*\[([\d\s]{0,2000})\]")
_LEVELS = {level.name.lower(): level for level in ModificationLevel}


def _as_asn1(cert: TrustRoot) -> asn1_x509.Certificate:
    if isinstance(cert, asn1_x509.Certificate):
        return cert
    if isinstance(cert, bytes):
        if cert.lstrip().startswith(b"-----"):
            return asn1_x509.Certificate.load(crypto_x509.load_pem_x509_certificate(cert).public_bytes(Encoding.DER))
        return asn1_x509.Certificate.load(cert)
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def verify_pdf(
    pdf: bytes,
    trust_roots: Sequence[TrustRoot],
    *,
    known_document_hashes: Callable[[str], ArchiveMatch | None] | None = None,
    crls: Iterable[bytes] = (),
    tsa_trust_roots: Sequence[TrustRoot] = (),
) -> VerificationReport:
    """Check every signature of ``pdf`` and the file as a whole; never raises on bad input.

    ``trust_roots``: accepted root certificates (cryptography, asn1crypto, DER or PEM).
    ``known_document_hashes``: optional lookup of the file's sha256 in the archive.
    ``crls``: extra DER CRLs, e.g. the platform's current ones, on top of those in the file.
    ``tsa_trust_roots``: roots accepted for timestamps only (an external TSA's); they never make a
    party's signature trusted.
    """
    sha = hashlib.sha256(pdf).hexdigest()
    if _claims_too_many_objects(pdf):
        log.info("refused an abnormal PDF sha256=%s (%d bytes): object counts", sha[:16], len(pdf))
        return _too_complex(sha, len(pdf))
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        if reader.encrypted:
            raise ValueError("encrypted")
        embedded = list(reader.embedded_signatures)
        # the agreement number as the earliest signature saw it: protected by that signature, unlike
        # the last revision's /Info
        info_subject = _info_subject(reader, min((sig.signed_revision for sig in embedded), default=None))
        total = reader.xrefs.total_revisions
    except Exception as exc:  # any parse failure means "not a PDF we can read"
        log.info("unreadable PDF sha256=%s (%d bytes): %s", sha[:16], len(pdf), exc)
        return VerificationReport(
            readable=False,
            sha256=sha,
            size=len(pdf),
            reason_zh=T.UNREADABLE[0],
            reason_en=T.UNREADABLE[1],
            problems=(T.UNREADABLE,),
        )
    if len(embedded) > MAX_SIGNATURES or total > MAX_REVISIONS:
        return _too_complex(sha, len(pdf), readable=True, agreement_no=info_subject)
    try:
        roots = [_as_asn1(c) for c in trust_roots]
        ts_roots = roots + [_as_asn1(c) for c in tsa_trust_roots]
        extra_crls = [asn1_crl.CertificateList.load(c) for c in crls]
        sigs = _sync.run(_check_all(reader, embedded, roots, ts_roots, extra_crls, total))
    except Exception as exc:  # damaged signature structures: still a verdict, never a crash
        log.warning("signature check failed for sha256=%s: %s", sha[:16], exc, exc_info=True)
        problem = (T.DAMAGED[0] + f"（{exc}）", T.DAMAGED[1] + f" ({exc})")
        return VerificationReport(
            readable=True,
            sha256=sha,
            size=len(pdf),
            agreement_no=info_subject,
            reason_zh=problem[0],
            reason_en=problem[1],
            problems=(problem,),
        )
    return _summarise(sha, len(pdf), sigs, info_subject, known_document_hashes)


def abnormal_report(pdf: bytes) -> VerificationReport:
    """The report for a file whose checking was given up (too large or too complex to read)."""
    return _too_complex(hashlib.sha256(pdf).hexdigest(), len(pdf))


def _too_complex(sha: str, size: int, readable: bool = False, agreement_no: str | None = None
                 ) -> VerificationReport:
    return VerificationReport(readable=readable, sha256=sha, size=size, agreement_no=agreement_no,
                              reason_zh=T.TOO_COMPLEX[0], reason_en=T.TOO_COMPLEX[1], problems=(T.TOO_COMPLEX,))


def _claims_too_many_objects(pdf: bytes) -> bool:
    """Whether a cross-reference section claims more objects than :data:`MAX_OBJECTS` (its /Size or
    the ranges of an xref stream's /Index), read from the raw bytes before any parser trusts them."""
    for m in _SIZE.finditer(pdf):
        if int(m.group(1)) > MAX_OBJECTS:
            return True
    for m in _INDEX.finditer(pdf):
        numbers = [int(n) for n in m.group(1).split()]
        if any(n > MAX_OBJECTS for n in numbers) or sum(numbers[1::2]) > MAX_OBJECTS:
            return True
    return False


def _info_subject(reader: PdfFileReader, revision: int | None = None) -> str | None:
    """The /Subject of the document information dictionary (our agreement number) in ``revision``
    (default: the last one), if readable."""
    try:
        if revision is None:
            info = reader.trailer_view.get("/Info")
            info = info.get_object() if info is not None else None
        else:  # resolved through the historical resolver: get_object() would read the newest copy
            resolver = reader.get_historical_resolver(revision)
            ref = resolver.trailer_view.raw_get("/Info")
            info = resolver(ref.reference) if hasattr(ref, "reference") else ref
        subject = info.get("/Subject") if info is not None else None
    except Exception:  # noqa: BLE001 - /Info may be anything in a hostile file
        return None
    return str(subject) if subject is not None else None


def _summarise(
    sha: str,
    size: int,
    sigs: list[SignatureReport],
    agreement_no: str | None,
    lookup: Callable[[str], ArchiveMatch | None] | None,
) -> VerificationReport:
    problems: list[tuple[str, str]] = []
    if not sigs:
        problems.append(T.NO_SIGNATURES)
    elif all(sig.kind == "document_timestamp" for sig in sigs):
        problems.append(T.NO_PARTY_SIGNATURE)  # anyone can timestamp any file at a public TSA
    # the agreement the file belongs to; without /Info, the one the first signature's certificate names
    agreement_no = agreement_no or next((sig.agreement_no for sig in sigs if sig.agreement_no), None)
    for sig in sigs:
        problems += [(f"{sig.field_name}：{zh}", f"{sig.field_name}: {en}") for zh, en in sig.problems]
        if agreement_no and sig.agreement_no and sig.agreement_no != agreement_no:
            problems.append(
                (
                    f"{sig.field_name}：{T.OTHER_AGREEMENT[0]}（{sig.agreement_no}）",
                    f"{sig.field_name}: {T.OTHER_AGREEMENT[1]} ({sig.agreement_no})",
                )
            )
    match = lookup(sha) if lookup is not None else None
    if lookup is not None and match is None:
        problems.append(T.NOT_ARCHIVED)
    elif match is not None and not match.in_force:
        problems.append(T.not_in_force(match.status_zh or "该文件不是生效的协议", match.description))
    if problems:
        zh = "；".join(p[0] for p in problems)
        en = "; ".join(p[1] for p in problems)
    else:
        zh, en = T.all_ok(len(sigs), match is not None)
    return VerificationReport(
        readable=True,
        sha256=sha,
        size=size,
        signatures=tuple(sigs),
        agreement_no=agreement_no,
        archive_checked=lookup is not None,
        archive_match=match,
        ok=not problems,
        reason_zh=zh,
        reason_en=en,
        problems=tuple(problems),
    )


async def _check_all(
    reader: PdfFileReader,
    embedded: list[EmbeddedPdfSignature],
    roots: list[asn1_x509.Certificate],
    ts_roots: list[asn1_x509.Certificate],
    extra_crls: list[asn1_crl.CertificateList],
    total: int,
) -> list[SignatureReport]:
    try:
        dss = DocumentSecurityStore.read_dss(reader)
        dss_certs = list(dss.load_certs())
        dss_crls = [asn1_crl.CertificateList.load(ref.get_object().data) for ref in dss.crls]
    except Exception:  # no DSS (not finalized yet) or unreadable DSS: validate without it
        dss_certs, dss_crls = [], []
    all_crls = dss_crls + extra_crls
    reports = []
    # Difference analysis is the expensive part. The earliest signature's analysis walks every later
    # revision; when all of them are allowed changes, each later signature (covering a suffix of
    # those revisions) inherits that verdict instead of re-walking them. Otherwise every signature
    # gets its own analysis so the report pinpoints where the tampering starts.
    # The signature covering the highest revision is never given an inherited verdict: what follows
    # it must be validation data only, and only its own analysis can tell.
    inherited: ModificationLevel | None = None
    final_revision = max(sig.signed_revision for sig in embedded)
    for sig in embedded:
        certs = dss_certs + list(sig.other_embedded_certs)
        final = sig.signed_revision == final_revision
        skip = inherited is not None and not final
        given = None if final else inherited
        if sig.sig_object_type == "/DocTimeStamp":
            rep = await _check_timestamp(sig, ts_roots, certs, all_crls, total, skip, given, final)
        else:
            rep = await _check_signature(sig, roots, ts_roots, certs, all_crls, total, skip, given, final)
        reports.append(rep)
        level = _LEVELS.get(rep.modification)
        if inherited is None and level is not None and level in _ALLOWED_LEVELS:
            inherited = level
    return reports


def _context(
    roots: list[asn1_x509.Certificate],
    certs: list[asn1_x509.Certificate],
    crls: list[asn1_crl.CertificateList],
    moment: dt.datetime | None,
) -> ValidationContext:
    return ValidationContext(
        trust_roots=roots,
        other_certs=certs,
        crls=crls,
        allow_fetching=False,
        moment=moment,
        retroactive_revinfo=True,
        revocation_mode="soft-fail",
    )


def _token_time(sig: EmbeddedPdfSignature) -> dt.datetime | None:
    """gen_time of the signature timestamp token, read without validating it (validated below)."""
    try:
        for attr in sig.signer_info["unsigned_attrs"]:
            if attr["type"].native == "signature_time_stamp_token":
                tst = attr["values"][0]["content"]["encap_content_info"]["content"].parsed
                when: dt.datetime = tst["gen_time"].native
                return when
    except (KeyError, TypeError, ValueError):
        return None
    return None


async def _check_signature(
    sig: EmbeddedPdfSignature,
    roots: list[asn1_x509.Certificate],
    ts_roots: list[asn1_x509.Certificate],
    certs: list[asn1_x509.Certificate],
    crls: list[asn1_crl.CertificateList],
    total: int,
    skip_diff: bool,
    inherited: ModificationLevel | None,
    final: bool = False,
) -> SignatureReport:
    moment = _token_time(sig)
    vc = _context(roots, certs, crls, moment)
    # With only our own TSA, one context serves the signer and its timestamp (both chains end at our
    # root: the root CRL and path building are done once). An external TSA's root gets a context of
    # its own, so that it can never vouch for a party's signature.
    ts_vc = vc if len(ts_roots) == len(roots) else _context(ts_roots, certs, crls, moment)
    status = await async_validate_pdf_signature(sig, vc, ts_validation_context=ts_vc, skip_diff=skip_diff)
    ts = status.timestamp_validity
    problems = _integrity_problems(status, moment)
    if ts is None:
        problems.append(T.NO_TIMESTAMP)
    elif not (ts.intact and ts.valid and ts.trusted):
        problems.append(T.BAD_TIMESTAMP)
    return _finish(
        sig,
        status,
        inherited,
        problems,
        crls,
        certs,
        total,
        "signature",
        ts.signing_cert if ts else None,
        ts.timestamp if ts else None,
        bool(ts and ts.intact and ts.valid and ts.trusted),
        status.signer_reported_dt,
        final,
    )


async def _check_timestamp(
    sig: EmbeddedPdfSignature,
    roots: list[asn1_x509.Certificate],
    certs: list[asn1_x509.Certificate],
    crls: list[asn1_crl.CertificateList],
    total: int,
    skip_diff: bool,
    inherited: ModificationLevel | None,
    final: bool = False,
) -> SignatureReport:
    tst = sig.signed_data["encap_content_info"]["content"].parsed
    moment = tst["gen_time"].native
    status = await async_validate_pdf_timestamp(sig, _context(roots, certs, crls, moment), skip_diff=skip_diff)
    problems = _integrity_problems(status, moment)
    good = status.intact and status.valid and status.trusted
    return _finish(
        sig,
        status,
        inherited,
        problems,
        crls,
        certs,
        total,
        "document_timestamp",
        status.signing_cert,
        status.timestamp,
        good,
        status.timestamp,
        final,
    )


def _finish(
    sig: EmbeddedPdfSignature,
    status: Any,
    inherited: ModificationLevel | None,
    problems: list[tuple[str, str]],
    crls: list[asn1_crl.CertificateList],
    certs: list[asn1_x509.Certificate],
    total: int,
    kind: str,
    tsa_cert: asn1_x509.Certificate | None,
    ts_time: dt.datetime | None,
    ts_ok: bool,
    signing_time: dt.datetime | None,
    final: bool = False,
) -> SignatureReport:
    level = status.modification_level
    last = sig.signed_revision == total - 1
    if last and status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        problems.append(T.TRAILING_DATA)
    if level is None and last:
        level = ModificationLevel.NONE  # the last revision: no later revision to analyse
    elif level is None:
        level = inherited
    modification = level.name.lower() if level is not None else "unknown"
    if level is None or level not in _ALLOWED_LEVELS or status.docmdp_ok is False:
        problems.append(T.MODIFIED)
    elif final and level not in _ALLOWED_AFTER_FINAL:
        problems.append(T.MODIFIED_AFTER_FINAL)
    signer: asn1_x509.Certificate = status.signing_cert
    revoked_subject = _revoked_in_chain(signer, certs, crls)
    if revoked_subject is not None:
        problems.append(T.REVOKED)
    if getattr(status, "revoked", False) and revoked_subject is None:
        revoked_subject = signer.subject.human_friendly
        problems.append(T.REVOKED)
    return SignatureReport(
        field_name=sig.field_name,
        kind=kind,
        signer_subject=signer.subject.human_friendly,
        signer_serial=signer.serial_number,
        # a time only a trusted timestamp vouches for; else the time the signer claims
        signing_time=(ts_time if ts_ok else None) or signing_time,
        timestamp_authority=tsa_cert.subject.human_friendly if tsa_cert is not None else None,
        timestamp_time=ts_time,
        timestamp_valid=ts_ok,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        revoked=revoked_subject is not None,
        revoked_subject=revoked_subject,
        covers_revision=sig.signed_revision,
        total_revisions=total,
        modification=modification,
        agreement_no=_agreement_of(signer),
        problems=tuple(dict.fromkeys(problems)),
    )


def _integrity_problems(status: Any, moment: dt.datetime | None) -> list[tuple[str, str]]:
    """What pyHanko's status says is wrong with the signature itself: bytes, value, trust."""
    if not status.intact:
        return [T.NOT_INTACT]
    if not status.valid:
        return [T.INVALID]
    return [] if status.trusted else [_trust_problem(status, moment)]


def _trust_problem(status: Any, moment: dt.datetime | None) -> tuple[str, str]:
    """Why pyHanko did not trust a signer: its certificate out of validity at the signing moment
    (the timestamp's time, else now), or no path to our root."""
    when = moment or dt.datetime.now(dt.UTC)
    try:
        validity = status.signing_cert["tbs_certificate"]["validity"]
        if not validity["not_before"].native <= when <= validity["not_after"].native:
            return T.OUT_OF_VALIDITY
    except (KeyError, TypeError, ValueError):
        pass
    return T.UNTRUSTED


def _agreement_of(cert: asn1_x509.Certificate) -> str | None:
    for rdn in cert.subject.chosen:
        for atv in rdn:
            value = atv["value"].native
            if atv["type"].native == "organizational_unit_name" and str(value).startswith("Agreement "):
                return str(value)[len("Agreement ") :]
    return None


def _revoked_in_chain(
    signer: asn1_x509.Certificate,
    certs: list[asn1_x509.Certificate],
    crls: list[asn1_crl.CertificateList],
) -> str | None:
    """Subject of the first certificate in the signer's chain listed in a CRL from its issuer."""
    by_subject = {c.subject.dump(): c for c in certs}
    cert: asn1_x509.Certificate | None = signer
    seen = 0
    while cert is not None and seen < 5:
        for crl in crls:
            if crl.issuer.dump() != cert.issuer.dump():
                continue
            for entry in crl["tbs_cert_list"]["revoked_certificates"] or ():
                if entry["user_certificate"].native == cert.serial_number:
                    return str(cert.subject.human_friendly)
        if cert.self_signed != "no":  # asn1crypto answers "no" / "maybe" / "yes"
            break
        cert = by_subject.get(cert.issuer.dump())
        seen += 1
    return None
