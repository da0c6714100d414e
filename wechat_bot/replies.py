"""What the bot says to each message, event and menu key.

Handlers are registered, not chained: ``@on_text("帮助")``, ``@on_event("subscribe")``,
``@on_click("MY_AGREEMENT")``, ``@on_scene("inv_")``. Each is a plain function ``Incoming -> Reply``
(a text ``str``, a wechatpy reply, or None for "no reply"), testable without HTTP: build an
:class:`Incoming` from ``wechatpy.parse_message(xml)`` and the settings, and call :func:`dispatch`.

Menu keys (CLICK buttons; the menu itself lives in ``[wechat] menu`` and is pushed by
``tripact wechat menu``):

==============  =====================================================
MY_AGREEMENT    my agreement's progress (same as the text 进度)
TODO            what waits for me, with links (same as 待办)
APPLY           student: link to apply; employer: how applications come in
TERMINATION     pending termination / how to start one (same as 解约)
BIND            bind, or show the current binding (same as 绑定)
HELP            help (same as 帮助)
==============  =====================================================

Parametric QR scenes: ``inv_<invitation code>`` (an employer's invitation to apply) and
``staff_<one-time code>`` (binds an employer user), on subscribe and on SCAN.

Nothing here calls the network: replies must leave within WeChat's 5 seconds. The registry
machinery lives in ``wechat_bot.registry``; its names are importable from here too.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import urlencode

import workflow
from models import Agreement, Employer, EmployerUser, Student, Termination, WechatBinding
from wechat_bot import texts
from wechat_bot.records import EmployerInvitation, StaffBindingCode, WechatPush, WechatSubscription
from wechat_bot.registry import (
    Incoming,
    Reply,
    dispatch,
    on_click,
    on_event,
    on_scene,
    on_text,
    read_only,
    registry,
)

log = logging.getLogger(__name__)

MENU_KEYS = ("MY_AGREEMENT", "TODO", "APPLY", "TERMINATION", "BIND", "HELP")


# ---------------------------------------------------------------- identity helpers

def _identity_problem(m: Incoming) -> str | None:
    """Why this sender cannot use personal functions (None when bound and active)."""
    if m.student is not None:
        return None
    if m.employer_user is not None:
        return None if m.employer_user.active else texts.ACCOUNT_DISABLED
    return texts.NEED_BINDING.format(bind_url=m.bind_url)


def _agreement_url(m: Incoming, a: Agreement, action: str = "") -> str:
    return m.url(f"/m/agreements/{a.id}" + (f"/{action}" if action else ""))


def _has_live(m: Incoming, live: Agreement) -> str:
    status = workflow.STATUS_LABELS[live.status]
    url = _agreement_url(m, live)
    return texts.INVITE_HAS_LIVE.format(employer=live.employer_name, status=status, url=url)


# ---------------------------------------------------------------- events

def _welcome(m: Incoming) -> str:
    if m.student is not None:
        return texts.WELCOME_BACK.format(name=m.student.name)
    if m.employer_user is not None:
        return texts.WELCOME_BACK.format(name=m.employer_user.name)
    return texts.WELCOME.format(bind_url=m.bind_url)


def _scene_reply(m: Incoming, scene: str) -> Reply:
    for prefix, fn in registry.scenes.items():
        if scene.startswith(prefix) and len(scene) > len(prefix):
            return fn(m, scene[len(prefix):])
    return None


@on_event("subscribe")
def subscribed(m: Incoming) -> Reply:
    """A plain follow: record it and welcome (with the binding link when unbound)."""
    WechatSubscription.note(m.openid, True)
    return _welcome(m)


@on_event("subscribe_scan")
def subscribed_by_scan(m: Incoming) -> Reply:
    """Followed by scanning a parametric QR code: record it, then act on the scene."""
    scene = str(m.msg.scene_id or "")
    WechatSubscription.note(m.openid, True, scene)
    reply = _scene_reply(m, scene)
    if reply is None:
        return _welcome(m)
    return texts.ACCOUNT_INTRO + "\n\n" + reply if isinstance(reply, str) else reply


@on_event("scan")
def scanned(m: Incoming) -> Reply:
    """A follower scanned a parametric QR code."""
    return _scene_reply(m, str(m.msg.scene_id or "")) or help_(m)


@on_event("unsubscribe")
def unsubscribed(m: Incoming) -> Reply:
    WechatSubscription.note(m.openid, False)
    return None


@on_event("templatesendjobfinish")
def template_finished(m: Incoming) -> Reply:
    """WeChat reports a template message's fate: update the push record."""
    changed = WechatPush.mark_finished(int(m.msg.id), str(m.msg.status or ""), m.openid)
    if not changed:
        log.info("TEMPLATESENDJOBFINISH for unknown msgid %s", m.msg.id)
    return None


