"""Signing the three parties, finalizing, and checking the result with poppler and pyHanko."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from signing import (
    AgreementSigner,
    ArchiveMatch,
    PlatformPKI,
    SignatureFailed,
    exit_code,
    render_agreement,
    verify_pdf,
)
from signing import verify_texts as T

from .conftest import run_tool
from .helpers import IDENTITIES, IMAGES, MASTER_SECRET, SHORT_CODE, VERIFY_URL, make_agreement, sign_all


def _verify(pdf: bytes, pki: PlatformPKI, **kwargs: object) -> object:
    return verify_pdf(pdf, [pki.root_cert], crls=pki.all_crls_der(), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the happy path
def test_poppler_finds_every_party_signature_valid_and_trusted(
    completed: bytes,
    nss_db: str,
    write_pdf: Callable[..., Path],
) -> None:
    out = run_tool("pdfsig", "-nssdir", nss_db, str(write_pdf(completed))).stdout
    blocks = re.split(r"Signature #\d+:", out)[1:]
    assert len(blocks) == 4
    party_blocks = [b for b in blocks if "DocTimestamp" not in b]
    assert len(party_blocks) == 3
    for block in party_blocks:
        assert "Signature is Valid." in block, block
        assert "Certificate is Trusted." in block, block
        assert "ETSI.CAdES.detached" in block
    assert "Sig_Student" in out and "Sig_School" in out and "Sig_Employer" in out


def test_pyhanko_finds_every_signature_intact_valid_trusted_and_timestamped(
    completed: bytes,
    pki: PlatformPKI,
) -> None:
    report = verify_pdf(completed, [pki.root_cert], crls=pki.all_crls_der())
    assert report.readable and report.ok, report.reason_en
    assert exit_code(report) == 0
    assert [s.field_name for s in report.signatures] == [
        "Sig_Student",
        "Sig_School",
        "Sig_Employer",
        "DocTimestamp",
    ]
    for sig in report.signatures:
        assert sig.intact and sig.valid and sig.trusted and not sig.revoked
        assert sig.timestamp_valid and sig.timestamp_time is not None
        assert "Timestamp Authority" in (sig.timestamp_authority or "")
    assert [s.covers_revision for s in report.signatures] == [1, 2, 3, 4]
    assert report.signatures[0].modification == "form_filling"
    assert all(s.modification in ("none", "lta_updates", "form_filling") for s in report.signatures)
    assert report.signatures[0].agreement_no == "2026104033100042"
    assert "李𠇔䶮" in report.signatures[0].signer_subject
    assert "有效" in report.reason_zh and "valid" in report.reason_en
    assert report.to_dict()["signatures"][0]["field_name"] == "Sig_Student"


def test_every_intermediate_stage_verifies(stages: dict[str, bytes], pki: PlatformPKI) -> None:
    for stage in ("student", "school", "employer"):
        report = verify_pdf(stages[stage], [pki.root_cert], crls=pki.all_crls_der())
        assert report.ok, (stage, report.reason_en)


def test_completed_pdf_is_small(completed: bytes) -> None:
    assert len(completed) <= 200 * 1024


def test_archive_match_and_mismatch(completed: bytes, pki: PlatformPKI) -> None:
    import hashlib

    archived = {hashlib.sha256(completed).hexdigest(): ArchiveMatch("2026104033100042", "completed")}
    good = verify_pdf(completed, [pki.root_cert], known_document_hashes=archived.get)
    assert good.ok and good.matches_archive and exit_code(good) == 0
    assert "存档" in good.reason_zh
    bad = verify_pdf(completed, [pki.root_cert], known_document_hashes=lambda _sha: None)
    assert not bad.ok and bad.matches_archive is False and exit_code(bad) == 1
    assert T.NOT_ARCHIVED[1] in bad.reason_en


def test_signing_order_is_enforced(signer: AgreementSigner, stages: dict[str, bytes]) -> None:
    no = "2026104033100042"
    with pytest.raises(SignatureFailed, match="before student"):
        signer.sign_party(stages["rendered"], "school", IDENTITIES["school"](no), IMAGES["school"])
    with pytest.raises(SignatureFailed, match="already signed"):
        signer.sign_party(stages["student"], "student", IDENTITIES["student"](no), IMAGES["student"])
    with pytest.raises(SignatureFailed, match="finalized"):
        signer.sign_party(stages["final"], "employer", IDENTITIES["employer"](no), IMAGES["employer"])
    with pytest.raises(SignatureFailed):
        signer.sign_party(b"not a pdf", "student", IDENTITIES["student"](no), IMAGES["student"])


def test_appearance_is_image_only(completed: bytes) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(completed))
    for sig in reader.embedded_regular_signatures:
        appearance = sig.sig_field["/AP"]["/N"]
        resources = appearance["/Resources"]
        assert "/Font" not in resources, sig.field_name
        images = [x for x in resources["/XObject"].values() if x.get_object()["/Subtype"] == "/Image"]
        assert images, sig.field_name
        assert "/SMask" in images[0].get_object(), "seal image must keep its transparency"


# ---------------------------------------------------------------- unreadable input
@pytest.mark.parametrize("data", [b"", b"garbage", b"%PDF-1.7\n1 0 obj\n<<", bytes(range(256)) * 10])
def test_garbage_is_unreadable_with_exit_code_2(data: bytes, pki: PlatformPKI) -> None:
    report = verify_pdf(data, [pki.root_cert])
    assert not report.readable and not report.ok and exit_code(report) == 2
    assert report.reason_zh and report.reason_en
    assert report.to_dict()["readable"] is False


def test_truncated_pdf_is_unreadable(completed: bytes, pki: PlatformPKI) -> None:
    assert exit_code(verify_pdf(completed[: len(completed) // 2], [pki.root_cert])) == 2


# ---------------------------------------------------------------- tampering
def _problems(report: object) -> str:
    return report.reason_en  # type: ignore[attr-defined,no-any-return]


def test_one_changed_byte_in_page_content_is_detected(completed: bytes, pki: PlatformPKI) -> None:
    start = completed.index(b"stream", completed.index(b"/Filter [ /ASCII85Decode /FlateDecode ] /Length", 2000))
    pos = start + 200
    altered = bytearray(completed)
    altered[pos] = ord("A") if altered[pos] != ord("A") else ord("B")
    report = _verify(bytes(altered), pki)
    assert exit_code(report) == 1  # type: ignore[arg-type]
    assert T.NOT_INTACT[1] in _problems(report)
    assert all(not s.intact for s in report.signatures)  # type: ignore[attr-defined]


def test_added_incremental_update_with_text_is_detected(completed: bytes, pki: PlatformPKI) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(completed))
    stream = generic.StreamObject(stream_data=b"BT /F1+0 14 Tf 300 760 Td (PAID 100000) Tj ET")
    writer.add_stream_to_page(0, writer.add_object(stream))
    out = io.BytesIO()
    writer.write(out)
    report = _verify(out.getvalue(), pki)
    assert exit_code(report) == 1  # type: ignore[arg-type]
    assert T.MODIFIED[1] in _problems(report)
    assert all(s.modification == "other" for s in report.signatures)  # type: ignore[attr-defined]
    assert all(s.intact for s in report.signatures)  # type: ignore[attr-defined]


def test_signature_copied_from_another_agreement_is_detected(
    signer: AgreementSigner,
    stages: dict[str, bytes],
    pki: PlatformPKI,
) -> None:
    other_no = "2026104033100099"
    other = render_agreement(make_agreement(agreement_no=other_no, student_name="王五"), VERIFY_URL, SHORT_CODE)
    other_signed = signer.sign_party(other, "student", IDENTITIES["student"](other_no), IMAGES["student"]).pdf

    def contents(pdf: bytes) -> re.Match[bytes]:
        match = re.search(rb"/Contents <([0-9a-fA-F]+)>", pdf)
        assert match
        return match

    mine, theirs = contents(stages["student"]), contents(other_signed)
    assert len(mine.group(1)) == len(theirs.group(1))
    forged = stages["student"][: mine.start(1)] + theirs.group(1) + stages["student"][mine.end(1) :]
    report = _verify(forged, pki)
    assert exit_code(report) == 1  # type: ignore[arg-type]
    assert T.NOT_INTACT[1] in _problems(report)
    assert T.OTHER_AGREEMENT[1] in _problems(report)


def test_certificate_from_another_root_is_untrusted(tmp_path: Path, pki: PlatformPKI) -> None:
    rogue = PlatformPKI.create(tmp_path, "rogue", "tripact 测试平台", "http://x/crl")
    forged = sign_all(AgreementSigner(rogue), make_agreement())["final"]
    report = _verify(forged, pki)
    assert exit_code(report) == 1  # type: ignore[arg-type]
    assert T.UNTRUSTED[1] in _problems(report)
    assert not any(s.trusted for s in report.signatures)  # type: ignore[attr-defined]
    # and the rogue document is fine for its own root: the failure is the trust anchor alone
    assert verify_pdf(forged, [rogue.root_cert], crls=rogue.all_crls_der()).ok


def test_revoked_issuing_ca_is_detected(tmp_path: Path) -> None:
    own = PlatformPKI.create(tmp_path, MASTER_SECRET, "tripact 测试平台", "http://x/crl")
    stages = sign_all(AgreementSigner(own), make_agreement(), finalize=False)
    own.revoke(own.issuing_cert.serial_number, when=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    report = verify_pdf(stages["employer"], [own.root_cert], crls=own.all_crls_der())
    assert exit_code(report) == 1
    assert T.REVOKED[1] in report.reason_en
    assert all(s.revoked and "Issuing CA" in (s.revoked_subject or "") for s in report.signatures)


def test_revoked_event_certificate_is_detected(tmp_path: Path) -> None:
    own = PlatformPKI.create(tmp_path, MASTER_SECRET, "tripact 测试平台", "http://x/crl")
    own_signer = AgreementSigner(own)
    pdf = render_agreement(make_agreement(), VERIFY_URL, SHORT_CODE)
    result = own_signer.sign_party(pdf, "student", IDENTITIES["student"]("2026104033100042"), IMAGES["student"])
    own.revoke(result.certificate_serial)
    report = verify_pdf(result.pdf, [own.root_cert], crls=own.all_crls_der())
    assert exit_code(report) == 1
    assert T.REVOKED[1] in report.reason_en
    assert report.signatures[0].revoked


def test_signature_stays_valid_after_the_event_certificate_expired(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from signing import pki as pki_module

    monkeypatch.setattr(pki_module, "EVENT_CERT_LIFETIME", dt.timedelta(seconds=2))
    own = PlatformPKI.create(tmp_path, MASTER_SECRET, "tripact 测试平台", "http://x/crl")
    stages = sign_all(AgreementSigner(own), make_agreement())
    time.sleep(2.5)
    report = verify_pdf(stages["final"], [own.root_cert], crls=own.all_crls_der())
    assert report.ok, report.reason_en


def test_multi_page_agreement_signs_on_the_last_page(
    signer: AgreementSigner,
    pki: PlatformPKI,
    nss_db: str,
    write_pdf: Callable[..., Path],
) -> None:
    clause = "其他约定：甲方入职后参加岗前培训，培训费用由乙方承担。"
    remarks = "\n".join(f"第{i}条 {clause}" for i in range(1, 70))
    final = sign_all(signer, make_agreement(remarks=remarks))["final"]
    report = verify_pdf(final, [pki.root_cert], crls=pki.all_crls_der())
    assert report.ok, report.reason_en
    out = run_tool("pdfsig", "-nssdir", nss_db, str(write_pdf(final))).stdout
    assert out.count("Signature is Valid.") == 3
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(final))
    last_page = reader.root["/Pages"]["/Kids"][-1]
    assert len(reader.root["/Pages"]["/Kids"]) >= 2
    annots = {str(a.get_object().get("/T")) for a in last_page.get_object()["/Annots"]}
    assert {"Sig_Student", "Sig_School", "Sig_Employer"} <= annots


# ---------------------------------------------------------------- callers with a running event loop
def test_signing_and_verifying_work_inside_a_running_event_loop(signer: AgreementSigner, pki: PlatformPKI) -> None:
    """An async caller (an async web framework, a notebook) calls the synchronous API from a thread
    whose loop is running: asyncio.run would refuse ("cannot be called from a running event loop")."""
    import asyncio

    async def caller() -> tuple[bytes, object]:
        asyncio.get_running_loop()  # there is one
        pdfs = sign_all(signer, make_agreement())
        return pdfs["final"], _verify(pdfs["final"], pki)

    pdf, report = asyncio.run(caller())
    assert report.ok, report.reason_en  # type: ignore[attr-defined]
    assert len(report.signatures) == 4  # type: ignore[attr-defined]
