"""Per-request access to the service and to the reader's visitor cookie."""

from __future__ import annotations

import functools
import re
import time

from flask import Request, Response, current_app, request
from werkzeug.http import dump_cookie, parse_cookie

from ..config import Settings
from ..service import Service
from ..tokens import Visitor, VisitorCookies

__all__ = [
    "service",
    "settings",
    "reader",
    "visitor_cookie",
    "Reader",
    "CookieHeader",
    "finish",
    "ReaderResponse",
    "COOKIE",
]

COOKIE = "abtest_visitor"

# Crawlers and link previewers: served normally, never assigned or counted.
BOT_USER_AGENT = re.compile(
    # "bot" as a word ending (Googlebot/, Slackbot-, TelegramBot) but not the
    # phone maker Cubot; app names only as their crawlers, not their in-app browsers.
    r"(?<!cu)bot\b|bot/|crawl|spider|slurp|facebookexternalhit|facebookcatalog|embedly|"
    r"preview|whatsapp/|skypeuripreview|tumblr/|vkshare|"
    r"pinterest/|quora link|outbrain|mediapartners|lighthouse|"
    r"pagespeed|python-requests|python-urllib|curl/|wget/|"
    r"httpclient|okhttp|go-http-client|feedfetcher|feedburner|ia_archiver|archive\.org",
    re.IGNORECASE,
)


# The visitor cookie's value, straight from the Cookie header: no parse of
# every other cookie a newspaper's pages carry.  The service sets it unquoted
# (signed values are cookie-safe text).  The first one wins, as with
# werkzeug's parse; a header with quotes, or where the name shows up without
# matching, goes to werkzeug's parse itself.
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


def _extension() -> dict:
    return current_app.extensions["abtest"]


def service() -> Service:
    return _extension()["service"]


def settings() -> Settings:
    return _extension()["settings"]


@functools.lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    """Whether a User-Agent is a crawler or previewer (cached: browsers' strings repeat)."""
    return bool(user_agent) and BOT_USER_AGENT.search(user_agent) is not None


def is_prefetch(environ: dict) -> bool:
    """A prefetch or prerender: ``Sec-Purpose``/``Purpose``, ``X-Moz``, ``X-Purpose: preview``."""
    if not (
        "HTTP_SEC_PURPOSE" in environ
        or "HTTP_PURPOSE" in environ
        or "HTTP_X_MOZ" in environ
        or "HTTP_X_PURPOSE" in environ
    ):
        return False  # most requests: none of the four headers
    purpose = (environ.get("HTTP_SEC_PURPOSE", "") + environ.get("HTTP_PURPOSE", "")).lower()
    return (
        "prefetch" in purpose
        or "prerender" in purpose
        or environ.get("HTTP_X_MOZ", "").lower() == "prefetch"
        or environ.get("HTTP_X_PURPOSE", "").lower() == "preview"
    )


class Reader:
    """This request's reader, worked out once: the app's service, whether to
    count them, and who they are (from the signed cookie).

    Built once per request by the view (:func:`reader`); the view and
    :func:`finish` read its attributes instead of going through
    Flask's context proxies again and again (each lookup costs a few µs, and
    the reader path is measured against a bare Flask view).  The cookie's
    signature is checked when a view first asks for the visitor: a click
    needs only the cookie's visitor id (see :meth:`Service.click`).
    """

    __slots__ = ("request", "extension", "service", "counts", "cookie", "_assigned", "_visitor")

    def __init__(self, extension: dict, request: Request):
        environ = request.environ
        self.request = request
        self.extension = extension
        self.service: Service = extension["service"]
        #: False for crawlers, link previewers and browser prefetches.
        self.counts = not (is_bot(environ.get("HTTP_USER_AGENT", "")) or is_prefetch(environ))
        #: The visitor cookie's value as sent, or None.
        self.cookie = visitor_cookie(environ)
        #: The visitor's assignments as their cookie had them (set with _visitor).
        self._assigned: dict[str, str] = {}
        self._visitor: Visitor | None = None

    @property
    def visitor(self) -> Visitor:
        """The visitor from the signed cookie, or a new one (missing or forged)."""
        if self._visitor is None:
            cookies: VisitorCookies = self.extension["visitor_cookies"]
            known = cookies.loads(self.cookie)
            if known is None:
                self._visitor = Visitor.new()
            else:
                self._assigned = dict(known.assignments)
                self._visitor = known
        return self._visitor

    @property
    def changed(self) -> bool:
        """Whether this request gave the visitor a headline their cookie lacks."""
        return self._visitor is not None and self._visitor.assignments != self._assigned


def reader() -> Reader:
    """This request's :class:`Reader` (each reader view asks once)."""
    return Reader(_extension(), request._get_current_object())


class CookieHeader:
    """``Set-Cookie`` values for the visitor cookie.

    werkzeug's ``dump_cookie`` formats the attributes (about 15 µs with the
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
    works out a missing ``Content-Length``: about 30 Python calls per
    response, a twentieth of a click.  None of it changes a reader
    response: the body is set when it is made (so is its length), and a
    ``Location`` is a path built here from a slug and the script root,
    which ``iri_to_uri`` returns unchanged when it is plain URL-safe text (it
    is checked).  Anything else takes werkzeug's path.
    tests/test_reader.py holds the headers to what werkzeug sends.
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


#: At most this many assignments ride in the visitor cookie (about 30 bytes
#: each, far below the browsers' 4 kB per cookie); the oldest go first.
MAX_ASSIGNMENTS = 64


#: Reader responses carry per-visitor click tokens and headlines: no shared
#: cache may keep them.  Reader responses set no other Vary.
PRIVATE = (("Cache-Control", "private, no-store"), ("Vary", "Cookie"))


def finish(state: Reader, response: Response) -> Response:
    """Mark a reader response private; set the cookie when this request assigned a headline.

    The views call this on what they return (rather than an ``after_request``
    hook, which Flask would dispatch on every request).  The cookie drops
    assignments of experiments that are decided or gone, so it stays small
    however many stories run.
    """
    add = response.headers.add
    for name, value in PRIVATE:
        add(name, value)
    if not state.changed:
        return response
    current = state.visitor
    if len(current.assignments) > 1:  # a single assignment was just made: it is live
        live = {e.slug for e in state.service.experiments() if e.status != "decided"}
        kept = [(slug, variant) for slug, variant in current.assignments.items() if slug in live]
        current.assignments.clear()
        current.assignments.update(kept[-MAX_ASSIGNMENTS:])
    extension = state.extension
    add("Set-Cookie", extension["cookie_header"](extension["visitor_cookies"].dumps(current)))
    return response
