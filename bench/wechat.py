"""Benchmark: signed text messages against tripact's /wechat under gunicorn (2 workers) versus a bare
Flask + wechatpy echo endpoint (bench/echo_app.py) under the same gunicorn, same load generator, same run.

* Throughput: a closed loop of concurrent keep-alive clients for a fixed time (wrk with a Lua script
  when the Debian package is installed – `make bench` installs it – else a Python generator); every
  message has its own MsgId, so tripact's de-duplication really inserts a row each time. Both servers
  run side by side and are measured in short alternating rounds (ABBA order); `ratio` is the median of
  the rounds' ratios, which cancels the drift of a shared machine's speed (2x within a minute here).
* Latency: an open loop at a fixed 200 messages/s for a few seconds; p99 of the response times.

Ends with `baseline_msgs_per_second`, `tripact_msgs_per_second`, `ratio` and `p99_ms` (tripact's,
at 200 msg/s), plus the baseline's p99 for reference. Targets: ratio >= 0.7, p99 < 100 ms.
"""
from __future__ import annotations

import hashlib
import http.client
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "benchtoken"
DURATION = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "8"))
RATE = 200
CONNECTIONS = 16
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_nonces = itertools.count(int(time.time() * 1000) % 10**9)


def signed_query() -> str:
    """A freshly signed query string, as WeChat sends with every request (tripact refuses a signature
    that comes back with another message)."""
    ts, nonce = str(int(time.time())), str(next(_nonces))
    sig = hashlib.sha1("".join(sorted([TOKEN, ts, nonce])).encode()).hexdigest()
    return urllib.parse.urlencode({"signature": sig, "timestamp": ts, "nonce": nonce, "openid": "o_bench_user"})


def message(msg_id: int) -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh_sandbox00000]]></ToUserName>"
            f"<FromUserName><![CDATA[o_bench_user_{msg_id % 50}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[帮助]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


def start_gunicorn(target: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # both sides run under the production gunicorn settings (deploy/gunicorn.conf.py), 2 workers
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "-w", "2",
           "-k", "sync", "-b", f"127.0.0.1:{port}", "--log-level", "warning", "--access-logfile", "/dev/null",
           "--chdir", str(ROOT), target]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(1.0)  # both workers up
                return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"gunicorn did not start: {target}")


WRK_LUA = """
counter = 0
local thread_id = 0
local queries = {}
function setup(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
function init(args)
  counter = tid * 100000000 + %d
  for line in io.lines("%s") do queries[#queries + 1] = line end
  sent = 0
end
request = function()
  counter = counter + 1
  sent = sent + 1
  -- one signed query per request, the two threads taking alternate ones
  local query = queries[((sent * 2 + tid) %% #queries) + 1]
  local body = "<xml><ToUserName><![CDATA[gh_sandbox00000]]></ToUserName><FromUserName><![CDATA[o_bench_user_" ..
    (counter %% 50) .. "]]></FromUserName><CreateTime>" .. os.time() .. "</CreateTime><MsgType><![CDATA[text]]>" ..
    "</MsgType><Content><![CDATA[帮助]]></Content><MsgId>" .. counter .. "</MsgId></xml>"
  return wrk.format("POST", "/wechat?" .. query, {["Content-Type"] = "text/xml"}, body)
end
"""
QUERIES_PER_ROUND = 100_000  # more than a round sends (about 4000 msg/s at best for 3 s)


def throughput(port: int, base_id: int) -> float:
    if shutil.which("wrk"):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as qf:
            qf.write("\n".join(signed_query() for _ in range(QUERIES_PER_ROUND)) + "\n")
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(WRK_LUA % (base_id, qf.name))
        out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{int(DURATION)}s", "-s", fh.name,
                              f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
        os.unlink(fh.name)
        os.unlink(qf.name)
        if "Non-2xx or 3xx responses" in out:
            raise SystemExit(f"some requests were refused:\n{out}")
        for line in out.splitlines():
            if line.startswith("Requests/sec:"):
                return float(line.split()[1])
        raise SystemExit(f"wrk output not understood:\n{out}")
    return _python_throughput(port, base_id)


