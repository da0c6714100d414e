"""Agreement documents: the bridge between the workflow, the signing library and the store.

* :class:`PdfSigner` is the workflow's signing step: the student's signature renders the agreement
  PDF and signs it, the school and the employer each add their signature as an incremental update,
  and the employer's signature is followed by the document timestamp with validation data (B-LTA).
  Every revision is stored under a content-addressed key, so a rolled-back transition leaves at most
  an unreferenced file, never a wrong one.
* :func:`agreement_data` maps an agreement row onto the library's plain :class:`signing.AgreementData`.
* The platform keys are loaded once per process (:func:`platform`).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import signing
from codes import label, mask_id, mask_name
from models import Agreement, AgreementEvent, AgreementSignature, utcnow
from settings import Settings
from storage import NotFound, Storage
from workflow import SignedRevision, content_digest

log = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
PARTY_REASONS = {"student": "本人同意并签署就业协议", "school": "学校审核并签章", "employer": "用人单位签章"}
CRL_PATH = "/pki/issuing.crl"
ROOT_CERT_PATH = "/pki/root.crt"


@dataclass
class Platform:
    """The process-wide signing material: PKI, signer and the trust roots for verification."""

    pki: signing.PlatformPKI
    signer: signing.AgreementSigner
    tsa_roots: tuple[bytes, ...] = ()
    """The external TSA's root certificates (PEM), trusted for timestamps only."""


_platform: Platform | None = None
_platform_key: tuple[str, str] | None = None
_lock = threading.Lock()


def _crl_url(settings: Settings) -> str:
    return settings.server.base_url.rstrip("/") + CRL_PATH


def create_pki(settings: Settings) -> signing.PlatformPKI:
    """Create (or load, when it exists) the platform CA files: `tripact init` calls this."""
    directory = settings.pki_path
    if (directory / "pki.json").exists():
        return signing.PlatformPKI.load(directory, settings.signing.master_secret)
    directory.mkdir(parents=True, exist_ok=True)
    return signing.PlatformPKI.create(directory, settings.signing.master_secret, settings.signing.org_name,
                                      _crl_url(settings))


def _load_pki(settings: Settings) -> signing.PlatformPKI:
    s = settings.signing
    if s.pkcs12_path:
        try:
            data = Path(s.pkcs12_path).read_bytes()
        except OSError as exc:
            raise signing.PKIError(f"[signing] pkcs12_path: cannot read {s.pkcs12_path}: {exc.strerror}") from exc
        return signing.PlatformPKI.from_pkcs12(data, s.pkcs12_password, crl_url=_crl_url(settings),
                                               tsa_directory=settings.pki_path, master_secret=s.master_secret)
    if not (settings.pki_path / "pki.json").exists():
        raise signing.PKIError(f"no platform keys in {settings.pki_path}: run `tripact init`")
    return signing.PlatformPKI.load(settings.pki_path, s.master_secret)


def platform(settings: Settings) -> Platform:
    """The signing material for these settings, loaded once per process."""
    global _platform, _platform_key
    key = (str(settings.pki_path), settings.signing.pkcs12_path)
    with _lock:
        if _platform is None or _platform_key != key:
            pki = _load_pki(settings)
            timestamper = None
            if settings.signing.tsa_url:
                local = signing.LocalTimeStamper(signing.LocalTimestampAuthority(pki))
                timestamper = signing.ExternalTimestamper(settings.signing.tsa_url,
                                                         settings.signing.tsa_timeout_seconds, fallback=local)
            _platform = Platform(pki, signing.AgreementSigner(pki, timestamper), _tsa_roots(settings))
            _platform_key = key
        return _platform


def _tsa_roots(settings: Settings) -> tuple[bytes, ...]:
    """The PEM certificates of ``[signing] tsa_trust_roots``, one entry each."""
    path = settings.signing.tsa_trust_roots
    if not path:
        return ()
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise signing.PKIError(f"[signing] tsa_trust_roots: cannot read {path}: {exc.strerror}") from exc
    end = b"-----END CERTIFICATE-----"
    roots = tuple(block.strip() + b"\n" + end + b"\n" for block in text.split(end) if b"-----BEGIN" in block)
    if not roots:
        raise signing.PKIError(f"[signing] tsa_trust_roots: no PEM certificate in {path}")
    return roots


