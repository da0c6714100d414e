"""The WeChat official-account surface: message endpoint, bot replies, OAuth pages, pushes, pay."""
from __future__ import annotations

from flask import Blueprint, Flask

import wechat_bot.store  # noqa: F401 - registers the shared token tables for `db upgrade`
from settings import Settings

bp = Blueprint("wechat_bot", __name__, url_prefix="/m", template_folder="templates")


@bp.get("/")
def home() -> str:
    from flask import render_template

    return render_template("wechat_bot/home.html")


def init_app(app: Flask, settings: Settings) -> None:
    """Register the WeChat routes (and the local sandbox when enabled)."""
    app.register_blueprint(bp)
    if settings.wechat.sandbox:
        from wechat_bot import sandbox

        sandbox.init_app(app, settings)