def _python_throughput(port: int, base_id: int) -> float:
    ids = itertools.count(base_id)
    lock = threading.Lock()
    done = [0]
    stop = time.perf_counter() + DURATION

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.perf_counter() < stop:
            with lock:
                mid = next(ids)
                q = signed_query()
            conn.request("POST", f"/wechat?{q}", body=message(mid), headers={"Content-Type": "text/xml"})
            conn.getresponse().read()
            with lock:
                done[0] += 1

    threads = [threading.Thread(target=client) for _ in range(CONNECTIONS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.perf_counter() - start)


def p99_at_rate(port: int, base_id: int, seconds: float = 5.0) -> float:
    """Open loop: send RATE messages per second on a pool of keep-alive connections; p99 in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    n = int(RATE * seconds)
    queries = [signed_query() for _ in range(n)]
    start = time.perf_counter() + 0.2
    slots = iter(range(n))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            with lock:
                i = next(slots, None)
            if i is None:
                return
            due = start + i / RATE
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            conn.request("POST", f"/wechat?{queries[i]}", body=message(base_id + i),
                         headers={"Content-Type": "text/xml"})
            conn.getresponse().read()
            # measured from the scheduled send time, so a backlog counts against the server
            with lock:
                latencies.append((time.perf_counter() - due) * 1000)

    threads = [threading.Thread(target=worker) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statistics.quantiles(latencies, n=100)[98]


def check_reply(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", f"/wechat?{signed_query()}", body=message(1), headers={"Content-Type": "text/xml"})
    r = conn.getresponse()
    body = r.read().decode()
    if r.status != 200 or "<xml>" not in body:
        raise SystemExit(f"endpoint on {port} did not reply properly: {r.status} {body[:200]}")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tripact-bench-wechat-"))
    cfg = tmp / "config.toml"
    cfg.write_text(f'[server]\ninstance_path = "{tmp}"\nsecret_key = "bench"\n'
                   f'[wechat]\ntoken = "{TOKEN}"\nappsecret = "bench"\n'
                   '[signing]\nmaster_secret = "bench"\n[scheduler]\nin_process = false\n'
                   + (f'[redis]\nurl = "{REDIS_URL}"\n' if REDIS_URL else ""), encoding="utf-8")
    env = dict(os.environ, TRIPACT_CONFIG=str(cfg), ECHO_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "cli", "init"], env=env, cwd=ROOT, check=True, capture_output=True)
    servers = {}
    try:
        for name, target in (("baseline", "bench.echo_app:create_app()"), ("tripact", "app:create_app()")):
            port = free_port()
            servers[name] = (port, start_gunicorn(target, port, env))
            check_reply(port)
        # Alternate the two in short rounds, each round's order the reverse of the last (ABBA), so that
        # both meet the same machine state: on a shared machine the speed drifts by 2x within a minute.
        # The ratio is the median of the rounds' ratios, each taken from two back-to-back runs.
        rates: dict[str, list[float]] = {"baseline": [], "tripact": []}
        base_id = 10_000_000
        for i in range(ROUNDS):
            for name in (("baseline", "tripact") if i % 2 == 0 else ("tripact", "baseline")):
                base_id += 1_000_000
                rates[name].append(throughput(servers[name][0], base_id))
        p99 = {name: p99_at_rate(port, 90_000_000 + i * 1_000_000)
               for i, (name, (port, _proc)) in enumerate(servers.items())}
    finally:
        for _port, proc in servers.values():
            proc.terminate()
            proc.wait(15)
    results = {name: (statistics.median(rates[name]), p99[name]) for name in rates}
    ratio = statistics.median(t / b for t, b in zip(rates["tripact"], rates["baseline"], strict=True))
    shutil.rmtree(tmp, ignore_errors=True)
    (b_rate, b_p99), (t_rate, t_p99) = results["baseline"], results["tripact"]
    generator = "wrk" if shutil.which("wrk") else "python"
    print(f"# medians of {ROUNDS} alternating (ABBA) rounds of {DURATION:.0f} s closed loop with {CONNECTIONS} "
          f"connections ({generator}); "
          f"p99 over 5 s at {RATE} msg/s; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"baseline_p99_ms {b_p99:.1f}")
    print(f"baseline_msgs_per_second {b_rate:.1f}")
    print(f"tripact_msgs_per_second {t_rate:.1f}")
    print("# per round, baseline/tripact msg/s: "
          + " ".join(f"{b:.0f}/{t:.0f}" for b, t in zip(rates["baseline"], rates["tripact"], strict=True)))
    print(f"ratio {ratio:.2f}")
    print(f"p99_ms {t_p99:.1f}")


if __name__ == "__main__":
    main()