@on_scene("inv_")
def invitation(m: Incoming, code: str) -> Reply:
    """An employer's invitation: a bound student goes straight to the application."""
    employer = EmployerInvitation.employer_for(code)
    if employer is None:
        return texts.INVITE_INVALID
    if employer.review_status != "approved":
        return texts.INVITE_EMPLOYER_GONE
    if m.employer_user is not None:
        return texts.INVITE_NOT_STUDENT
    apply_url = m.url("/m/apply", employer=employer.id)
    if m.student is None:
        bind_url = m.url("/m/bind", next="/m/apply?" + urlencode({"employer": employer.id}))
        return texts.INVITE_NEED_BINDING.format(employer=employer.name, bind_url=bind_url)
    live = Agreement.live_for_student(m.student.id)
    if live is not None:
        return _has_live(m, live)
    return texts.INVITE_APPLY.format(employer=employer.name, apply_url=apply_url)


@on_scene("staff_")
def staff_binding(m: Incoming, code: str) -> Reply:
    """A one-time staff code binds this WeChat account to an employer user."""
    outcome, user = StaffBindingCode.redeem(code, m.openid)
    if outcome == "bound" and user is not None:
        m.__dict__.pop("binding", None)
        m.__dict__.pop("employer_user", None)
        employer = Employer.get_by_id(user.employer_id)
        log.info("openid bound to employer user %s by staff code", user.id)
        return texts.STAFF_BOUND.format(employer=employer.name, name=user.name)
    return {"invalid": texts.STAFF_CODE_INVALID, "expired": texts.STAFF_CODE_EXPIRED,
            "used": texts.STAFF_CODE_USED, "inactive": texts.STAFF_USER_INACTIVE,
            "other_binding": texts.STAFF_ALREADY_BOUND_OTHER}[outcome]


# ---------------------------------------------------------------- commands

@read_only
@on_text("帮助", "help", "?", "？")
@on_click("HELP")
def help_(m: Incoming) -> Reply:
    if m.binding is None:
        return texts.HELP + "\n\n" + texts.HELP_UNBOUND.format(bind_url=m.bind_url)
    return texts.HELP


@read_only
@on_text("绑定")
@on_click("BIND")
def bind(m: Incoming) -> Reply:
    if m.student is not None:
        s = m.student
        return texts.ALREADY_BOUND_STUDENT.format(name=s.name, school=s.school.name, student_no=s.student_no)
    if m.employer_user is not None:
        u = m.employer_user
        return texts.ALREADY_BOUND_EMPLOYER.format(name=u.name, employer=u.employer.name)
    return texts.BIND_INTRO.format(bind_url=m.bind_url)


@read_only
@on_text("解绑")
def unbind(m: Incoming) -> Reply:
    return texts.UNBIND_CONFIRM if m.binding is not None else texts.UNBIND_NOTHING


@on_text("确认解绑")
def unbind_confirmed(m: Incoming) -> Reply:
    deleted = WechatBinding.delete().where(WechatBinding.openid == m.openid).execute()
    if not deleted:
        return texts.UNBIND_NOTHING
    log.info("openid unbound by its owner")
    return texts.UNBIND_DONE.format(bind_url=m.bind_url)


@read_only
@on_text("进度", "我的协议")
@on_click("MY_AGREEMENT")
def progress(m: Incoming) -> Reply:
    """The student's live agreement with its next step; for employer users a count per status."""
    problem = _identity_problem(m)
    if problem:
        return problem
    if m.student is not None:
        return _student_progress(m, m.student)
    return _employer_progress(m, m.employer_user)  # type: ignore[arg-type]


def _student_progress(m: Incoming, s: Student) -> str:
    live = Agreement.live_for_student(s.id)
    if live is not None:
        return texts.PROGRESS_STUDENT.format(
            number=live.number, employer=live.employer_name, status=workflow.STATUS_LABELS[live.status],
            next_step=texts.NEXT_STEP_STUDENT.get(live.status, ""), url=_agreement_url(m, live))
    text = texts.PROGRESS_NONE_STUDENT.format(apply_url=m.url("/m/apply"))
    last = s.agreements.order_by(Agreement.created_at.desc(), Agreement.id.desc()).first()
    if last is not None:
        text = texts.PROGRESS_LAST_CLOSED.format(employer=last.employer_name,
                                                 status=workflow.STATUS_LABELS[last.status]) + "\n" + text
    return text


def _employer_progress(m: Incoming, u: EmployerUser) -> str:
    employer = u.employer
    rows = (Agreement.select(Agreement.status).where((Agreement.employer == employer.id)
                                                     & Agreement.status.in_(list(workflow.LIVE))))
    counts: dict[str, int] = {}
    for a in rows:
        counts[a.status] = counts.get(a.status, 0) + 1
    if not counts:
        return texts.PROGRESS_EMPLOYER_NONE.format(employer=employer.name)
    lines = [texts.PROGRESS_EMPLOYER_HEAD.format(employer=employer.name)]
    lines += [texts.PROGRESS_EMPLOYER_LINE.format(status=workflow.STATUS_LABELS[st], count=counts[st])
              for st in workflow.STATUS_LABELS if st in counts]
    lines.append(texts.PROGRESS_EMPLOYER_TAIL.format(url=m.url("/m/agreements")))
    return "\n".join(lines)


