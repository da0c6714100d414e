"""Agreement pages: my agreements, one agreement (status, history, document, downloads), the employer's
confirmation, signing (student: drawn signature + ID check; employer: seal + PIN) and termination.

Every view first finds the agreement through :func:`agreement_for` (404 for anyone else's), then
calls exactly one workflow transition with the version the page showed, so a stale tab gets
the workflow's Conflict instead of overwriting someone else's change.
"""
from __future__ import annotations

import logging
import subprocess
from typing import Any

from flask import Response, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import NotFound, ServiceUnavailable, TooManyRequests
from werkzeug.security import check_password_hash

import documents
import signing
import storage
import workflow
from models import Agreement, AgreementEvent, Seal, Termination
from wechat_bot import forms
from wechat_bot import pages_texts as T
from wechat_bot.pages_common import (
    agreement_for,
    bp,
    current_viewer,
    expected_version,
    next_step,
    viewer_required,
)
from wechat_bot.pages_document import document_view, page_image
from wechat_bot.pages_store import clear_failures, record_failure, throttled

log = logging.getLogger(__name__)

LIST_LIMIT = 100
TODO = {"student": ["awaiting_student", "terminating"], "employer": ["applied", "awaiting_employer"]}
DETAIL_KEYS = [*workflow.EMPLOYER_DETAIL_FIELDS]


def _not_found(message: str) -> NotFound:
    exc = NotFound()
    exc.description_zh = message  # type: ignore[attr-defined]
    return exc


def _wrong_state(a: Agreement, what: str) -> workflow.WrongState:
    return workflow.WrongState(T.WRONG_STATE.format(status=workflow.STATUS_LABELS.get(a.status, a.status),
                                                    what=what))


def _done(a: Agreement) -> Any:
    return redirect(url_for("wechat_pages.agreement", agreement_id=a.id))


# ---------------------------------------------------------------- list and detail

@bp.get("/agreements")
@viewer_required()
def agreements() -> Any:
    """The student's own agreements, or those of the employer user's employer
    (``?todo=1``: only those waiting for this viewer)."""
    v = current_viewer()
    q = Agreement.select()
    if v.student is not None:
        q = q.where(Agreement.student == v.student.id)
    else:
        assert v.employer_user is not None
        q = q.where(Agreement.employer == v.employer_user.employer_id)
    todo = request.args.get("todo") == "1"
    if todo:
        q = q.where(Agreement.status.in_(TODO[v.role or "student"]))
    rows = list(q.order_by(Agreement.created_at.desc(), Agreement.id.desc()).limit(LIST_LIMIT))
    return render_template("wechat_bot/agreements.html", viewer=v, agreements=rows, todo=todo)


@bp.get("/agreements/<int:agreement_id>")
@viewer_required()
def agreement(agreement_id: int) -> Any:
    """Status, next step, document and history of one agreement."""
    v = current_viewer()
    a = agreement_for(agreement_id)
    step, action_url, action_label = next_step(a, v.role or "")
    events = AgreementEvent.chain(a.id)
    return render_template("wechat_bot/agreement.html", viewer=v, a=a, step=step, action_url=action_url,
                           action_label=action_label, events=events, document=document_view(a),
                           action_labels=workflow.ACTION_LABELS)


def _pdf(data: bytes, filename: str) -> Response:
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, no-store"})


@bp.get("/agreements/<int:agreement_id>/pdf")
@viewer_required()
def agreement_pdf(agreement_id: int) -> Any:
    """The signed PDF as it stands (every signature so far), once the student has signed."""
    a = agreement_for(agreement_id)
    if not a.document_key:
        raise _not_found(T.PDF_NOT_READY)
    try:
        data = storage.get_storage().get(a.document_key)
    except storage.StorageError as exc:
        log.warning("agreement %s: document %s unreadable: %s", a.id, a.document_key, exc)
        raise _not_found(T.PDF_UNREADABLE) from exc
    return _pdf(data, f"{a.number}.pdf")


@bp.get("/agreements/<int:agreement_id>/evidence")
@viewer_required()
def agreement_evidence(agreement_id: int) -> Any:
    """The platform-signed evidence report (audit chain, revisions, certificates, timestamps),
    built once per state of the audit chain and kept in the store."""
    a = agreement_for(agreement_id)
    if not a.document_key:
        raise _not_found(T.EVIDENCE_NOT_READY)
    try:
        data = documents.evidence_pdf(current_app.config["TRIPACT"], storage.get_storage(), a)
    except (signing.SigningError, storage.StorageError, OSError) as exc:
        log.exception("agreement %s: evidence report unavailable: %s", a.id, exc)
        raise ServiceUnavailable() from exc
    return _pdf(data, f"evidence-{a.number}.pdf")