def verify_url(settings: Settings, a: Agreement) -> str:
    return f"{settings.server.base_url.rstrip('/')}/verify/{a.verify_code}"


def agreement_data(a: Agreement) -> signing.AgreementData:
    """The agreement row as the plain data the renderer prints."""
    def coded(table: str, code: str) -> str:
        return f"{code} {label(table, code)}" if code else ""

    return signing.AgreementData(
        agreement_no=a.number, student_name=a.student_name, student_gender=label("gender", a.gender),
        student_id_number=a.id_number, student_number=a.student_no, school_name=a.school_name,
        school_branch=a.branch_name or None, college=a.college, major=a.major,
        education_level=coded("education_level", a.level_code), training_mode=coded("training_mode", a.training_mode),
        origin=a.origin, graduation_year=a.graduation_year, student_phone=a.student_phone,
        employer_name=a.employer_name, employer_credit_code=a.credit_code,
        employer_nature=coded("unit_nature", a.nature_code), employer_industry=a.industry,
        employer_affiliation=coded("affiliation", a.affiliation_code), employer_address=a.employer_address,
        employer_postcode=a.employer_postcode, employer_contact=a.employer_contact,
        employer_phone=a.employer_phone, employer_email=a.employer_email, archive_unit=a.archive_unit or None,
        archive_address=a.archive_address or None, archive_postcode=a.archive_postcode or None,
        accepts_hukou=a.accepts_hukou, position=a.position, work_location=a.work_location,
        monthly_salary_fen=a.monthly_salary_fen, probation_months=a.probation_months,
        internship_period=a.internship_period or None, contract_years=a.contract_years,
        liquidated_damages_fen=a.liquidated_damages_fen, remarks=a.remarks)


def _identity(a: Agreement, party: str, signer_name: str) -> signing.SignerIdentity:
    # only the signing party's value: a.school is a lazy foreign key (one query per signature)
    if party == "student":
        subject = mask_id(a.id_number)
    elif party == "school":
        subject = f"学校代码{a.school.code}"
    elif party == "employer":
        subject = a.credit_code
    else:
        raise KeyError(party)
    return signing.SignerIdentity(name=signer_name, subject_id=subject, agreement_no=a.number,
                                  reason=PARTY_REASONS[party])


def document_key(a: Agreement, stage: str, pdf: bytes) -> str:
    return f"agreements/{a.graduation_year}/{a.number}/{stage}-{hashlib.sha256(pdf).hexdigest()[:16]}.pdf"


class PdfSigner:
    """The workflow's signing step producing real PAdES signatures (see module docstring)."""

    def __init__(self, settings: Settings, store: Storage) -> None:
        self.settings = settings
        self.store = store

    def sign(self, agreement: Agreement, party: str, signer_name: str, image: bytes) -> SignedRevision:
        p = platform(self.settings)
        if party == "student":
            pdf = signing.render_agreement(agreement_data(agreement), verify_url(self.settings, agreement),
                                           agreement.verify_code)
        else:
            pdf = self.store.get(agreement.document_key)
        result = p.signer.sign_party(pdf, party, _identity(agreement, party, signer_name), image)  # type: ignore[arg-type]
        out = result.pdf
        if party == "employer":
            out = p.signer.finalize(out)
        key = document_key(agreement, party, out)
        self.store.put(key, out, "application/pdf")
        return SignedRevision(
            content_sha256=content_digest(agreement), document_sha256=hashlib.sha256(out).hexdigest(),
            certificate_serial=format(result.certificate_serial, "x"), document_key=key,
            details={"field": result.field_name, "signing_time": result.signing_time.isoformat(),
                     "timestamp_authority": result.timestamp_authority, "tsa_fallback": result.used_fallback})


# ---------------------------------------------------------------- evidence and verification

