"""The `tripact` command: idempotent init, demo, listings, audit verification, one-line errors."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import cli
import models

TRIPACT = [sys.executable, "-m", "cli"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(f'[server]\ninstance_path = "{tmp_path / "inst"}"\n[scheduler]\nin_process = false\n',
                 encoding="utf-8")
    return p


def run(config: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_init_is_idempotent_and_demo_seeds_every_state(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "init", capsys=capsys)[0] == 0
    code, out, _ = run(config, "init", capsys=capsys)
    assert code == 0 and f"schema version {models.LATEST}" in out
    code, out, err = run(config, "demo", capsys=capsys)
    assert code == 0 and "demo data created" in out
    # the demo signs for the school itself; its template messages wait for `tripact serve` (whose
    # sandbox is not up yet) instead of failing one by one with a traceback each
    assert "Traceback" not in err and "failed" not in err
    kinds = {(j.kind, j.status) for j in models.OutboxJob.select()}
    assert ("school_auto_sign", "done") in kinds and ("school_auto_sign", "pending") not in kinds
    assert {s for k, s in kinds if k == "notify"} == {"pending"}
    tried = models.OutboxJob.select().where(models.OutboxJob.attempts > 0, models.OutboxJob.kind == "notify")
    assert tried.count() == 0
    code, out, _ = run(config, "demo", capsys=capsys)
    assert code == 0 and "already present" in out
    code, out, _ = run(config, "agreements", "list", "--json", capsys=capsys)
    rows = json.loads(out)
    statuses = {r["status"] for r in rows}
    assert {"applied", "awaiting_student", "school_review", "awaiting_employer", "completed", "terminating",
            "rejected", "withdrawn", "expired", "returned", "terminated", "cancelled"} <= statuses
    assert all("*" in r["student_id_number"] for r in rows)  # ID numbers masked
    code, out, _ = run(config, "agreements", "list", "--status", "completed", capsys=capsys)
    assert code == 0 and out.strip().endswith("2 agreements")
    number = next(r["number"] for r in rows if r["status"] == "completed")
    code, out, _ = run(config, "agreements", "show", number, capsys=capsys)
    shown = json.loads(out)
    assert [e["action"] for e in shown["events"]][:2] == ["apply", "confirm"]
    assert [s["party"] for s in shown["signatures"]] == ["student", "school", "employer"]
    code, out, _ = run(config, "audit", "verify", capsys=capsys)
    assert code == 0 and f"{len(rows)} of {len(rows)} event chains verified" in out


def test_audit_verify_reports_a_tampered_chain(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(config, "init", capsys=capsys)
    run(config, "demo", capsys=capsys)
    ev = models.AgreementEvent.select().where(models.AgreementEvent.seq == 2).first()
    models.AgreementEvent.update(details={"forged": True}).where(models.AgreementEvent.id == ev.id).execute()
    code, out, _ = run(config, "audit", "verify", capsys=capsys)
    assert code == 1 and f"agreement {ev.agreement_id}: BROKEN" in out and "altered" in out
    code, out, _ = run(config, "audit", "verify", str(ev.agreement_id), capsys=capsys)
    assert code == 1 and "0 of 1" in out


@pytest.mark.parametrize("args, code, message", [
    (["agreements", "show", "nope"], 1, "no agreement 'nope'"),
    (["agreements", "list", "--status", "flying"], 2, "unknown status 'flying'"),
    (["frobnicate"], 2, "invalid choice"),
    (["agreements"], 2, "required"),
])
def test_errors_are_one_line(config: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int,
                             message: str) -> None:
    run(config, "init", capsys=capsys)
    got, out, err = run(config, *args, capsys=capsys)
    assert got == code
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_commands_before_init_ask_for_upgrade(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(config, "agreements", "list", capsys=capsys)
    assert code == 1 and "tripact db upgrade" in err


@pytest.mark.parametrize("text, message", [
    ("[server]\nport = 'x'\n", "[server] port"),
    ("[nonsense\n", "not valid TOML"),
    ("[database]\nurl = 'postgresql://nobody@127.0.0.1:1/none'\n", "database"),
])
def test_bad_configuration_in_a_subprocess(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text + '\n[scheduler]\nin_process = false\n' if "[scheduler]" not in text else text,
                   encoding="utf-8")
    env = dict(os.environ, TRIPACT_SERVER_INSTANCE_PATH=str(tmp_path))
    p = subprocess.run(TRIPACT + ["--config", str(cfg), "init"], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=60)
    assert p.returncode == 1
    assert message in p.stderr and "Traceback" not in p.stderr and p.stderr.count("\n") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_healthz(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(config, "init", capsys=capsys)
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(TRIPACT + ["--config", str(config), "serve", "--port", str(port)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None, "server did not answer"
        assert body["ok"] and body["database"]["ok"] and body["storage"]["ok"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            assert "电子就业协议" in r.read().decode()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_demo_refuses_production(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "prod.toml"
    cfg.write_text(f'[server]\nmode = "production"\nsecret_key = "{"k" * 32}"\ninstance_path = "{tmp_path}"\n'
                   f'[signing]\nmaster_secret = "{"m" * 32}"\n[wechat]\nappsecret = "a"\ntoken = "t"\n'
                   'sandbox = false\n[scheduler]\nin_process = false\n', encoding="utf-8")
    assert cli.main(["--config", str(cfg), "init"]) == 0
    assert cli.main(["--config", str(cfg), "demo"]) == 1
    assert "production" in capsys.readouterr().err
    assert models.PlatformAdmin.select().count() == 0


def test_verify_without_usable_platform_keys_says_it_could_not_check(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Review finding: unusable platform keys crashed with a traceback and exit 1 ("invalid")."""
    cfg = tmp_path / "c.toml"
    settings = f'[server]\ninstance_path = "{tmp_path}"\n[signing]\nmaster_secret = "%s"\n'
    cfg.write_text(settings % "the-right-secret", encoding="utf-8")
    assert cli.main(["--config", str(cfg), "init"]) == 0
    cfg.write_text(settings % "a-wrong-secret", encoding="utf-8")  # the keys no longer decrypt
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%%EOF\n")
    capsys.readouterr()
    code = cli.main(["--config", str(cfg), "verify", str(pdf)])
    err = capsys.readouterr().err
    assert code == 3 and "cannot verify" in err and "Traceback" not in err


def test_export_of_a_document_missing_from_the_store_is_one_line(config: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, "init", capsys=capsys)[0] == 0
    assert run(config, "demo", capsys=capsys)[0] == 0
    import storage

    a = models.Agreement.get(models.Agreement.status == "completed")
    storage.get_storage().delete(a.document_key)
    code, _out, err = run(config, "agreements", "export", str(a.id), str(config.parent / "a.pdf"), capsys=capsys)
    assert code == 1 and "cannot be read from the store" in err and "Traceback" not in err


@pytest.mark.parametrize("port", ["-1", "70000", "http"])
def test_serve_refuses_a_port_that_is_not_one(config: Path, port: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(config), "serve", "--port", port]) == 2
    assert "not a port number" in capsys.readouterr().err
