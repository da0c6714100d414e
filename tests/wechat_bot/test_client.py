"""wechat_bot.client: base URLs, the token shared by processes (database or Redis), the refresh lease."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from wechatpy.exceptions import WeChatClientException

from settings import defaults_for_tests
from wechat_bot import client as wc
from wechat_bot.store import SandboxToken

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"redis not reachable: {exc}")


@pytest.fixture(params=["database", "redis"])
def storage(request, live):
    """The live sandbox's settings with the token kept in the database or in Redis."""
    if request.param == "redis":
        redis_or_skip()
        settings = live.settings.replace(redis={"url": REDIS_URL})
        yield settings
        r = wc.redis_client(REDIS_URL)
        for key in r.scan_iter(f"*{settings.wechat.appid}*"):
            r.delete(key)
    else:
        yield live.settings


def issued() -> int:
    return SandboxToken.select().where(SandboxToken.kind == "client").count()


def test_api_base_follows_the_settings(tmp_path):
    s = defaults_for_tests(tmp_path, server={"base_url": "http://127.0.0.1:9000"})
    assert wc.api_base(s) == "http://127.0.0.1:9000/sandbox/"  # sandbox on, api_base empty
    assert wc.api_base(s.replace(wechat={"sandbox": False})) == wc.REAL_API_BASE
    assert wc.api_base(s.replace(wechat={"api_base": "http://h/wx"})) == "http://h/wx/"
    client = wc.make_client(s)
    assert client.API_BASE_URL == "http://127.0.0.1:9000/sandbox/cgi-bin/"
    assert (
        client._rebase("https://api.weixin.qq.com/datacube/getx")
        == "http://127.0.0.1:9000/sandbox/datacube/getx"
    )
    oauth = wc.make_oauth(s, "http://127.0.0.1:9000/m/oauth", state="abc")
    assert oauth.authorize_url.startswith("http://127.0.0.1:9000/sandbox/connect/oauth2/authorize?appid=")
    real = wc.make_oauth(s.replace(wechat={"sandbox": False}), "https://x/cb")
    assert real.authorize_url.startswith("https://open.weixin.qq.com/connect/oauth2/authorize?")
    assert wc.qrcode_image_url(s.replace(wechat={"sandbox": False}), "a b").endswith(
        "showqrcode?ticket=a%20b"
    )
    assert wc.WeChatClient.API_BASE_URL == "https://api.weixin.qq.com/cgi-bin/"  # nothing global was changed


def test_threads_share_one_refresh(storage):
    clients = [wc.make_client(storage) for _ in range(6)]
    barrier = threading.Barrier(len(clients))
    tokens: list[str] = []

    def run(c: wc.SharedTokenWeChatClient) -> None:
        barrier.wait()
        tokens.append(c.access_token)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(tokens) == 6 and len(set(tokens)) == 1 and issued() == 1


PROCESS_SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
import models, settings
from wechat_bot.client import make_client
args = json.loads(sys.argv[1])
s = settings.defaults_for_tests(Path(args["tmp"]), server={{"base_url": args["base"]}},
                                wechat={{"appid": args["appid"], "api_base": args["base"] + "/sandbox/"}},
                                redis={{"url": args["redis"]}})
models.init_db(s.database_url)
c = make_client(s)
print(json.dumps({{"token": c.access_token, "fetched": c.fetch_count}}))
"""


def test_processes_share_the_token(storage, tmp_path):
    args = json.dumps(
        {
            "tmp": str(tmp_path),
            "base": storage.server.base_url,
            "appid": storage.wechat.appid,
            "redis": storage.redis.url,
        }
    )
    code = PROCESS_SCRIPT.format(root=str(ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=30) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert len({r["token"] for r in results}) == 1
    assert sum(r["fetched"] for r in results) == 1 and issued() == 1
    # ...and this process, reading the shared storage, knows the token and its expiry.
    here = wc.make_client(storage)
    assert here.access_token == results[0]["token"] and here.fetch_count == 0
    assert here.expires_at > time.time() + 7000


def test_token_errors_retry_once_only(live):
    live.app.config["SANDBOX_TOKEN_EXPIRES_IN"] = 0  # every token is born expired
    client = wc.make_client(live.settings)
    with pytest.raises(WeChatClientException) as exc:
        client.menu.get()
    assert exc.value.errcode == 42001
    assert client.fetch_count == 2  # the first fetch, then one refresh for the retry


def test_database_lease_is_exclusive_and_lapses(live):
    first, second = wc.Lease("t", ttl_ms=200), wc.Lease("t", ttl_ms=200)
    assert first.acquire() and not second.acquire()
    first.release()
    assert second.acquire()
    time.sleep(0.25)
    assert first.acquire()  # the holder vanished: the lease lapsed
    second.release()  # not the holder any more: no effect
    assert not wc.Lease("t").acquire()


def test_redis_lease_is_exclusive():
    redis_or_skip()
    r = wc.redis_client(REDIS_URL)
    name = f"test-{time.time_ns()}"
    first, second = wc.Lease(name, r, ttl_ms=5000), wc.Lease(name, r, ttl_ms=5000)
    assert first.acquire() and not second.acquire()
    second.release()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_database_storage_round_trip(live):
    store = wc.DatabaseStorage()
    assert store.get("k", "d") == "d"
    store.set("k", {"a": 1})
    store.set("k", {"a": 2}, ttl=60)
    assert store.get("k") == {"a": 2}
    store.set("gone", "x", ttl=-1)
    assert store.get("gone") is None
    store.delete("k")
    assert store.get("k") is None
