"""tripact's document and cryptography library: render, sign, timestamp and verify agreement PDFs.

Knows nothing of Flask or the database: it takes bytes, keys and plain data and returns bytes and
reports. Typical life of an agreement::

    pki = PlatformPKI.create(Path("instance/pki"), master_secret, "某省高校毕业生就业平台", crl_url)
    signer = AgreementSigner(pki)                      # once per process
    pdf = render_agreement(data, verify_url, short_code)
    pdf = signer.sign_party(pdf, "student", SignerIdentity(...), signature_png).pdf
    pdf = signer.sign_party(pdf, "school", SignerIdentity(...), school_seal_png).pdf
    pdf = signer.sign_party(pdf, "employer", SignerIdentity(...), employer_seal_png).pdf
    pdf = signer.finalize(pdf)                         # DSS + document timestamp (PAdES B-LTA)
    report = verify_pdf(pdf, [pki.root_cert], crls=pki.all_crls_der())
"""

from __future__ import annotations

from . import _speedups  # noqa: F401  – pyHanko parser speed-up, see module docstring
from .errors import FontNotFound, PKIError, RenderError, SignatureFailed, SigningError, TimestampError
from .evidence import AuditEventRow, CertificateRow, EvidenceData, RevisionRow, TimestampRow, render_evidence
from .fonts import FontConfig, FontSpec
from .pki import EventCredential, PlatformPKI
from .render import SIGNATURE_BOXES, AgreementData, Party, qr_matrix, render_agreement
from .sign import FIELD_NAMES, PARTY_ORDER, AgreementSigner, SignerIdentity, SignResult
from .tsa import ExternalTimestamper, LocalTimestampAuthority, LocalTimeStamper
from .verify import ArchiveMatch, SignatureReport, VerificationReport, abnormal_report, exit_code, verify_pdf

__all__ = [
    "abnormal_report",
    "FIELD_NAMES",
    "PARTY_ORDER",
    "SIGNATURE_BOXES",
    "AgreementData",
    "AgreementSigner",
    "ArchiveMatch",
    "AuditEventRow",
    "CertificateRow",
    "EventCredential",
    "EvidenceData",
    "ExternalTimestamper",
    "FontConfig",
    "FontNotFound",
    "FontSpec",
    "LocalTimeStamper",
    "LocalTimestampAuthority",
    "PKIError",
    "Party",
    "PlatformPKI",
    "RenderError",
    "RevisionRow",
    "SignResult",
    "SignatureFailed",
    "SignatureReport",
    "SignerIdentity",
    "SigningError",
    "TimestampError",
    "TimestampRow",
    "VerificationReport",
    "exit_code",
    "qr_matrix",
    "render_agreement",
    "render_evidence",
    "response_status",
    "verify_pdf",
]
