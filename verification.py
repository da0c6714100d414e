"""Public verification surface: the QR target /verify/<code>, PDF upload at /verify, the RFC 3161
authority at /tsa, and the platform's root certificate and CRL under /pki. Anyone may use these;
personal data is shown masked."""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request

import documents
import signing
import storage
from codes import mask_id, mask_name
from models import Agreement, AgreementSignature
from workflow import STATUS_LABELS

log = logging.getLogger(__name__)

bp = Blueprint("verification", __name__)
MAX_TSA_REQUEST = 16 * 1024


def _settings() -> Any:
    return current_app.config["TRIPACT"]


@bp.get("/verify/<code>")
def by_code(code: str) -> Any:
    """What the QR code on a printed agreement opens: its live status and who signed when."""
    if not (8 <= len(code) <= 32 and code.isalnum()):
        abort(404)
    a = Agreement.get_or_none(Agreement.verify_code == code.upper())
    if a is None:
        abort(404)
    sigs = [(s.party, documents.local_time(s.signed_at), s.certificate_serial)
            for s in a.signatures.order_by(AgreementSignature.id)]
    return render_template("verify/agreement.html", a=a, status=STATUS_LABELS[a.status], signatures=sigs,
                           student=mask_name(a.student_name), id_number=mask_id(a.id_number))


@bp.get("/verify/<code>/evidence.pdf")
def evidence(code: str) -> Any:
    a = Agreement.get_or_none(Agreement.verify_code == code.upper()) if code.isalnum() else None
    if a is None or not a.document_key:
        abort(404)
    try:
        pdf = documents.evidence_pdf(_settings(), storage.get_storage(), a, public=True)
    except (signing.SigningError, storage.StorageError, OSError) as exc:
        log.exception("agreement %s: evidence report unavailable: %s", a.id, exc)
        abort(503)
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f"attachment; filename=evidence-{a.number}.pdf"})


@bp.route("/verify", methods=["GET", "POST"])
def upload() -> Any:
    """Upload any PDF and get the verification report."""
    if request.method == "GET":
        return render_template("verify/upload.html")
    f = request.files.get("file")
    if f is None or not f.filename:
        return render_template("verify/upload.html", error="请选择要验证的PDF文件"), 400
    data = f.read()
    if not data.startswith(b"%PDF-"):
        return render_template("verify/upload.html", error="上传的文件不是PDF文件"), 400
    report = documents.verify_upload(_settings(), data)
    return render_template("verify/report.html", report=report, filename=f.filename)


@bp.post("/tsa")
def tsa() -> Any:
    """RFC 3161 timestamp authority over HTTP (application/timestamp-query)."""
    body = request.get_data(cache=False)
    if len(body) > MAX_TSA_REQUEST:
        abort(413)
    authority = signing.LocalTimestampAuthority(documents.platform(_settings()).pki)
    return Response(authority.respond(body), mimetype="application/timestamp-reply")


@bp.get(documents.ROOT_CERT_PATH)
def root_cert() -> Any:
    pem = documents.platform(_settings()).pki.root_cert_pem()
    return Response(pem, mimetype="application/x-pem-file",
                    headers={"Content-Disposition": "attachment; filename=tripact-root.crt"})


@bp.get(documents.CRL_PATH)
def crl() -> Any:
    return Response(documents.platform(_settings()).pki.crl_der(), mimetype="application/pkix-crl")


@bp.get("/pki/")
def trust_help() -> Any:
    return render_template("verify/trust.html")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
