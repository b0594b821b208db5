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
- :class:`EditorSessions` skips Flask's session machinery for requests
  without a session cookie (every reader's).
"""

from __future__ import annotations

import re
import time

from flask import Response
from flask.sessions import SecureCookieSessionInterface
from werkzeug.http import dump_cookie, parse_cookie

from ..config import Settings

__all__ = [
    "COOKIE",
    "visitor_cookie",
    "CookieHeader",
    "ReaderResponse",
    "click_path",
    "article_path",
    "EditorSessions",
]

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


class EditorSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, skipped for requests that carry none.

    Only editors have a session; Flask would otherwise build its signing
    serializer for every reader request just to find no cookie, and read its
    cookie settings again to save the empty session.
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
