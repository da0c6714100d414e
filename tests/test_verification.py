"""Public verification: QR target, PDF upload, RFC 3161 endpoint, root certificate and CRL."""
from __future__ import annotations

import io

import pytest
from asn1crypto import tsp

import signing
import storage
import workflow
from models import Agreement
from tests import factories as f


@pytest.fixture
def completed(app) -> Agreement:  # type: ignore[no-untyped-def]
    return f.World().agreement_at("completed")


def test_qr_page_shows_live_status_with_masked_data(client, completed: Agreement) -> None:  # type: ignore[no-untyped-def]
    r = client.get(f"/verify/{completed.verify_code}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "已完成" in html and completed.number in html
    assert completed.id_number not in html and completed.id_number[-6:] not in html
    assert completed.id_number[:4] + "*" * 14 in html
    assert completed.student_name not in html  # name masked too
    assert completed.document_sha256 in html


def test_qr_page_follows_cancellation(client, completed: Agreement) -> None:  # type: ignore[no-untyped-def]
    from models import SchoolAccount

    staff = SchoolAccount.get((SchoolAccount.school == completed.school_id) & (SchoolAccount.branch_code == ""))
    workflow.cancel(workflow.Actor.school_account(staff), completed.id, "wrong_info", "信息错误")
    html = client.get(f"/verify/{completed.verify_code}").get_data(as_text=True)
    assert "已作废" in html and "不再有效" in html


@pytest.mark.parametrize("code", ["AAAAAAAAAAAAAAAA", "x", "../../etc/passwd", "A" * 200])
def test_unknown_codes_are_404(client, code: str) -> None:  # type: ignore[no-untyped-def]
    assert client.get(f"/verify/{code}").status_code == 404


def test_evidence_download(client, completed: Agreement) -> None:  # type: ignore[no-untyped-def]
    r = client.get(f"/verify/{completed.verify_code}/evidence.pdf")
    assert r.status_code == 200 and r.data.startswith(b"%PDF-")


def test_upload_report(client, completed: Agreement) -> None:  # type: ignore[no-untyped-def]
    pdf = storage.get_storage().get(completed.document_key)
    r = client.post("/verify", data={"file": (io.BytesIO(pdf), "a.pdf")}, content_type="multipart/form-data")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "有效" in html and "与平台存档一致" in html
    broken = pdf.replace(b"/Producer", b"/Producex", 1)
    r = client.post("/verify", data={"file": (io.BytesIO(broken), "b.pdf")}, content_type="multipart/form-data")
    assert "无效" in r.get_data(as_text=True)


def _spin(*args, **kwargs):  # type: ignore[no-untyped-def]
    while True:  # a parser stuck on a hostile structure
        pass


def _swell(*args, **kwargs):  # type: ignore[no-untyped-def]
    hoard = []
    while True:  # a parser inflating a hostile structure
        hoard.append(bytearray(64 << 20))


@pytest.mark.parametrize("hostile", [_spin, _swell])
def test_an_upload_that_exhausts_its_limits_costs_its_own_process(
        client, completed: Agreement, monkeypatch: pytest.MonkeyPatch, hostile) -> None:  # type: ignore[no-untyped-def]
    """Uploads are verified in a forked child under CPU, memory and time limits: the page answers
    with an "abnormal file" verdict and the worker goes on serving."""
    import documents

    monkeypatch.setattr(documents, "UPLOAD_WALL_SECONDS", 3.0)
    monkeypatch.setattr(documents, "UPLOAD_CPU_SECONDS", 2)
    monkeypatch.setattr(documents.signing, "verify_pdf", hostile)  # inherited by the child only
    r = client.post("/verify", data={"file": (io.BytesIO(b"%PDF-1.7 hostile"), "h.pdf")},
                    content_type="multipart/form-data")
    assert r.status_code == 200 and "文件结构异常" in r.get_data(as_text=True)
    monkeypatch.undo()
    pdf = storage.get_storage().get(completed.document_key)
    r = client.post("/verify", data={"file": (io.BytesIO(pdf), "a.pdf")}, content_type="multipart/form-data")
    assert r.status_code == 200 and "与平台存档一致" in r.get_data(as_text=True)


@pytest.mark.parametrize("payload, message", [(b"GIF89a", "不是PDF"), (None, "请选择")])
def test_upload_rejects_non_pdf(client, payload: bytes | None, message: str) -> None:  # type: ignore[no-untyped-def]
    data = {"file": (io.BytesIO(payload), "x.gif")} if payload else {}
    r = client.post("/verify", data=data, content_type="multipart/form-data")
    assert r.status_code == 400 and message in r.get_data(as_text=True)


def test_oversized_upload_is_refused(app, client) -> None:  # type: ignore[no-untyped-def]
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n%PDF-").encode() + b"0" * app.config["MAX_CONTENT_LENGTH"]
    r = client.post("/verify", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert r.status_code == 413 and "过大" in r.get_data(as_text=True)


def test_tsa_endpoint(client) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    req = tsp.TimeStampReq({"version": 1, "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(b"hello").digest()},
        "cert_req": True})
    r = client.post("/tsa", data=req.dump(), content_type="application/timestamp-query")
    assert r.status_code == 200 and r.mimetype == "application/timestamp-reply"
    assert signing.tsa.response_status(r.data)[0] == "granted"
    assert signing.tsa.response_status(client.post("/tsa", data=b"garbage").data)[0] == "rejection"
    assert client.post("/tsa", data=b"x" * 20000).status_code == 413


def test_root_certificate_and_crl(client) -> None:  # type: ignore[no-untyped-def]
    from cryptography import x509

    r = client.get("/pki/root.crt")
    cert = x509.load_pem_x509_certificate(r.data)
    assert cert.subject == cert.issuer
    crl = x509.load_der_x509_crl(client.get("/pki/issuing.crl").data)
    assert crl.is_signature_valid  # type: ignore[truthy-function]
    assert "Adobe" in client.get("/pki/").get_data(as_text=True)


def test_public_evidence_is_masked_and_in_beijing_time(client, completed: Agreement, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    pdf = client.get(f"/verify/{completed.verify_code}/evidence.pdf").data
    path = tmp_path / "public.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    assert completed.student_name not in text and completed.student_name[0] + "*" in text
    assert "软件工程师" not in text  # the terms are left out of the public copy
    assert "北京时间" in text and "+00:00" not in text
    html = client.get(f"/verify/{completed.verify_code}").get_data(as_text=True)
    assert "北京时间" in html and "UTC" not in html
