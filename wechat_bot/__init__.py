"""The WeChat official-account surface: message endpoint, bot replies, OAuth pages, pushes."""
from __future__ import annotations

from flask import Flask

import wechat_bot.pages_store  # noqa: F401 - registers the pages' tables for `db upgrade`
import wechat_bot.records  # noqa: F401 - registers the bot's tables for `db upgrade`
import wechat_bot.store  # noqa: F401 - registers the shared token tables for `db upgrade`
from settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Register the WeChat routes: /wechat, the /m pages (and the local sandbox when enabled)."""
    from wechat_bot import handler, pages

    pages.init_app(app)
    app.register_blueprint(handler.bp)
    handler.install_lane(app, settings)
    if settings.wechat.sandbox:
        from wechat_bot import sandbox

        sandbox.init_app(app, settings)
