"""WeChat's retries are processed once – sequentially and when they arrive at the same moment in two
server threads (each with its own database connection) – on SQLite, PostgreSQL and MariaDB, and with
Redis when configured."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.wechat_bot.test_handler_protocol import (  # noqa: F401 - the app fixture is reused
    OPENID,
    WeChat,
    app,
    event_xml,
    text_xml,
)
from wechat_bot import handler, replies
from wechat_bot.records import WechatMessageSeen, WechatSubscription


@pytest.fixture
def db_url(any_db: str) -> str:
    return any_db


@pytest.fixture
def wx(client, settings) -> WeChat:  # type: ignore[no-untyped-def]
    return WeChat(client, settings)


class Counted(list[str]):
    """Runs of the text command "计数"; each run takes ``delay`` seconds."""

    delay = 0.0


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    runs = Counted()
    lock = threading.Lock()

    def slow(m: replies.Incoming) -> str:
        with lock:
            runs.append(m.msg.content)
        time.sleep(runs.delay)  # keeps the first run busy while the retries arrive
        return f"第{len(runs)}次处理"
    monkeypatch.setitem(replies.registry.texts, "计数", slow)
    return runs


def test_replayed_msgid_is_processed_once_with_the_same_reply(wx: WeChat, counted: Counted) -> None:
    xml = text_xml(OPENID, "计数", msg_id=7_000_000_001)
    first = wx.reply(wx.post(xml))
    second = wx.reply(wx.post(xml))  # a retry: new timestamp and nonce, same message
    assert counted == ["计数"]
    assert first is not None and second is not None and first["Content"] == second["Content"] == "第1次处理"
    third = wx.reply(wx.post(text_xml(OPENID, "计数", msg_id=7_000_000_002)))
    assert third is not None and third["Content"] == "第2次处理"


def test_replayed_event_is_processed_once(wx: WeChat) -> None:
    xml = event_xml(OPENID, "subscribe", create_time=1_760_000_000)
    assert wx.event is not None
    r1, r2 = wx.reply(wx.post(xml)), wx.reply(wx.post(xml))
    assert r1 == r2
    assert WechatSubscription.get(WechatSubscription.openid == OPENID).times == 1
    # another event in the same second is a different message
    wx.post(event_xml(OPENID, "unsubscribe", create_time=1_760_000_000))
    assert not WechatSubscription.get(WechatSubscription.openid == OPENID).subscribed


def test_old_keys_are_purged(db_url: str) -> None:
    import datetime as dt

    from models import utcnow

    assert WechatMessageSeen.claim("msg:1")
    assert not WechatMessageSeen.claim("msg:1")
    WechatMessageSeen.update(created_at=utcnow() - dt.timedelta(days=2)).execute()
    assert WechatMessageSeen.purge() == 1
    assert WechatMessageSeen.claim("msg:1")


def _with_handler(settings: Any) -> Any:
    from app import create_app

    application = create_app(settings)
    if "wechat_handler" not in application.blueprints:
        application.register_blueprint(handler.bp)
    return application


def _post_together(live: Any, xml: str, n: int = 2) -> list[requests.Response]:
    """Post the same signed request from ``n`` threads released at the same instant."""
    wx = WeChat(None, live.settings)
    params, body = wx.params(xml)
    barrier = threading.Barrier(n)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        r = requests.post(live.url("/wechat"), params=params, data=body.encode(), timeout=10,
                          headers={"Content-Type": "text/xml"})
        with lock:
            results.append(r)
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    return results


def test_concurrent_retries_on_a_real_server_are_processed_once(
        serve: Callable[..., Any], any_db: str, counted: Counted) -> None:
    counted.delay = 0.4
    live = serve(_with_handler, database={"url": any_db})
    results = _post_together(live, text_xml(OPENID, "计数", msg_id=8_000_000_001), n=3)
    assert [r.status_code for r in results] == [200, 200, 200]
    assert counted == ["计数"]
    bodies = sorted(r.text for r in results)
    assert sum("第1次处理" in b for b in bodies) >= 1
    assert all(b == "success" or "第1次处理" in b for b in bodies)


def _redis_url() -> str:
    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"redis not reachable: {exc}")
    return url


def test_concurrent_retries_with_redis_are_processed_once(serve: Callable[..., Any],
                                                          counted: Counted) -> None:
    # The Redis path does not depend on the database: one run, on the server's own SQLite file.
    counted.delay = 0.4
    live = serve(_with_handler, redis={"url": _redis_url()})
    msg_id = int(time.time() * 1000)
    results = _post_together(live, text_xml(OPENID, "计数", msg_id=msg_id), n=3)
    assert [r.status_code for r in results] == [200, 200, 200]
    assert counted == ["计数"]
    assert WechatMessageSeen.select().count() == 0  # Redis, not the table, remembered it
    later = WeChat(None, live.settings)
    params, body = later.params(text_xml(OPENID, "计数", msg_id=msg_id))
    r = requests.post(live.url("/wechat"), params=params, data=body.encode(), timeout=10)
    assert "第1次处理" in r.text and counted == ["计数"]


def test_a_retried_long_read_only_reply_queues_its_tail_once(client, settings, factory) -> None:  # type: ignore[no-untyped-def]
    """Review finding: the length check ran before '<' became '＜' (1 byte -> 3), so a reply that
    only grew past the limit when escaped took the answer-first path and queued its tail again
    on every WeChat retry."""
    from wechatpy import parse_message

    from models import Agreement, OutboxJob, WechatBinding
    from tests.wechat_bot.test_handler_protocol import WeChat, text_xml
    from wechat_bot import handler, replies

    openid = "oStaff00000000000000000000001"
    # a long public address makes the six listed links long enough (this test's own settings object)
    object.__setattr__(settings.server, "base_url",
                       "https://sanfangxieyi.employment-service.provincial-education-department.example.cn")
    world = factory.World()
    WechatBinding.create(openid=openid, employer_user=world.user)
    for _ in range(8):
        a = world.agreement_at("applied", student=factory.make_student(world.school))
        Agreement.update(student_name="<" * 50, position="<" * 20).where(Agreement.id == a.id).execute()
    raw = replies.dispatch(replies.Incoming(parse_message(text_xml(openid, "待办")), settings))
    assert len(raw.encode()) <= handler.PASSIVE_TEXT_BYTES < len(handler._escaped(raw).encode())
    wx = WeChat(client, settings)
    message = text_xml(openid, "待办", msg_id=9_100_000_001)
    before = OutboxJob.select().where(OutboxJob.kind == "wechat_text").count()
    for _ in range(3):  # the message and two retries
        assert wx.reply(wx.post(message))
    assert OutboxJob.select().where(OutboxJob.kind == "wechat_text").count() - before == 1