def local_time(t: dt.datetime) -> str:
    """A stored (naive UTC) time as Beijing time, labelled."""
    return t.replace(tzinfo=dt.UTC).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") + " 北京时间"


def evidence_key(a: Agreement, public: bool = False) -> str:
    """Evidence reports are cached per state of the audit chain: a later event makes a new report.
    The public copy (anyone holding the QR code) is a separate, masked file."""
    last = AgreementEvent.chain(a.id)[-1].seq if a.id else 0
    return f"agreements/{a.graduation_year}/{a.number}/evidence-{last}{'-public' if public else ''}.pdf"


def _iso_local(value: str) -> str:
    """An ISO 8601 time from the signing details, shown in Beijing time like every other time."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value or ""
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return local_time(parsed)


def build_evidence(settings: Settings, a: Agreement, public: bool = False) -> bytes:
    """The platform-signed evidence report: audit events with their hash chain, document hash after
    each revision, certificates and timestamps. The ``public`` copy (downloadable by anyone who holds
    the QR code) masks the student's name and leaves out event details (terms, reasons); its hashes
    are the same, so it proves the same chain."""
    p = platform(settings)

    def actor(e: AgreementEvent) -> str:
        name = mask_name(e.actor_name) if public and e.actor_type == "student" else e.actor_name
        return f"{e.actor_type}:{name}"

    events = [signing.AuditEventRow(time=local_time(e.created_at), actor=actor(e), action=e.action,
                                    details="（公开版不含详情）" if public and e.details else _details_text(e),
                                    prev_hash=e.prev_hash, hash=e.hash)
              for e in AgreementEvent.chain(a.id)]
    sigs = list(a.signatures.order_by(AgreementSignature.id))
    revisions = [signing.RevisionRow(label=f"{s.party} 签署后", sha256=s.document_sha256, time=local_time(s.signed_at))
                 for s in sigs]
    certs = [signing.CertificateRow(subject=mask_name(s.signer_name) if public and s.party == "student"
                                    else s.signer_name, serial=s.certificate_serial,
                                    not_before=_iso_local(s.details.get("signing_time", "")), not_after="",
                                    role=s.party)
             for s in sigs]
    for role, cert in (("root", p.pki.root_cert), ("issuing", p.pki.issuing_cert), ("tsa", p.pki.tsa_cert)):
        certs.append(signing.CertificateRow(
            subject=cert.subject.rfc4514_string(), serial=format(cert.serial_number, "x"),
            not_before=local_time(cert.not_valid_before_utc.replace(tzinfo=None)),
            not_after=local_time(cert.not_valid_after_utc.replace(tzinfo=None)), role=role))
    stamps = [signing.TimestampRow(covers=f"{s.party} 签名", authority=s.details.get("timestamp_authority", ""),
                                   time=_iso_local(s.details.get("signing_time", "")),
                                   fallback=bool(s.details.get("tsa_fallback")))
              for s in sigs]
    data = signing.EvidenceData(agreement_no=a.number, generated_at=local_time(utcnow()),
                                events=events, revisions=revisions, certificates=certs, timestamps=stamps,
                                notes=[f"协议状态：{a.status}", f"最终文件 SHA-256：{a.document_sha256 or '—'}"])
    return p.signer.sign_evidence(signing.render_evidence(data), a.number)


def evidence_pdf(settings: Settings, store: Storage, a: Agreement, public: bool = False) -> bytes:
    """The evidence report for the agreement's current audit state: from the store, else built,
    signed and stored (one file per state of the chain, so a later event gives a new report)."""
    key = evidence_key(a, public)
    try:
        return store.get(key)
    except NotFound:
        pdf = build_evidence(settings, a, public)
        store.put(key, pdf, "application/pdf")
        return pdf


def _details_text(e: AgreementEvent) -> str:
    return json.dumps(e.details, ensure_ascii=False, sort_keys=True)[:300] if e.details else ""


IN_FORCE = ("completed", "terminating")
"""Statuses in which a completed agreement binds its parties (a termination only asked is not one)."""

_NOT_IN_FORCE = {  # status -> (Chinese, English) of why a genuine completed copy is not in force
    "terminated": ("该协议已解约", "the agreement has been terminated"),
    "cancelled": ("该协议已被学校作废", "the agreement has been cancelled by the school"),
}


def archive_lookup(sha256: str) -> signing.ArchiveMatch | None:
    """What our archive knows about a file hash: a revision we produced, final or intermediate, and
    whether it is an agreement in force today."""
    final = Agreement.get_or_none(Agreement.document_sha256 == sha256)
    if final is not None and final.completed_at is not None:
        if final.status in IN_FORCE:
            return signing.ArchiveMatch(agreement_no=final.number, description="completed copy")
        zh, en = _NOT_IN_FORCE.get(final.status, ("该协议已不再有效", f"the agreement is {final.status}"))
        return signing.ArchiveMatch(agreement_no=final.number, description=en, in_force=False, status_zh=zh)
    sig = AgreementSignature.get_or_none(AgreementSignature.document_sha256 == sha256)
    if sig is not None:
        party = {"student": "学生", "school": "学校", "employer": "用人单位"}.get(sig.party, sig.party)
        return signing.ArchiveMatch(
            agreement_no=sig.agreement.number, in_force=False,
            description=f"it is an intermediate copy (after the {sig.party}'s signature), not the completed agreement",
            status_zh=f"这是签署过程中的中间版本（{party}签署后），不是签署完成的协议")
    return None


UPLOAD_CPU_SECONDS = 20
UPLOAD_WALL_SECONDS = 30.0
UPLOAD_EXTRA_MEMORY = 1 << 30
"""Limits of one uploaded file's verification (its own process): CPU seconds, wall-clock seconds and
memory on top of what the web worker already maps."""


def verify_upload(settings: Settings, pdf: bytes) -> signing.VerificationReport:
    """:func:`verify_document` for a file from anyone (the public /verify page), in a forked child
    process under CPU, memory and wall-clock limits: a PDF built to make the parser spin or swell
    costs that child, never the web worker. The archive is looked up here (the child has no
    database); a child that runs out of any limit yields an "abnormal file" report."""
    platform(settings)  # loaded here, so the child inherits the keys instead of reading them again
    match = archive_lookup(hashlib.sha256(pdf).hexdigest())
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_verify_in_child, args=(sender, settings, pdf, match), daemon=True)
    try:
        child.start()
    except OSError as exc:  # no process to spare: check it here rather than not at all
        log.warning("verification child not started (%s); verifying in the worker", exc)
        return verify_document(settings, pdf)
    sender.close()
    report = None
    try:
        if receiver.poll(UPLOAD_WALL_SECONDS):
            report = receiver.recv()
    except (EOFError, OSError):  # the child died: a limit, or a crash
        report = None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    if not isinstance(report, signing.VerificationReport):
        log.warning("verification of an upload (%d bytes) stopped: exit code %s", len(pdf), child.exitcode)
        return signing.abnormal_report(pdf)
    return report


def _verify_in_child(sender: Any, settings: Settings, pdf: bytes, match: signing.ArchiveMatch | None) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (UPLOAD_CPU_SECONDS, UPLOAD_CPU_SECONDS + 1))
    with open("/proc/self/statm") as fh:  # Linux: virtual size in pages
        mapped = int(fh.read().split()[0]) * resource.getpagesize()
    limit = mapped + UPLOAD_EXTRA_MEMORY
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    report = verify_document(settings, pdf, lookup=lambda _sha: match)
    sender.send(report)
    sender.close()


def verify_document(settings: Settings, pdf: bytes,
                    lookup: Callable[[str], signing.ArchiveMatch | None] = archive_lookup
                    ) -> signing.VerificationReport:
    """Verify any PDF against our root (and the external TSA's, for timestamps only) and our archive
    (``lookup``; :func:`verify_upload` passes the match it looked up before forking)."""
    p = platform(settings)
    return signing.verify_pdf(pdf, [p.pki.root_cert], known_document_hashes=lookup,
                              crls=p.pki.all_crls_der(), tsa_trust_roots=p.tsa_roots)
