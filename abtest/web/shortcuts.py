"""Shortcuts past Flask's and werkzeug's per-request work on the reader path.

Bypasses, kept because every reader's request pays for what they skip; each
is held to the stock library's output by a test in tests/test_shortcuts.py:

- :func:`visitor_cookie` reads the visitor cookie straight from the Cookie
  header instead of werkzeug's ``parse_cookie`` of every cookie a newspaper's
  pages carry (it falls back to that parse for anything unusual);
- :class:`CookieHeader` calls werkzeug's ``dump_cookie`` for the visitor
  cookie's attributes once a second, not once a request;
- :class:`ReaderResponse` sends a reader page's or redirect's headers as they
  are, skipping werkzeug's ``get_wsgi_headers`` pass when it would change
  nothing;
- :func:`click_path` and :func:`article_path` build the reader routes' paths
  by concatenation instead of ``url_for``;
- :class:`EditorSessions` (editors' sessions, kept in Redis) skips Flask's
  session machinery for requests without a session cookie (every reader's).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time

from flask import Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, Signer
from werkzeug.http import dump_cookie, parse_cookie

from ..config import Settings
from ..sessions import SessionStore
from ..store import StoreError

__all__ = [
    "COOKIE",
    "visitor_cookie",
    "CookieHeader",
    "ReaderResponse",
    "click_path",
    "article_path",
    "EditorSessions",
    "EditorSession",
    "UnreachableSession",
]

log = logging.getLogger(__name__)

#: The visitor cookie's name.
COOKIE = "abtest_visitor"

# The visitor cookie's value, straight from the Cookie header.  The service
# sets it unquoted (signed values are cookie-safe text).  The first one wins,
# as with werkzeug's parse; a header with quotes, or where the name shows up
# without matching, goes to werkzeug's parse itself.
_VISITOR_COOKIE = re.compile(r"(?:^|;)[ \t]*" + COOKIE + r"=([^;]*)")


def visitor_cookie(environ: dict) -> str | None:
    """The raw value of the visitor cookie in this request, or None."""
    header = environ.get("HTTP_COOKIE")
    if not header or COOKIE not in header:
        return None
    found = _VISITOR_COOKIE.search(header)
    if found is None or '"' in header:
        return parse_cookie(header).get(COOKIE) or None
    return found.group(1).strip(" \t") or None


class CookieHeader:
    """``Set-Cookie`` values for the visitor cookie.

    werkzeug's ``dump_cookie`` formats the attributes (a few µs with the
    date); they change once a second, so it is called once a second and the
    signed value is put in front of its attributes.  Signed values are
    cookie-safe text that ``dump_cookie`` never quotes.
    """

    def __init__(self, settings: Settings):
        self.max_age = settings.visitor_days * 86_400
        self.secure = settings.cookie_secure
        self._attributes: tuple[int, str] = (-1, "")

    def __call__(self, value: str, now: float | None = None) -> str:
        second = int(time.time() if now is None else now)
        cached_second, attributes = self._attributes
        if cached_second != second:
            formatted = dump_cookie(
                COOKIE,
                "v",
                max_age=self.max_age,
                expires=second + self.max_age,
                path="/",
                httponly=True,
                secure=self.secure,
                samesite="Lax",
            )
            attributes = formatted[len(COOKIE) + 2 :]  # after "abtest_visitor=v"
            self._attributes = (second, attributes)
        return f"{COOKIE}={value}{attributes}"


#: A path that werkzeug's ``iri_to_uri`` returns unchanged (and needs no quoting).
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9/._~-]*")


class ReaderResponse(Response):
    """A reader page (200) or redirect to a story (303), sent with its headers as they are.

    werkzeug's ``get_wsgi_headers`` copies every header (checking each value
    again), runs the ``Location`` through a URL parse and three quotes, and
    works out a missing ``Content-Length``.  None of it changes a reader
    response: the body is set when it is made (so is its length), and a
    ``Location`` is a path built from a slug and the script root, which
    ``iri_to_uri`` returns unchanged when it is plain URL-safe text (it is
    checked).  Anything else takes werkzeug's path.
    """

    def get_wsgi_headers(self, environ: dict):
        headers = self.headers
        status = self.status_code
        # A 200 has no Location to look up (a lookup that misses raises inside Headers).
        as_they_are = status == 200 or (
            status == 303 and _PLAIN_PATH.fullmatch(headers.get("Location", ""))
        )
        if as_they_are and "Content-Length" in headers:
            return headers
        return super().get_wsgi_headers(environ)


# The reader routes' paths (abtest.web.reader), by plain concatenation:
# url_for costs more than the rest of a returning visitor's request.
def click_path(root: str, token: str) -> str:
    """``url_for("reader.click", token=token)`` under the script root ``root``."""
    return f"{root}/c/{token}"


def article_path(root: str, slug: str) -> str:
    """``url_for("reader.article", slug=slug)`` under the script root ``root``."""
    return f"{root}/articles/{slug}"


class EditorSession(SecureCookieSession):
    """A signed-in editor's session: its data lives in Redis under ``session_id``."""

    def __init__(self, initial: dict, session_id: str, editor: str, active: bool):
        super().__init__(initial)
        self.session_id = session_id
        #: Who was signed in when the request began.
        self.signed_in = editor
        #: Whether this request counts as the editor's activity (restarts the idle timeout).
        self.active = active


