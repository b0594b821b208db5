"""Per-request access to the service and to the reader's visitor cookie."""

from __future__ import annotations

import functools
import re
import time

from flask import Response, current_app, g, request
from werkzeug.http import http_date

from ..config import Settings
from ..service import Service
from ..tokens import Visitor, VisitorCookies

__all__ = ["service", "settings", "visitor", "counts_this_request", "save_visitor", "COOKIE"]

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


def is_prefetch() -> bool:
    """``Sec-Purpose``/``Purpose`` prefetch or prerender, ``X-Moz: prefetch``, ``X-Purpose: preview``."""
    environ = request.environ  # read directly: every reader request asks
    purpose = (environ.get("HTTP_SEC_PURPOSE", "") + environ.get("HTTP_PURPOSE", "")).lower()
    return (
        "prefetch" in purpose
        or "prerender" in purpose
        or environ.get("HTTP_X_MOZ", "").lower() == "prefetch"
        or environ.get("HTTP_X_PURPOSE", "").lower() == "preview"
    )


def counts_this_request() -> bool:
    """False for crawlers, link previewers and browser prefetches."""
    return not (is_bot(request.environ.get("HTTP_USER_AGENT", "")) or is_prefetch())


def known_visitor() -> Visitor | None:
    """The visitor from the signed cookie, or None (missing or forged); never makes one."""
    if "abtest_cookie" not in g:
        cookies: VisitorCookies = _extension()["visitor_cookies"]
        g.abtest_cookie = cookies.loads(request.cookies.get(COOKIE))
        g.abtest_assigned = dict(g.abtest_cookie.assignments) if g.abtest_cookie else {}
    return g.abtest_cookie


def visitor() -> Visitor:
    """This request's visitor: from the signed cookie, or a new one."""
    if "abtest_visitor" not in g:
        g.abtest_visitor = known_visitor() or Visitor.new()
    return g.abtest_visitor


@functools.lru_cache(maxsize=4)
def _expires(now: int, max_age: int) -> str:
    """The cookie's Expires date, formatted once a second (formatting costs ~15 µs)."""
    return http_date(now + max_age)


#: At most this many assignments ride in the visitor cookie (about 30 bytes
#: each, far below the browsers' 4 kB per cookie); the oldest go first.
MAX_ASSIGNMENTS = 64


def save_visitor(response: Response) -> Response:
    """Mark the response private; set the cookie when this request assigned a headline.

    Reader responses carry per-visitor click tokens and headlines, so no
    shared cache may keep them.  The cookie drops assignments of experiments
    that are decided or gone, so it stays small however many stories run.
    """
    headers = response.headers
    headers["Cache-Control"] = "private, no-store"
    headers["Vary"] = "Cookie"  # reader responses set no other Vary
    current = g.get("abtest_visitor")
    if current is None or current.assignments == g.abtest_assigned:
        return response
    if len(current.assignments) > 1:  # a single assignment was just made: it is live
        live = {e.slug for e in service().experiments() if e.status != "decided"}
        kept = [(slug, variant) for slug, variant in current.assignments.items() if slug in live]
        current.assignments.clear()
        current.assignments.update(kept[-MAX_ASSIGNMENTS:])
    cookies: VisitorCookies = _extension()["visitor_cookies"]
    config = settings()
    max_age = config.visitor_days * 86_400
    response.set_cookie(
        COOKIE,
        cookies.dumps(current),
        max_age=max_age,
        expires=_expires(int(time.time()), max_age),
        httponly=True,
        secure=config.cookie_secure,
        samesite="Lax",
    )
    return response
