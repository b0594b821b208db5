"""HTTP: the reader pages, the JSON API and the error pages."""

from __future__ import annotations

from flask import Flask

__all__ = ["register"]


def register(app: Flask) -> None:
    from . import api, errors, health, ops, reader
    from .shortcuts import CookieHeader, EditorSessions

    app.extensions["abtest"]["cookie_header"] = CookieHeader(app.extensions["abtest"]["settings"])
    # The live dashboard's polling reads the session but is not an editor's activity.
    app.session_interface = EditorSessions(
        app.extensions["abtest"]["sessions"], quiet_prefixes=("/dashboard/api/",)
    )
    app.register_blueprint(reader.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(health.blueprint)
    errors.register(app)
    ops.register(app)
    from abtest.dashboard import init_app

    init_app(app)
    from .. import watch, webhooks

    watch.init_app(app)
    webhooks.init_app(app)
