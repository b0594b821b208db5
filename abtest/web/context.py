"""Per-request access to the service and to the reader's visitor cookie."""

from __future__ import annotations

import functools
import re

from flask import Request, Response, current_app, request

from ..config import Settings
from ..service import Assignment, Service
from ..tokens import Visitor
from .shortcuts import COOKIE, ReaderResponse, visitor_cookie

__all__ = ["service", "settings", "reader", "Reader", "finish", "ReaderResponse", "COOKIE"]

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
    needs only the cookie's value (see :meth:`Service.read_click`).
    """

    __slots__ = (
        "request",
        "extension",
        "service",
        "counts",
        "excluded",
        "client",
        "cookie",
        "_arrived",
        "_visitor",
    )

    def __init__(self, extension: dict, request: Request):
        environ = request.environ
        self.request = request
        self.extension = extension
        self.service: Service = extension["service"]
        #: ``"bot"`` for crawlers and link previewers, ``"prefetch"`` for
        #: browser prefetches: served, never counted, tallied as excluded.
        #: None for a HEAD request: a page asked about, never shown, so not
        #: an impression, a click or an exclusion (and given no cookie).
        self.excluded = None
        if environ["REQUEST_METHOD"] == "HEAD":
            self.counts = False
        else:
            if is_bot(environ.get("HTTP_USER_AGENT", "")):
                self.excluded = "bot"
            elif is_prefetch(environ):
                self.excluded = "prefetch"
            #: False for crawlers, previewers, prefetches and HEAD requests.
            self.counts = self.excluded is None
        #: The reader's address: the socket's, or the one the trusted proxies
        #: forwarded (werkzeug's ProxyFix rewrites it); it spends the budgets.
        self.client: str | None = environ.get("REMOTE_ADDR")
        #: The visitor cookie's value as sent, or None.
        self.cookie = visitor_cookie(environ)
        #: The visitor as they arrived, and as they leave (both None until asked for).
        self._arrived: Visitor | None = None
        self._visitor: Visitor | None = None

    @property
    def visitor(self) -> Visitor:
        """The visitor: from the signed cookie, a new one, or as this request assigned them."""
        if self._visitor is None:
            self._visitor = self._arrived = self.service.read_visitor(self.cookie)
        return self._visitor

    def assign(self, slugs: list[str]) -> list[Assignment]:
        """This reader's headlines for ``slugs`` (see :meth:`Service.assign`)."""
        served = self.service.assign(
            self.visitor, slugs, count=self.counts, client=self.client, excluded=self.excluded
        )
        self._visitor = served.visitor
        return served.assignments

    def remember(self, visitor: Visitor) -> None:
        """The visitor as this request leaves them (their cookie is set if it changed)."""
        self.visitor  # noqa: B018 (read the arriving visitor first)
        self._visitor = visitor

    @property
    def changed(self) -> bool:
        """Whether this request gave the visitor a headline their cookie lacks."""
        return self._visitor is not self._arrived


def reader() -> Reader:
    """This request's :class:`Reader` (each reader view asks once)."""
    return Reader(_extension(), request._get_current_object())


#: Reader responses carry per-visitor click tokens and headlines: no shared
#: cache may keep them.  Reader responses set no other Vary.
PRIVATE = (("Cache-Control", "private, no-store"), ("Vary", "Cookie"))


def finish(state: Reader, response: Response) -> Response:
    """Mark a reader response private; set the cookie when this request assigned a headline.

    The views call this on what they return (rather than an ``after_request``
    hook, which Flask would dispatch on every request).
    """
    add = response.headers.add
    for name, value in PRIVATE:
        add(name, value)
    if state.changed:
        value = state.service.visitor_cookie(state.visitor)
        add("Set-Cookie", state.extension["cookie_header"](value))
    return response
