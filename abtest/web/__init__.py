"""HTTP: the reader pages, the JSON API and the error pages."""

from __future__ import annotations

from flask import Flask

__all__ = ["register"]


def register(app: Flask) -> None:
    from . import api, errors, reader

    app.register_blueprint(reader.blueprint)
    app.register_blueprint(api.blueprint)
    errors.register(app)
    try:
        from dashboard import blueprint as dashboard_blueprint
    except ImportError:  # the dashboard is optional for the reader path
        return
    app.register_blueprint(dashboard_blueprint, url_prefix="/dashboard")
