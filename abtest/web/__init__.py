"""HTTP: the reader pages, the JSON API and the error pages."""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

__all__ = ["register"]


class EditorSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, skipped for requests that carry none.

    Only editors have a session; Flask would otherwise build its signing
    serializer for every reader request just to find no cookie (about 8% of
    a returning reader's request, docs/performance.md).
    """

    def open_session(self, app, request):
        if app.config["SESSION_COOKIE_NAME"] not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def register(app: Flask) -> None:
    from . import api, context, errors, reader

    app.extensions["abtest"]["cookie_header"] = context.CookieHeader(
        app.extensions["abtest"]["settings"]
    )
    app.session_interface = EditorSessions()
    app.register_blueprint(reader.blueprint)
    app.register_blueprint(api.blueprint)
    errors.register(app)
    from dashboard import init_app

    init_app(app)
