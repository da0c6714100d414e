"""The application factory: settings in, database, storage, blueprints and error pages wired.

No table creation, network calls or prompts here (`tripact init` / `db upgrade` do that).
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, abort, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

import documents
import models
import redaction
import storage
import workflow
from settings import Settings, load_settings

log = logging.getLogger(__name__)

# Chinese titles for the error pages users may meet.
ERROR_TITLES = {
    400: "请求有误",
    403: "无权访问",
    404: "页面不存在",
    405: "不支持的请求方式",
    409: "内容已变化，请刷新后重试",
    413: "上传的内容过大",
    429: "操作过于频繁，请稍后再试",
    500: "系统繁忙，请稍后再试",
    503: "服务暂时不可用，请稍后再试",
}


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app for ``settings`` (read from file/env when None)."""
    redaction.install()
    settings = settings or load_settings()
    app = Flask(__name__, template_folder="templates", instance_path=str(settings.instance_dir))
    app.config.update(
        SECRET_KEY=settings.server.secret_key,
        MAX_CONTENT_LENGTH=settings.server.max_upload_mb * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.server.base_url.startswith("https://"),
        JSON_AS_ASCII=False,
        TRIPACT=settings,
    )
    app.url_map.converters["int"] = BoundedInt
    app.session_interface = _Sessions()
    if settings.server.behind_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]

    configure_services(settings)
    app.extensions["tripact_storage"] = storage.get_storage()
    _init_db_per_request(app)
    _register_blueprints(app, settings)
    _register_errors(app)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/", "index", index)
    return app


class _Sessions(SecureCookieSessionInterface):
    """Cookie sessions, except on machine-to-machine endpoints (WeChat's message POSTs, the RFC 3161
    authority) that never carry a user's cookie: no session is opened or saved there."""

    SESSIONLESS = ("/wechat", "/tsa")

    def open_session(self, app: Flask, request: Any) -> Any:
        if request.path in self.SESSIONLESS:
            return self.null_session_class()
        return super().open_session(app, request)


class BoundedInt(IntegerConverter):
    """``<int:…>`` that only matches what a database id column can hold: a larger number is a plain
    404 rather than an overflow deep in the database driver."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def configure_services(settings: Settings) -> None:
    """Bind the database, the store and the workflow's signing step (app, CLI and scheduler alike)."""
    models.init_db(settings.database_url)
    store = storage.configure(settings)
    workflow.configure(settings.workflow, signer=documents.PdfSigner(settings, store), image_loader=store.get)
    from wechat_bot import push  # registers the push jobs and the bot's tables

    push.configure(settings)


def _init_db_per_request(app: Flask) -> None:
    @app.before_request
    def _connect() -> None:
        # Refuse an oversized body from its declared length, before anything parses (and spools) it.
        limit = app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length > limit:
            abort(413)
        if _has_nul():
            exc = BadRequest()
            exc.description_zh = "请求中包含无效字符"  # type: ignore[attr-defined]
            raise exc
        if request.endpoint == "healthz":
            return  # it connects itself, so that a database outage is its JSON 503, not a 500 page
        models.db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc: BaseException | None) -> None:
        if not models.db.is_closed():
            models.db.close()


FORM_MIMETYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _has_nul() -> bool:
    """Whether the path, a query parameter or a form field holds a NUL character. No page needs one,
    and PostgreSQL refuses it in any text value ("A string literal cannot contain NUL"): refused at
    the door with a 400 rather than deep in a query with a 500, on every database alike."""
    if "\x00" in request.path:
        return True
    pairs = list(request.args.items(multi=True))
    if request.method == "POST" and request.mimetype in FORM_MIMETYPES:
        pairs += request.form.items(multi=True)
    return any("\x00" in k or "\x00" in v for k, v in pairs)


def _register_blueprints(app: Flask, settings: Settings) -> None:
    import admin
    import verification
    import wechat_bot

    wechat_bot.init_app(app, settings)
    admin.init_app(app, settings)
    verification.init_app(app)


def _register_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        title = ERROR_TITLES.get(code, "请求未能完成")
        if request.accept_mimetypes.best == "application/json" or request.path.startswith("/api/"):
            return jsonify(error=title, code=code), code
        return render_template("error.html", code=code, title=title,
                               description=getattr(exc, "description_zh", "")), code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_template("error.html", code=500, title=ERROR_TITLES[500], description=""), 500


def healthz() -> Any:
    """Database and storage status for load balancers and monitoring."""
    settings: Settings = _settings()
    status: dict[str, Any] = {}
    ok = True
    try:
        models.db.connect(reuse_if_open=True)
        models.db.execute_sql("SELECT 1")
        status["database"] = {"ok": True, "schema_version": models.schema_version(), "latest": models.LATEST}
        if status["database"]["schema_version"] != models.LATEST:
            status["database"]["ok"] = False
            status["database"]["error"] = "schema not up to date: run `tripact db upgrade`"
            ok = False
    except Exception as exc:  # noqa: BLE001 - report any database failure as unhealthy
        log.warning("healthz: database check failed: %s", exc)
        status["database"] = {"ok": False, "error": type(exc).__name__}
        ok = False
    try:
        storage.get_storage().check()
        status["storage"] = {"ok": True, "backend": settings.storage.backend}
    except Exception as exc:  # noqa: BLE001
        log.warning("healthz: storage check failed: %s", exc)
        status["storage"] = {"ok": False, "backend": settings.storage.backend, "error": type(exc).__name__}
        ok = False
    status["ok"] = ok
    return jsonify(status), 200 if ok else 503


def index() -> Any:
    return render_template("index.html", sandbox=_settings().wechat.sandbox)


def _settings() -> Settings:
    from flask import current_app

    return current_app.config["TRIPACT"]