@read_only
@on_text("待办")
@on_click("TODO")
def todo(m: Incoming) -> Reply:
    """What waits for this user, with a link per item."""
    problem = _identity_problem(m)
    if problem:
        return problem
    items: list[str] = []
    if m.student is not None:
        live = Agreement.live_for_student(m.student.id)
        if live is not None and live.status == "awaiting_student":
            items.append(texts.TODO_SIGN_STUDENT.format(employer=live.employer_name,
                                                        url=_agreement_url(m, live, "sign")))
        elif live is not None and live.status == "terminating":
            items.append(texts.TODO_TERMINATION_STUDENT.format(employer=live.employer_name,
                                                               url=_agreement_url(m, live, "termination")))
    else:
        waiting = (Agreement.select().where((Agreement.employer == m.employer_user.employer_id)  # type: ignore[union-attr]
                                            & Agreement.status.in_(["applied", "awaiting_employer"]))
                   .order_by(Agreement.deadline_at.asc(nulls="last"), Agreement.id))
        for a in waiting:
            line = texts.TODO_CONFIRM_EMPLOYER if a.status == "applied" else texts.TODO_SIGN_EMPLOYER
            action = "confirm" if a.status == "applied" else "sign"
            items.append(line.format(student=a.student_name, position=texts.inert(a.position[:20]),
                                     url=_agreement_url(m, a, action)))
    if not items:
        return texts.TODO_NONE
    shown = items[:texts.LIST_LIMIT]
    if len(items) > len(shown):
        shown.append(texts.TODO_MORE.format(count=len(items) - len(shown), url=m.url("/m/agreements")))
    return "\n".join([texts.TODO_HEAD, *shown])


@read_only
@on_text("解约")
@on_click("TERMINATION")
def termination(m: Incoming) -> Reply:
    """Student: the pending termination to answer. Employer user: how to start one, and where."""
    problem = _identity_problem(m)
    if problem:
        return problem
    if m.student is not None:
        live = Agreement.live_for_student(m.student.id)
        if live is None or live.status != "terminating":
            return texts.TERMINATION_STUDENT_NONE
        t = live.terminations.where(Termination.status == "pending").order_by(Termination.id.desc()).first()
        deadline = _local_time(t.deadline_at if t else live.deadline_at)
        return texts.TERMINATION_STUDENT_PENDING.format(
            employer=live.employer_name, reason=texts.inert((t.reason if t else "")[:200]), deadline=deadline,
            url=_agreement_url(m, live, "termination"))
    employer_id = m.employer_user.employer_id  # type: ignore[union-attr]
    completed = list(Agreement.select().where((Agreement.employer == employer_id)
                                              & (Agreement.status == "completed"))
                     .order_by(Agreement.completed_at.desc()).limit(texts.LIST_LIMIT + 1))
    waiting = Agreement.select().where((Agreement.employer == employer_id)
                                       & (Agreement.status == "terminating")).count()
    lines = []
    if not completed:
        lines.append(texts.TERMINATION_EMPLOYER_NONE)
    else:
        lines.append(texts.TERMINATION_EMPLOYER_HOWTO)
        lines += [texts.TERMINATION_EMPLOYER_LINE.format(student=a.student_name, number=a.number,
                                                         url=_agreement_url(m, a, "termination"))
                  for a in completed[:texts.LIST_LIMIT]]
        if len(completed) > texts.LIST_LIMIT:
            lines.append(m.url("/m/agreements"))
    if waiting:
        lines.append(texts.TERMINATION_EMPLOYER_WAITING.format(count=waiting))
    return "\n".join(lines)


@read_only
@on_click("APPLY")
def apply(m: Incoming) -> Reply:
    problem = _identity_problem(m)
    if problem:
        return problem
    if m.employer_user is not None:
        return texts.APPLY_EMPLOYER
    live = Agreement.live_for_student(m.student.id)  # type: ignore[union-attr]
    if live is not None:
        return _has_live(m, live)
    return texts.PROGRESS_NONE_STUDENT.format(apply_url=m.url("/m/apply"))


def _any_text(m: Incoming) -> Reply:
    """Anything else: a helpful answer, leading unbound users to binding."""
    if m.binding is None:
        return texts.UNKNOWN_TEXT + "\n\n" + texts.HELP_UNBOUND.format(bind_url=m.bind_url)
    return texts.UNKNOWN_TEXT


def _other_message(m: Incoming) -> Reply:
    return texts.UNSUPPORTED_MESSAGE


registry.default_text = read_only(_any_text)
registry.default = read_only(_other_message)


def _local_time(value: Any) -> str:
    """A naive-UTC datetime shown in Asia/Shanghai, e.g. 2026年12月09日 18:30."""
    if value is None:
        return "-"
    local = value.replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8)))
    return str(local.strftime("%Y年%m月%d日 %H:%M"))


__all__ = ["Incoming", "Reply", "MENU_KEYS", "registry", "dispatch", "on_text", "on_event",
           "on_click", "on_scene", "read_only"]
