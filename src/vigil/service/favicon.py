"""``GET /favicon.ico``: the browser's tab icon, a small SVG from the UI's static folder.

Browsers ask for /favicon.ico whatever the page links; without this route every page view logged a
404. The pages may also link ``/static/favicon.svg`` directly.
"""

from __future__ import annotations

from flask import Blueprint, current_app, send_from_directory

bp = Blueprint("favicon", __name__)


@bp.get("/favicon.ico")
def favicon():
    response = send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400)
    return response