@bp.get("/agreements/<int:agreement_id>/pages/<int:page>.png")
@viewer_required()
def agreement_page(agreement_id: int, page: int) -> Any:
    """One page of the agreement's current revision as an image (``?v=`` names the revision, so a
    cached image of an older revision is never shown for a newer one)."""
    a = agreement_for(agreement_id)
    try:
        png = page_image(a, page)
    except (OSError, subprocess.SubprocessError, signing.SigningError, storage.StorageError) as exc:
        log.warning("agreement %s: page image %s unavailable: %s", a.id, page, exc)
        raise ServiceUnavailable() from exc
    if png is None:
        raise NotFound()
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=86400"})


@bp.get("/seals/<int:seal_id>.png")
@viewer_required("employer")
def seal_image(seal_id: int) -> Any:
    """The image of one of the viewer's employer's seals (to choose one when signing)."""
    v = current_viewer()
    assert v.employer_user is not None
    seal = Seal.get_or_none((Seal.id == seal_id) & (Seal.employer == v.employer_user.employer_id))
    if seal is None:
        raise NotFound()
    try:
        data = storage.get_storage().get(seal.image_key)
    except storage.StorageError as exc:
        raise NotFound() from exc
    return Response(data, mimetype="image/png", headers={"Cache-Control": "private, max-age=300"})


@bp.post("/agreements/<int:agreement_id>/withdraw")
@viewer_required("student")
def withdraw(agreement_id: int) -> Any:
    """The student withdraws an application the employer has not answered."""
    a = agreement_for(agreement_id)
    return _done(workflow.withdraw(current_viewer().actor(), a.id, expected_version()))


# ---------------------------------------------------------------- employer confirms or rejects

def _details_from(source: Any) -> dict[str, str]:
    values = {k: str(getattr(source, k) or "") for k in DETAIL_KEYS}
    values["accepts_hukou"] = "1" if getattr(source, "accepts_hukou", False) else ""
    return values


@bp.route("/agreements/<int:agreement_id>/confirm", methods=["GET", "POST"])
@viewer_required("employer")
def confirm(agreement_id: int) -> Any:
    """Confirm the application (terms may be edited, unit details completed) or reject it with a reason."""
    a = agreement_for(agreement_id)
    if a.status != "applied":
        raise _wrong_state(a, T.NO_CONFIRM_NEEDED)
    page = "wechat_bot/confirm.html"
    if request.method == "GET":
        return render_template(page, a=a, form=forms.terms_form_values(a), details=_details_from(a),
                               errors={}, message="")
    actor = current_viewer().actor()
    if request.form.get("action") == "reject":
        reason = forms.text(request.form, "reason", 600)
        try:
            return _done(workflow.reject(actor, a.id, reason, expected_version()))
        except workflow.InvalidInput as exc:
            return render_template(page, a=a, form=forms.terms_form_values(a), details=_details_from(a),
                                   errors={"reason": T.REJECT_REASON},
                                   message=exc.message), 400
    values = {k: forms.text(request.form, k, 2000) for k in forms.TERM_FIELDS}
    details = {k: forms.text(request.form, k, 300) for k in DETAIL_KEYS}
    details["accepts_hukou"] = "1" if request.form.get("accepts_hukou") else ""
    terms, errors = forms.parse_terms(request.form)
    if terms is None:
        return render_template(page, a=a, form=values, details=details, errors=errors,
                               message=T.CHECK_MARKED), 400
    submitted: dict[str, Any] = {k: details[k] for k in DETAIL_KEYS}
    submitted["accepts_hukou"] = bool(details["accepts_hukou"])
    if not submitted["affiliation_code"]:
        submitted.pop("affiliation_code")  # not chosen: keep what the agreement has
    try:
        return _done(workflow.confirm(actor, a.id, terms, submitted, expected_version()))
    except workflow.InvalidInput as exc:
        return render_template(page, a=a, form=values, details=details, errors=dict(exc.fields),
                               message=exc.message), 400


# ---------------------------------------------------------------- signing

def _too_many() -> TooManyRequests:
    exc = TooManyRequests()
    exc.description_zh = T.SIGN_THROTTLED  # type: ignore[attr-defined]
    return exc


def _sign_page(a: Agreement, message: str = "", status: int = 200) -> Any:
    v = current_viewer()
    seals = []
    if v.employer_user is not None:
        seals = list(Seal.select().where((Seal.employer == a.employer_id) & (Seal.active == True))  # noqa: E712
                     .order_by(Seal.created_at.desc()))
    return render_template("wechat_bot/sign.html", viewer=v, a=a, seals=seals, document=document_view(a),
                           message=message), status


