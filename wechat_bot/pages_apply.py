"""The student's application: pick the employer, fill the terms, preview, submit (workflow.apply)."""
from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.exceptions import NotFound

import workflow
from models import Agreement, Employer
from wechat_bot import forms
from wechat_bot import pages_texts as T
from wechat_bot.pages_common import bp, current_viewer, viewer_required

SEARCH_LIMIT = 20


def _search(q: str) -> list[Employer]:
    """Approved employers whose name contains ``q`` or whose credit code is ``q``."""
    q = q.strip()[:50]
    if not q:
        return []
    cond = Employer.name.contains(q)
    if len(q) == 18:
        cond = cond | (Employer.credit_code == q.upper())
    return list(Employer.approved().where(cond).order_by(Employer.name).limit(SEARCH_LIMIT))


def _chosen_employer() -> Employer | None:
    """The employer named by ``employer`` (id) or ``invite`` (an invitation code), if approved."""
    employer_id = forms.small_int(request.values.get("employer"))
    if employer_id is not None:
        return Employer.approved().where(Employer.id == employer_id).first()
    invite = forms.text(request.values, "invite", 32)
    if invite:
        from wechat_bot.records import EmployerInvitation

        e = EmployerInvitation.employer_for(invite)
        return e if e is not None and e.review_status == "approved" else None
    return None


def _form_page(employer: Employer, values: dict[str, str], errors: dict[str, str], status: int = 200) -> Any:
    return render_template("wechat_bot/apply_form.html", employer=employer, form=values, errors=errors,
                           message=T.CHECK_MARKED if errors else ""), status


@bp.route("/apply", methods=["GET", "POST"])
@viewer_required("student")
def apply() -> Any:
    """GET: search/choose the employer, then the terms form. POST: preview, edit again or submit."""
    v = current_viewer()
    assert v.student is not None
    live = Agreement.live_for_student(v.student.id)
    if live is not None:
        return render_template("wechat_bot/apply_blocked.html", live=live)
    employer = _chosen_employer()
    if request.method == "GET":
        if employer is None:
            if request.args.get("employer") or request.args.get("invite"):
                raise NotFound()
            q = forms.text(request.args, "q", 50)
            return render_template("wechat_bot/apply_search.html", q=q, results=_search(q))
        return _form_page(employer, {}, {})
    if employer is None:
        raise NotFound()
    values = {k: forms.text(request.form, k, 2000) for k in forms.TERM_FIELDS}
    terms, errors = forms.parse_terms(request.form)
    action = request.form.get("action", "preview")
    if errors or terms is None or action == "edit":
        return _form_page(employer, values, errors, 400 if errors else 200)
    if action != "submit":
        return render_template("wechat_bot/apply_preview.html", employer=employer, form=values, terms=terms,
                               student=v.student)
    try:
        agreement = workflow.apply(v.actor(), employer.id, terms)
    except workflow.InvalidInput as exc:
        return _form_page(employer, values, {k: str(r) for k, r in exc.fields.items()}, 400)
    return redirect(url_for("wechat_pages.agreement", agreement_id=agreement.id))
