"""The bot's registry: handlers are registered by text command, event, menu key and QR scene
(WeRoBot's ``@robot.text`` habit), never chained. :class:`Incoming` is what a handler gets: the
wechatpy message, the settings and the sender's binding, read lazily."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeAlias
from urllib.parse import urlencode

from wechatpy.replies import BaseReply

import models
from models import EmployerUser, Student, WechatBinding
from settings import Settings

Reply: TypeAlias = str | BaseReply | None

@dataclass
class Incoming:
    """A parsed incoming message (wechatpy object) with the settings and the sender's identity."""

    msg: Any
    settings: Settings
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def openid(self) -> str:
        return str(self.msg.source)

    @cached_property
    def binding(self) -> WechatBinding | None:
        sql = models.compiled_sql("wechat_binding.by_openid", lambda: WechatBinding.select(
            WechatBinding.id, WechatBinding.student, WechatBinding.employer_user,
        ).where(WechatBinding.openid == "").limit(1))
        row = models.db.execute_sql(sql, (self.openid, 1)).fetchone()
        if row is None:
            return None
        return WechatBinding(id=row[0], openid=self.openid, student=row[1], employer_user=row[2])

    @cached_property
    def student(self) -> Student | None:
        b = self.binding
        return Student.get_or_none(Student.id == b.student_id) if b and b.student_id else None

    @cached_property
    def employer_user(self) -> EmployerUser | None:
        b = self.binding
        if b is None or not b.employer_user_id:
            return None
        return EmployerUser.get_or_none(EmployerUser.id == b.employer_user_id)

    def url(self, path: str, **query: Any) -> str:
        """An absolute link to one of the mobile pages."""
        base = self.settings.server.base_url.rstrip("/")
        return base + path + ("?" + urlencode(query) if query else "")

    @property
    def bind_url(self) -> str:
        return self.url("/m/bind")


Handler = Callable[[Incoming], Reply]


class Registry:
    """Handlers by text command, event name, menu key and QR scene prefix."""

    def __init__(self) -> None:
        self.texts: dict[str, Handler] = {}
        self.events: dict[str, Handler] = {}
        self.clicks: dict[str, Handler] = {}
        self.scenes: dict[str, Callable[[Incoming, str], Reply]] = {}
        self.default_text: Handler | None = None
        self.default: Handler | None = None
        self.read_only: set[Handler] = set()

    def handler_for(self, msg: Any) -> Handler | None:
        """The handler that answers ``msg`` (None: nothing to say, e.g. VIEW or LOCATION events)."""
        if msg.type == "text":
            return self.texts.get((msg.content or "").strip()) or self.default_text
        if msg.type == "event":
            if msg.event == "click":
                return self.clicks.get(msg.key or "") or self.default
            return self.events.get(msg.event)
        return self.default

    def dispatch(self, incoming: Incoming) -> Reply:
        """The reply for one message (None: nothing to say)."""
        fn = self.handler_for(incoming.msg)
        return fn(incoming) if fn else None

    def is_read_only(self, msg: Any) -> bool:
        """Whether answering ``msg`` changes nothing (so answering a retry twice is harmless)."""
        fn = self.handler_for(msg)
        return fn is None or fn in self.read_only


registry = Registry()


def on_text(*commands: str) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        for c in commands:
            registry.texts[c] = fn
        return fn
    return wrap


def on_event(*events: str) -> Callable[[Handler], Handler]:
    """Register for wechatpy event names (lower case: subscribe, subscribe_scan, scan, ...)."""
    def wrap(fn: Handler) -> Handler:
        for e in events:
            registry.events[e.lower()] = fn
        return fn
    return wrap


def on_click(*keys: str) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        for k in keys:
            registry.clicks[k] = fn
        return fn
    return wrap


def read_only(fn: Handler) -> Handler:
    """Mark a handler that only reads: the endpoint may answer it before claiming the message, and
    store the claim and the reply in one write."""
    registry.read_only.add(fn)
    return fn


def on_scene(prefix: str) -> Callable[[Callable[[Incoming, str], Reply]], Callable[[Incoming, str], Reply]]:
    """Register for parametric QR scenes starting with ``prefix``; the handler gets the rest."""
    def wrap(fn: Callable[[Incoming, str], Reply]) -> Callable[[Incoming, str], Reply]:
        registry.scenes[prefix] = fn
        return fn
    return wrap


def dispatch(incoming: Incoming) -> Reply:
    """Route ``incoming`` to its registered handler."""
    return registry.dispatch(incoming)


__all__ = ["Reply", "Handler", "Incoming", "Registry", "registry", "on_text", "on_event", "on_click",
           "on_scene", "read_only", "dispatch"]
