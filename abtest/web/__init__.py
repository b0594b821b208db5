"""HTTP: the reader pages, the JSON API and the error pages."""

from __future__ import annotations

from flask import Flask

__all__ = ["register"]


def register(app: Flask) -> None:
    from . import api, errors, reader

    app.register_blueprint(reader.blueprint)
    app.register_blueprint(api.blueprint)
    errors.register(app)
    from dashboard import init_app

    init_app(app)
