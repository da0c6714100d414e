"""Real signed agreement PDFs out of the workflow: pdfsig and pyHanko agree, the CLI exports and verifies."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import cli
import documents
import storage
from models import Agreement, AgreementSignature
from tests import factories as f


def pdfsig(path: Path) -> str:
    return subprocess.run(["pdfsig", "-nocert", str(path)], capture_output=True, text=True, timeout=60).stdout


@pytest.fixture
def completed(app) -> Agreement:  # type: ignore[no-untyped-def]
    world = f.World()
    return world.agreement_at("completed")


def test_completed_agreement_has_three_signatures_and_an_archive_timestamp(
        completed: Agreement, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pdf = storage.get_storage().get(completed.document_key)
    out = tmp_path / "a.pdf"
    out.write_bytes(pdf)
    text = pdfsig(out)
    # the three party signatures; poppler 22 does not evaluate the RFC 3161 document timestamp (#4),
    # which pyHanko validates below
    assert text.count("Signature Validation: Signature is Valid.") == 3, text
    assert "Signature #4" in text
    report = documents.verify_document(settings, pdf)
    assert report.ok, report.reason_en
    assert report.archive_match is not None and report.archive_match.agreement_no == completed.number
    assert len(report.signatures) == 4 and all(s.trusted and s.intact for s in report.signatures)
    revs = [s.document_sha256 for s in AgreementSignature.select().where(AgreementSignature.agreement == completed.id)
            .order_by(AgreementSignature.id)]
    assert revs[-1] == completed.document_sha256 and len(set(revs)) == 3


def test_export_and_verify_on_the_command_line(completed: Agreement, settings, tmp_path: Path,  # type: ignore[no-untyped-def]
                                               capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[server]\ninstance_path = "{settings.instance_dir}"\nsecret_key = "x"\n'
                   f'[database]\nurl = "{settings.database.url}"\n'
                   f'[signing]\npki_dir = "{settings.pki_path}"\nmaster_secret = "{settings.signing.master_secret}"\n'
                   '[scheduler]\nin_process = false\n', encoding="utf-8")
    out = tmp_path / "export.pdf"
    assert cli.main(["--config", str(cfg), "agreements", "export", completed.number, str(out)]) == 0
    assert cli.main(["--config", str(cfg), "verify", str(out)]) == 0
    tampered = bytearray(out.read_bytes())
    i = tampered.find(b"/Producer")
    tampered[i + 12] ^= 0x01
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(bytes(tampered))
    assert cli.main(["--config", str(cfg), "verify", str(bad)]) == 1
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"not a pdf at all")
    assert cli.main(["--config", str(cfg), "verify", str(junk)]) == 2
    assert cli.main(["--config", str(cfg), "verify", str(tmp_path / "missing.pdf")]) == 2
    capsys.readouterr()


def test_evidence_report_is_signed_by_the_platform(completed: Agreement, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pdf = documents.build_evidence(settings, completed)
    path = tmp_path / "evidence.pdf"
    path.write_bytes(pdf)
    assert "Signature is Valid" in pdfsig(path)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    assert completed.number in text and "employer_sign" in text


@pytest.mark.parametrize("fate,expected", [
    ("terminating", None), ("terminated", "该协议已解约"), ("cancelled", "该协议已被学校作废")])
def test_a_genuine_copy_of_an_agreement_no_longer_in_force_is_not_valid(
        app, settings, fate: str, expected: str | None) -> None:  # type: ignore[no-untyped-def]
    """Review finding: a terminated or cancelled agreement's PDF verified as valid (exit 0)."""
    import workflow

    world = f.World()
    a = world.agreement_at("completed")
    pdf = storage.get_storage().get(a.document_key)
    if fate in ("terminating", "terminated"):
        workflow.initiate_termination(world.employer_actor, a.id, "岗位调整")
    if fate == "terminated":
        workflow.agree_termination(world.student_actor(), a.id)
    if fate == "cancelled":
        workflow.cancel(world.school_actor, a.id, "wrong_info", "信息有误")
    report = documents.verify_document(settings, pdf)
    assert report.archive_match is not None and report.archive_match.agreement_no == a.number
    if expected is None:  # a termination only asked for: still in force
        assert report.ok, report.reason_en
    else:
        assert not report.ok and expected in report.reason_zh
        assert all(s.ok for s in report.signatures)  # the signatures themselves are fine


def test_an_intermediate_copy_is_genuine_but_not_a_completed_agreement(app, settings) -> None:  # type: ignore[no-untyped-def]
    a = f.World().agreement_at("awaiting_employer")
    report = documents.verify_document(settings, storage.get_storage().get(a.document_key))
    assert report.archive_match is not None and not report.archive_match.in_force
    assert not report.ok and "中间版本（学校签署后）" in report.reason_zh
