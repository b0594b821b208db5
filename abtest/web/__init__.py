"""HTTP: the reader pages, the JSON API and the error pages."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

__all__ = ["App", "register"]


class App(Flask):
    """Flask with a per-request cost taken off every reader's request."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable, Callable] = {}

    def ensure_sync(self, func: Callable) -> Callable:
        # Flask inspects every hook and view for ``async def`` on every
        # request (a few µs each); the answer never changes for a function.
        found = self._sync.get(func)
        if found is None:
            if len(self._sync) > 4096:
                self._sync.clear()
            found = self._sync[func] = super().ensure_sync(func)
        return found


class EditorSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, skipped for requests that carry none.

    Only editors have a session; Flask would otherwise build its signing
    serializer for every reader request just to find no cookie (about 8% of
    a returning reader's request, docs/performance.md), and read its cookie
    settings again to save the empty session.
    """

    def open_session(self, app, request):
        name = app.config["SESSION_COOKIE_NAME"]
        # The raw header first: a reader's request then parses no cookies here.
        if name not in request.environ.get("HTTP_COOKIE", "") or name not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        # What Flask's save_session does for a session nobody touched and
        # nobody filled (every reader's): nothing, after reading six settings.
        if not (session or session.modified or session.accessed):
            return
        super().save_session(app, session, response)


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
