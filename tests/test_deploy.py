"""The production web server set-up (deploy/gunicorn.conf.py) serves the app, on every database.

gunicorn runs as systemd would start it: the app preloaded in the master, 2 workers forked from it,
restarted after a few requests (``--max-requests``) and after a crash. WeChat messages keep being
answered and processed exactly once across all of it.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import models
from tests.wechat_bot.test_handler_protocol import sha1_sign, text_xml

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "deploytesttoken"


@pytest.fixture
def db_url(any_db: str) -> str:
    return any_db


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workers(master: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


@pytest.fixture
def gunicorn(tmp_path: Path, db_url: str, pki_dir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\ninstance_path = "{tmp_path}"\nsecret_key = "deploy-test"\n'
        f'[database]\nurl = "{db_url}"\n'
        f'[wechat]\ntoken = "{TOKEN}"\nappsecret = "deploy-test"\n'
        f'[signing]\nmaster_secret = "test-master-secret"\npki_dir = "{pki_dir}"\n'
        '[scheduler]\nin_process = false\n', encoding="utf-8")
    port = _free_port()
    env = dict(os.environ, TRIPACT_CONFIG=str(config), TRIPACT_WORKERS="2", PYTHONPATH=str(ROOT))
    if not models.db.is_closed():
        models.db.close()  # SQLite: the server's workers write to the same file
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
         "-b", f"127.0.0.1:{port}", "--max-requests", "15", "--max-requests-jitter", "0",
         "--access-logfile", "/dev/null", "--log-level", "warning", "app:create_app()"],
        cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "gunicorn exited"
            try:
                if _get(port, "/healthz")[0] == 200 and len(_workers(proc.pid)) == 2:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not come up"
            time.sleep(0.2)
        yield port, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def _say(port: int, body: str) -> tuple[int, str]:
    ts, nonce = str(int(time.time())), "4242"
    qs = urllib.parse.urlencode({"signature": sha1_sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", f"/wechat?{qs}", body=body.encode(), headers={"Content-Type": "text/xml"})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def _seen() -> int:
    models.db.connect(reuse_if_open=True)
    try:
        return int(models.db.execute_sql("SELECT COUNT(*) FROM wechat_message_seen").fetchone()[0])
    finally:
        models.db.close()


def test_preloaded_workers_serve_across_restarts_and_crashes(gunicorn: tuple[int, Any]) -> None:
    port, proc = gunicorn
    first_workers = _workers(proc.pid)
    bodies = [text_xml(f"oDeployUser{i % 3:017d}", "帮助", msg_id=7_000_000 + i) for i in range(60)]
    for body in bodies[:40]:  # well past --max-requests 15 per worker: both workers restart
        status, text = _say(port, body)
        assert status == 200 and "<Content><![CDATA[" in text, (status, text[:200])
    # a crash: the master forks a fresh worker from the preloaded app
    victim = next(iter(_workers(proc.pid)))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while victim in _workers(proc.pid) or len(_workers(proc.pid)) < 2:
        assert time.monotonic() < deadline, "no worker replaced the killed one"
        time.sleep(0.1)
    for body in bodies[40:]:
        status, text = _say(port, body)
        assert status == 200 and "<Content><![CDATA[" in text, (status, text[:200])
    assert not (_workers(proc.pid) & first_workers), "the workers were never restarted"
    # every message processed once; a retry of an early one is answered from the record, not again
    assert _seen() == 60
    status, text = _say(port, bodies[3])
    assert status == 200 and "<Content><![CDATA[" in text
    assert _seen() == 60
    assert _get(port, "/healthz")[0] == 200
