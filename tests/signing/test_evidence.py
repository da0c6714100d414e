"""The evidence report: rendered, signed by the platform, verifiable."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from signing import (
    AgreementSigner,
    AuditEventRow,
    CertificateRow,
    EvidenceData,
    PlatformPKI,
    RevisionRow,
    TimestampRow,
    render_evidence,
    verify_pdf,
)

from .conftest import run_tool


def _evidence(completed: bytes) -> EvidenceData:
    h1 = hashlib.sha256(b"e1").hexdigest()
    h2 = hashlib.sha256(b"e2").hexdigest()
    return EvidenceData(
        agreement_no="2026104033100042",
        generated_at="2026-06-01 10:00:00",
        events=[
            AuditEventRow("2026-05-20 09:00:00", "学生 李𠇔䶮", "申请", "向用人单位提交申请", "0" * 64, h1),
            AuditEventRow("2026-05-21 10:00:00", "用人单位", "签章", "乙方签章", h1, h2),
        ],
        revisions=[RevisionRow("完成", hashlib.sha256(completed).hexdigest(), "2026-05-21 10:00:01")],
        certificates=[CertificateRow("CN=李𠇔䶮", "1234", "2026-05-20", "2026-05-21", "学生事件证书")],
        timestamps=[TimestampRow("学生签名", "tripact TSA", "2026-05-20 09:00:01", fallback=True)],
        notes=["本报告由平台自动生成。"],
    )


def test_evidence_report_is_signed_and_verifies(
    completed: bytes,
    signer: AgreementSigner,
    pki: PlatformPKI,
    write_pdf: Callable[..., Path],
) -> None:
    pdf = render_evidence(_evidence(completed))
    assert pdf == render_evidence(_evidence(completed))
    signed = signer.sign_evidence(pdf, "2026104033100042")
    report = verify_pdf(signed, [pki.root_cert], crls=pki.all_crls_der())
    assert report.ok, report.reason_en
    assert report.signatures[0].field_name == "Sig_Platform"
    text = run_tool("pdftotext", str(write_pdf(signed)), "-").stdout
    assert "李𠇔䶮" in text and hashlib.sha256(completed).hexdigest()[:20] in text.replace("\n", "")
    assert "平台时间戳服务代签" in text.replace("\n", "")
