"""What every mobile page shares: the blueprint, who is looking (the viewer), the permission lookup,
CSRF on every POST, error pages and template helpers.

Views stay short: parse -> :func:`viewer_required` / :func:`agreement_for` -> call workflow -> render.
Workflow refusals (``WorkflowError``) and HTTP errors raised inside these views become mobile error
pages in Chinese with the right status code.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from werkzeug.exceptions import Forbidden, HTTPException, NotFound

import codes
import workflow
from models import Agreement, EmployerUser, Student, WechatBinding
from wechat_bot import forms, oauth
from wechat_bot import pages_texts as T

log = logging.getLogger(__name__)

bp = Blueprint("wechat_pages", __name__, url_prefix="/m", template_folder="templates",
               static_folder="static", static_url_path="/static")

F = TypeVar("F", bound=Callable[..., Any])

CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991


# ---------------------------------------------------------------- the viewer

@dataclass(frozen=True)
class Viewer:
    """The logged-in WeChat user and what the openid is bound to."""

    openid: str
    binding: WechatBinding | None
    student: Student | None
    employer_user: EmployerUser | None

    @property
    def role(self) -> str | None:
        """"student", "employer" or None (not bound)."""
        if self.student is not None:
            return "student"
        if self.employer_user is not None:
            return "employer"
        return None

    def actor(self) -> workflow.Actor:
        ip = request.remote_addr or ""
        if self.student is not None:
            return workflow.Actor.student(self.student, ip)
        if self.employer_user is not None:
            return workflow.Actor.employer_user(self.employer_user, ip)
        raise Forbidden()


def current_viewer() -> Viewer:
    """The viewer of this request (after login)."""
    if "wechat_viewer" not in g:
        openid = oauth.current_openid() or ""
        binding = WechatBinding.get_or_none(WechatBinding.openid == openid) if openid else None
        student = employer_user = None
        if binding is not None and binding.student_id:
            student = Student.get_or_none(Student.id == binding.student_id)
        elif binding is not None and binding.employer_user_id:
            user = EmployerUser.get_or_none(EmployerUser.id == binding.employer_user_id)
            employer_user = user if user is not None and user.active else None
        g.wechat_viewer = Viewer(openid, binding, student, employer_user)
    return g.wechat_viewer  # type: ignore[no-any-return]


def forbidden(message: str) -> Forbidden:
    exc = Forbidden()
    exc.description_zh = message  # type: ignore[attr-defined]
    return exc


def viewer_required(role: str | None = None) -> Callable[[F], F]:
    """Login, then require a binding (any, or of ``role``); unbound users are sent to the bind page."""
    def decorate(view: F) -> F:
        @oauth.login_required
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            v = current_viewer()
            if v.role is None:
                if v.binding is not None:
                    raise forbidden(T.STAFF_ACCOUNT_DISABLED)
                back = request.full_path if request.query_string else request.path
                return redirect(url_for("wechat_pages.bind", next=back))
            if role is not None and v.role != role:
                raise forbidden(T.ONLY_FOR.format(who=T.WHO[role]))
            return view(*args, **kwargs)
        return wrapped  # type: ignore[return-value]
    return decorate


def agreement_for(agreement_id: int) -> Agreement:
    """The agreement if this viewer may see it (the student owns it / the employer user belongs to its
    employer); otherwise 404, so that ids of other people's agreements reveal nothing."""
    v = current_viewer()
    a = Agreement.get_or_none(Agreement.id == agreement_id)
    if a is None:
        raise NotFound()
    if v.student is not None and a.student_id == v.student.id:
        return a
    if v.employer_user is not None and a.employer_id == v.employer_user.employer_id:
        return a
    log.info("openid %s… denied agreement %s", v.openid[:6], agreement_id)
    raise NotFound()


def expected_version() -> int | None:
    """The agreement version the submitted page was showing (hidden field), for the stale-tab check."""
    return forms.small_int(request.form.get("version"))


# ---------------------------------------------------------------- errors and hooks

def error_page(code: int, title: str, message: str = "", back: str | None = None) -> tuple[str, int]:
    return render_template("wechat_bot/error.html", code=code, title=title, message=message, back=back), code


@bp.before_request
def _csrf() -> None:
    if request.method == "POST":
        forms.check_csrf(request.form)


@bp.after_request
def _no_store(response: Response) -> Response:
    """Pages carry personal data and one-time tokens: WeChat's web view must not cache them."""
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    code = exc.code or 500
    if code >= 500:
        return exc
    return error_page(code, T.ERROR_TITLES.get(code, T.ERROR_TITLE_OTHER), getattr(exc, "description_zh", ""))


@bp.errorhandler(workflow.WorkflowError)
def _workflow_error(exc: workflow.WorkflowError) -> Any:
    back = request.path if isinstance(exc, workflow.Conflict) else None
    title = next((t for cls, t in WORKFLOW_TITLES if isinstance(exc, cls)), T.WORKFLOW_TITLE_OTHER)
    return error_page(exc.status_code, title, exc.message, back)


WORKFLOW_TITLES = [(workflow.Conflict, T.CONFLICT_TITLE), (workflow.WrongState, T.WRONG_STATE_TITLE),
                   (workflow.NotAllowed, T.NOT_ALLOWED_TITLE), (workflow.NotFound, T.NOT_FOUND_TITLE),
                   (workflow.InvalidInput, T.INVALID_INPUT_TITLE)]


# ---------------------------------------------------------------- template helpers

def local_time(value: dt.datetime | None) -> str:
    """A stored naive-UTC time as shown to users: Beijing time."""
    if value is None:
        return ""
    return value.replace(tzinfo=dt.UTC).astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"csrf_token": forms.csrf_token, "mask_id": codes.mask_id, "mask_phone": codes.mask_phone,
            "code_label": codes.label, "yuan": forms.fen_to_yuan, "local_time": local_time,
            "status_label": lambda s: workflow.STATUS_LABELS.get(s, s)}


def next_step(a: Agreement, role: str) -> tuple[str, str | None, str]:
    """(what happens next for this viewer, the URL of the page to act on or None, its button label)."""
    texts = T.NEXT_STEP.get(a.status)
    if texts is None:
        reason = f"（{a.closed_reason}）" if a.closed_reason else ""
        return T.ENDED.format(status=workflow.STATUS_LABELS.get(a.status, a.status), reason=reason), None, ""
    text = texts[0] if role == "student" else texts[1]
    actions = {
        ("employer", "applied"): ("wechat_pages.confirm", T.ACTION_BUTTONS["confirm"]),
        ("student", "awaiting_student"): ("wechat_pages.sign", T.ACTION_BUTTONS["sign"]),
        ("employer", "awaiting_employer"): ("wechat_pages.sign", T.ACTION_BUTTONS["sign"]),
        ("employer", "completed"): ("wechat_pages.termination", T.ACTION_BUTTONS["initiate"]),
        ("student", "terminating"): ("wechat_pages.termination", T.ACTION_BUTTONS["answer"]),
    }
    action = actions.get((role, a.status))
    if action is None:
        return text, None, ""
    return text, url_for(action[0], agreement_id=a.id), action[1]


bp.add_url_rule("/oauth/callback", "oauth_callback", oauth.callback)

__all__ = ["bp", "Viewer", "current_viewer", "viewer_required", "agreement_for", "expected_version",
           "error_page", "next_step", "forbidden", "local_time"]
