"""Mobile pages opened inside WeChat (``/m``): home, binding a student or employer staff, unbinding.

The application, agreement, signing and termination pages live in ``pages_apply.py`` and
``pages_agreements.py``; what they share is in ``pages_common.py``. :func:`init_app` registers the lot.
"""
from __future__ import annotations

import logging
from typing import Any

import peewee as pw
from flask import Flask, redirect, render_template, request, url_for
from werkzeug.exceptions import TooManyRequests

import models
from models import Agreement, School, Student, WechatBinding
from wechat_bot import forms, oauth, pages_agreements, pages_apply  # noqa: F401 - they add their routes
from wechat_bot import pages_texts as T
from wechat_bot.pages_common import bp, current_viewer, viewer_required
from wechat_bot.pages_store import record_failure, throttled

log = logging.getLogger(__name__)

def _too_many() -> TooManyRequests:
    exc = TooManyRequests()
    exc.description_zh = T.BIND_THROTTLED  # type: ignore[attr-defined]
    return exc


@bp.get("/")
@oauth.login_required
def home() -> Any:
    """What this WeChat user can do here, by binding."""
    v = current_viewer()
    live = pending = None
    if v.student is not None:
        live = Agreement.live_for_student(v.student.id)
    elif v.employer_user is not None:
        pending = (Agreement.select()
                   .where((Agreement.employer == v.employer_user.employer_id)
                          & Agreement.status.in_(["applied", "awaiting_employer"])).count())
    return render_template("wechat_bot/home.html", viewer=v, live=live, pending=pending, bound=True)


# ---------------------------------------------------------------- students

def _match_student(school_key: str, student_no: str, name: str, id_last6: str
                   ) -> tuple[Student | None, School | None, str]:
    """The roster entry matching the form, or (None, school, what to check)."""
    school = School.get_or_none((School.code == school_key) | (School.name == school_key))
    if school is None:
        return None, None, T.SCHOOL_NOT_FOUND
    student = Student.get_or_none((Student.school == school.id) & (Student.student_no == student_no))
    if student is None:
        return None, school, T.STUDENT_NO_NOT_FOUND
    if student.name != name or not forms.same_secret(id_last6, student.id_number[-6:]):
        return None, school, T.STUDENT_MISMATCH
    if not student.on_roster:
        return None, school, T.STUDENT_OFF_ROSTER
    return student, school, ""


@bp.route("/bind", methods=["GET", "POST"])
@oauth.login_required
def bind() -> Any:
    """Bind this openid to a student on a school's roster."""
    v = current_viewer()
    next_url = oauth.safe_next(request.values.get("next"))
    schools = list(School.select(School.code, School.name).order_by(School.code).limit(500))
    if v.binding is not None:
        return render_template("wechat_bot/bind.html", viewer=v, schools=schools, form={}, errors={},
                               next_url=next_url)
    if request.method == "GET":
        return render_template("wechat_bot/bind.html", viewer=v, schools=schools, form={}, errors={},
                               next_url=next_url)
    form = {k: forms.text(request.form, k, 100) for k in ("school", "student_no", "name", "id_last6")}
    errors = {k: T.REQUIRED for k, value in form.items() if not value}
    if not errors and len(form["id_last6"]) != 6:
        errors["id_last6"] = T.BIND_ID_LAST6
    if errors:
        return render_template("wechat_bot/bind.html", viewer=v, schools=schools, form=form, errors=errors,
                               next_url=next_url, message=T.BIND_INCOMPLETE), 400
    if throttled("bind", v.openid):
        raise _too_many()
    student, school, problem = _match_student(form["school"], form["student_no"], form["name"],
                                              form["id_last6"])
    # Guesses at one roster entry from many WeChat accounts are limited too.
    target = f"{school.id}:{form['student_no']}" if school is not None else ""
    if target and throttled("bind_target", target):
        raise _too_many()
    if student is None:
        record_failure("bind", v.openid)
        if target:
            record_failure("bind_target", target)
        log.info("student binding failed for openid %s…: %s", v.openid[:6], problem)
        return render_template("wechat_bot/bind.html", viewer=v, schools=schools, form=form, errors={},
                               next_url=next_url, message=problem), 400
    try:
        with models.transaction():
            WechatBinding.create(openid=v.openid, student=student.id)
    except pw.IntegrityError:
        # Either this openid got bound meanwhile or the student is bound to another WeChat account.
        return render_template("wechat_bot/bind.html", viewer=v, schools=schools, form=form, errors={},
                               next_url=next_url,
                               message=T.STUDENT_BOUND_ELSEWHERE), 409
    # The failures are not cleared: binding to oneself and unbinding again must not buy more guesses
    # at other students' data. They expire with the throttle's window.
    log.info("openid %s… bound to student %s", v.openid[:6], student.id)
    return redirect(next_url if next_url != oauth.DEFAULT_NEXT else url_for("wechat_pages.home"))


@bp.post("/unbind")
@viewer_required()
def unbind() -> Any:
    """Remove this openid's binding (student or staff). Agreements are not touched."""
    v = current_viewer()
    WechatBinding.delete().where(WechatBinding.openid == v.openid).execute()
    log.info("openid %s… unbound", v.openid[:6])
    return redirect(url_for("wechat_pages.bind"))


# ---------------------------------------------------------------- employer staff

@bp.route("/bind/staff", methods=["GET", "POST"])
@oauth.login_required
def bind_staff() -> Any:
    """Bind this openid to an employer user with a one-time code from the employer console."""
    from wechat_bot.records import StaffBindingCode

    v = current_viewer()
    code = forms.text(request.values, "code", 32).upper()
    if request.method == "GET":
        return render_template("wechat_bot/bind_staff.html", viewer=v, code=code, message="")
    if not code:
        return render_template("wechat_bot/bind_staff.html", viewer=v, code=code,
                               message=T.STAFF_CODE_MISSING), 400
    if throttled("staff_code", v.openid):
        raise _too_many()
    outcome, user = StaffBindingCode.redeem(code, v.openid)
    if outcome != "bound" or user is None:
        record_failure("staff_code", v.openid)
        status = 409 if outcome == "other_binding" else 400
        return render_template("wechat_bot/bind_staff.html", viewer=v, code=code,
                               message=T.STAFF_OUTCOMES.get(outcome, T.STAFF_CODE_FAILED)), status
    log.info("openid %s… bound to employer user %s", v.openid[:6], user.id)
    return redirect(url_for("wechat_pages.agreements"))


def init_app(app: Flask) -> None:
    """Register the mobile pages (idempotent). Call after the ``wechat_bot`` blueprint is registered
    or instead of its home view."""
    if bp.name not in app.blueprints:
        app.register_blueprint(bp)


__all__ = ["bp", "init_app"]
