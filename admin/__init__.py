"""The PC console for school staff, platform administrators and employers."""
from __future__ import annotations

from flask import Blueprint, Flask, render_template

from settings import Settings

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")


@bp.get("/")
def home() -> str:
    return render_template("admin/home.html")


def init_app(app: Flask, settings: Settings) -> None:
    """Register the console routes."""
    app.register_blueprint(bp)
