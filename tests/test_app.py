"""App factory, health check and Chinese error pages."""
from __future__ import annotations

import pytest

import models


def test_healthz_reports_database_and_storage(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.get_json()
    assert body["ok"] and body["database"]["schema_version"] == models.LATEST and body["storage"]["ok"]


def test_healthz_fails_when_schema_is_behind(client) -> None:  # type: ignore[no-untyped-def]
    models.SchemaVersion.delete().execute()
    r = client.get("/healthz")
    assert r.status_code == 503
    assert "tripact db upgrade" in r.get_json()["database"]["error"]


def test_healthz_fails_when_storage_is_unwritable(app, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import storage

    blocker = tmp_path / "blocked"
    blocker.write_text("a file where a folder should be")
    storage._current = storage.LocalStorage(blocker)
    r = client.get("/healthz")
    assert r.status_code == 503 and r.get_json()["storage"]["ok"] is False


def test_healthz_reports_a_database_outage_as_json(app, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Review finding: the per-request connection failed first, so /healthz answered a 500 page."""
    import peewee as pw

    if not models.db.is_closed():
        models.db.close()

    def down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise pw.OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(models.db.obj, "connect", down)
    r = client.get("/healthz")
    assert r.status_code == 503 and r.mimetype == "application/json"
    assert r.get_json()["database"] == {"ok": False, "error": "OperationalError"}


def test_not_found_page_is_chinese(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/no/such/page")
    assert r.status_code == 404 and "页面不存在" in r.get_data(as_text=True)


def test_unexpected_error_is_a_chinese_500_page(app, client) -> None:  # type: ignore[no-untyped-def]
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaput")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    r = client.get("/boom")
    assert r.status_code == 500 and "系统繁忙" in r.get_data(as_text=True) and "kaput" not in r.get_data(as_text=True)


def test_oversized_body_is_refused(app, client) -> None:  # type: ignore[no-untyped-def]
    @app.post("/upload-probe")
    def probe() -> str:
        from flask import request

        return str(len(request.get_data()))

    r = client.post("/upload-probe", data=b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1))
    assert r.status_code == 413 and "过大" in r.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/", "/admin/", "/m/"])
def test_skeleton_pages_render(client, path: str) -> None:  # type: ignore[no-untyped-def]
    r = client.get(path, follow_redirects=False)
    assert r.status_code in (200, 302)


@pytest.mark.parametrize("path", ["/m/agreements/99999999999999999999999", "/m/seals/184467440737095516160.png"])
def test_ids_beyond_the_database_range_are_404(client, path: str) -> None:  # type: ignore[no-untyped-def]
    assert client.get(path).status_code == 404