class UnreachableSession(SecureCookieSession):
    """The session of a request whose editor's session could not be read (Redis unreachable).

    Asking who is signed in raises :class:`~abtest.store.StoreError`, which the
    app answers with a 503 page; everything else behaves as an empty session,
    so that error page itself renders.  Nothing is saved.
    """

    def __init__(self, error: StoreError):
        super().__init__()
        self.error = error

    def _check(self, key) -> None:
        if key == "editor":
            raise StoreError(f"editor sessions unavailable: {self.error}")

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)

    def __contains__(self, key) -> bool:
        self._check(key)
        return super().__contains__(key)

    def pop(self, key, *default):
        self._check(key)
        return super().pop(key, *default)


class EditorSessions(SecureCookieSessionInterface):
    """Server-side editor sessions in Redis, and nothing at all for readers.

    The session cookie is either a signed random session id (a signed-in
    editor; the data is in :class:`abtest.sessions.SessionStore`) or, before
    sign-in and after sign-out, Flask's own signed cookie, which holds only
    the sign-in form's CSRF secret and a flashed message.  Whoever holds a
    copy of an editor's cookie loses it the moment the session is deleted
    (signing out, signing out everywhere, the editor removed) or has been
    idle for ``ABTEST_SESSION_IDLE``.  Signing in always starts a new session
    id, never one the browser brought.

    Requests under ``quiet_prefixes`` (the dashboard's own background polling)
    read the session without counting as activity: an open page left alone
    does not keep its session alive.

    Reader requests carry no session cookie: for them Flask's session
    machinery is skipped (it would otherwise build its signing serializer for
    every reader request just to find no cookie, and read its cookie settings
    again to save the empty session).
    """

    def __init__(self, store: SessionStore, quiet_prefixes: tuple[str, ...] = ()):
        self.store = store
        self.quiet_prefixes = quiet_prefixes

    @staticmethod
    def _signer(app) -> Signer:
        secret_keys = [*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key]
        return Signer(secret_keys, salt="abtest.editor-session", digest_method=hashlib.sha256)

    def open_session(self, app, request):
        name = app.config["SESSION_COOKIE_NAME"]
        # The raw header first: a reader's request then parses no cookies here.
        if name not in request.environ.get("HTTP_COOKIE", "") or name not in request.cookies:
            return self.session_class()
        try:
            session_id = self._signer(app).unsign(request.cookies[name]).decode()
        except BadSignature:
            # Not an editor's session id: Flask's signed cookie, or nothing valid.
            session = super().open_session(app, request)
            if not dict.__contains__(session, "editor"):
                return session
            # Signed-in editors are only ever in Redis (a cookie from an older
            # version that held the editor's name is refused): drop it.
            session = self.session_class()
            session.modified = True
            return session
        active = not request.path.startswith(self.quiet_prefixes)
        try:
            data = self.store.load(session_id, touch=active)
        except StoreError as error:
            return UnreachableSession(error)
        if data is None:
            # Ended (signed out, revoked, idle): an empty session that drops the cookie.
            ended = self.session_class()
            ended.modified = True
            return ended
        values = self.serializer.loads(data)
        return EditorSession(values, session_id, values.get("editor"), active)

    def save_session(self, app, session, response):
        # What Flask's save_session does for a session nobody touched and
        # nobody filled (every reader's): nothing, after reading six settings.
        if not (session or session.modified or session.accessed):
            return
        if isinstance(session, UnreachableSession):
            return
        editor = dict.get(session, "editor")  # not .get: that would mark it accessed
        try:
            if isinstance(session, EditorSession):
                response.vary.add("Cookie")
                if editor == session.signed_in:
                    if session.modified and not self.store.save(
                        session.session_id,
                        self.serializer.dumps(dict(session)),
                        touch=session.active,
                    ):
                        self._drop_cookie(app, response)  # ended while this request ran
                    return
                # Signed out, or someone else signed in: the sign-in this cookie names ends here.
                self.store.delete(session.session_id, session.signed_in)
            if editor:
                # Signing in: a new session id, whatever cookie the browser brought.
                session_id = self.store.create(editor, self.serializer.dumps(dict(session)))
                self._set_cookie(app, response, self._signer(app).sign(session_id).decode())
                return
        except StoreError as error:
            log.error("editor session not saved (Redis unreachable): %s", error)
            return
        # No editor: Flask's own signed cookie (a CSRF secret, a flashed message), or none.
        super().save_session(app, session, response)

    def _set_cookie(self, app, response, value: str) -> None:
        # A browser-session cookie: the server's idle timeout decides when it ends.
        response.set_cookie(
            self.get_cookie_name(app),
            value,
            httponly=self.get_cookie_httponly(app),
            domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")

    def _drop_cookie(self, app, response) -> None:
        response.delete_cookie(
            self.get_cookie_name(app),
            domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
            httponly=self.get_cookie_httponly(app),
        )
