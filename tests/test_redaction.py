"""Secrets in failed URLs never reach the logs or stored error texts."""
from __future__ import annotations

import logging

import jobs
import redaction
from models import OutboxJob

URL = ("https://api.weixin.qq.com/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=S3CR3T"
       "&access_token=T0K3N&code=C0D3")


def test_redact_blanks_secret_parameters() -> None:
    out = redaction.redact(f"ConnectionError: Max retries exceeded with url: {URL}")
    assert "S3CR3T" not in out and "T0K3N" not in out and "C0D3" not in out
    assert "appid=wx1" in out and "secret=***" in out


def test_log_records_and_tracebacks_are_redacted(caplog) -> None:  # type: ignore[no-untyped-def]
    redaction.install()
    log = logging.getLogger("tripact.test")
    with caplog.at_level(logging.WARNING):
        try:
            raise ConnectionError(f"failed: {URL}")
        except ConnectionError:
            log.exception("call to %s failed", URL)
    text = caplog.text
    assert "S3CR3T" not in text and "T0K3N" not in text and "secret=***" in text


def test_failed_job_stores_a_redacted_error(app) -> None:  # type: ignore[no-untyped-def]
    @jobs.handler("test_leaky")
    def leaky(job: OutboxJob) -> str:
        raise ConnectionError(f"Max retries exceeded with url: {URL}")

    job = OutboxJob.create(kind="test_leaky", payload={})
    jobs.run_due()
    stored = OutboxJob.get_by_id(job.id).last_error
    assert "S3CR3T" not in stored and "secret=***" in stored