@bp.route("/agreements/<int:agreement_id>/sign", methods=["GET", "POST"])
@viewer_required()
def sign(agreement_id: int) -> Any:
    """Read and sign: the student draws a signature and re-enters the last six ID characters; the
    employer user picks an active seal and enters the signing PIN."""
    v = current_viewer()
    a = agreement_for(agreement_id)
    wanted = "awaiting_student" if v.role == "student" else "awaiting_employer"
    if a.status != wanted:
        raise _wrong_state(a, T.NO_SIGNATURE_NEEDED)
    if request.method == "GET":
        return _sign_page(a)
    return _student_signs(a) if v.role == "student" else _employer_signs(a)


def _student_signs(a: Agreement) -> Any:
    v = current_viewer()
    png, problem = forms.decode_signature(request.form.get("signature", ""))
    if png is None:
        return _sign_page(a, problem, 400)
    problem = _student_intent_problem(a)
    if problem:
        return _sign_page(a, problem, 400)
    return _done(workflow.student_sign(v.actor(), a.id, png, expected_version()))


def _employer_signs(a: Agreement) -> Any:
    v = current_viewer()
    seal_id = forms.small_int(request.form.get("seal_id"))
    if seal_id is None:
        return _sign_page(a, T.SEAL_MISSING, 400)
    problem = _employer_intent_problem()
    if problem:
        return _sign_page(a, problem, 400)
    try:
        return _done(workflow.employer_sign(v.actor(), a.id, seal_id, expected_version()))
    except workflow.InvalidInput as exc:
        return _sign_page(a, exc.message, 400)


def _student_intent_problem(a: Agreement) -> str:
    """A legally binding step by the student (signing, agreeing to a termination) is confirmed by
    re-entering the last six ID characters: "" when they match, else what to tell the student.
    Failures are throttled per openid (429 after too many)."""
    v = current_viewer()
    assert v.student is not None
    if throttled("sign_id", v.openid):
        raise _too_many()
    if not forms.same_secret(request.form.get("id_last6", ""), a.id_number[-6:]):
        record_failure("sign_id", v.openid)
        return T.ID_LAST6_WRONG
    clear_failures("sign_id", v.openid)
    return ""


def _employer_intent_problem() -> str:
    """The employer user's binding steps (signing, starting a termination) are confirmed with the
    signing PIN: "" when it is right, else what to tell the user. Failures are throttled per openid."""
    v = current_viewer()
    assert v.employer_user is not None
    if throttled("sign_pin", v.openid):
        raise _too_many()
    pin_hash = v.employer_user.signing_pin_hash
    if not pin_hash:
        return T.PIN_NOT_SET
    if not check_password_hash(pin_hash, request.form.get("pin", "")):
        record_failure("sign_pin", v.openid)
        return T.PIN_WRONG
    clear_failures("sign_pin", v.openid)
    return ""


# ---------------------------------------------------------------- termination

def _pending_termination(a: Agreement) -> Termination | None:
    return (a.terminations.where(Termination.status == "pending").order_by(Termination.id.desc()).first())


@bp.route("/agreements/<int:agreement_id>/termination", methods=["GET", "POST"])
@viewer_required()
def termination(agreement_id: int) -> Any:
    """Employer: start a termination with a reason. Student: agree or refuse the pending one."""
    v = current_viewer()
    a = agreement_for(agreement_id)
    ok = (v.role == "employer" and a.status in ("completed", "terminating")) or \
         (v.role == "student" and a.status == "terminating")
    if not ok:
        raise _wrong_state(a, T.NO_TERMINATION)
    pending = _pending_termination(a)
    page = "wechat_bot/termination.html"
    if request.method == "GET":
        return render_template(page, viewer=v, a=a, pending=pending, errors={}, message="")
    action = request.form.get("action", "")
    actor = v.actor()

    def again(errors: dict[str, str], message: str) -> Any:
        return render_template(page, viewer=v, a=a, pending=pending, errors=errors, message=message), 400

    try:
        if v.role == "employer" and action == "initiate":
            reason = forms.text(request.form, "reason", 600)
            if not reason.strip():
                return again({"reason": T.TERMINATION_REASON}, T.TERMINATION_REASON)
            problem = _employer_intent_problem()
            if problem:
                return again({"pin": problem}, problem)
            return _done(workflow.initiate_termination(actor, a.id, reason, expected_version()))
        if v.role == "student" and action == "agree":
            problem = _student_intent_problem(a)
            if problem:
                return again({"id_last6": problem}, problem)
            return _done(workflow.agree_termination(actor, a.id, expected_version()))
        if v.role == "student" and action == "refuse":
            return _done(workflow.refuse_termination(actor, a.id, forms.text(request.form, "note", 500),
                                                     expected_version()))
    except workflow.InvalidInput as exc:
        return again({"reason": exc.message}, exc.message)
    raise _wrong_state(a, T.NO_SUCH_ACTION)
