"""Security headers on every response, added in one place.

:class:`SecurityHeaders` wraps the WSGI app and appends one precomputed list
of headers to whatever the app answers: reader pages, redirects, the JSON
API, health checks, static files, error pages and the dashboard alike.  A
WSGI wrapper costs one call per request, less than an ``after_request`` hook
(which Flask dispatches through its hook machinery, and which a response
that skips werkzeug's header pass, as reader pages do, would also have to
allow for).  Nothing else sets these headers, so each is sent exactly once.
"""

from __future__ import annotations

from ..config import Settings

__all__ = ["CONTENT_SECURITY_POLICY", "REFERRER_POLICY", "SecurityHeaders", "security_headers"]

#: No inline script or style anywhere (templates and charts use classes and
#: static files only; tests/test_headers.py checks the templates), nothing
#: from another origin, no framing, no <base>, forms post only here.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

#: The full URL within the site (the click path and the dashboard's CSRF
#: check behind HTTPS both see where a request came from), only the origin
#: to other sites (never an article's path or a dashboard page), and
#: nothing from HTTPS to HTTP.
REFERRER_POLICY = "strict-origin-when-cross-origin"

#: A year, this host only: a newsroom's other subdomains are not ours to commit to HTTPS.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def security_headers(settings: Settings) -> list[tuple[str, str]]:
    """The headers every response carries under ``settings``.

    ``Strict-Transport-Security`` only in production with Secure cookies:
    production is served over HTTPS behind a TLS-terminating proxy, and a
    stack tried over plain HTTP (``ABTEST_COOKIE_SECURE=false``) says so.
    """
    headers = [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),  # frame-ancestors for browsers that predate it
        ("Referrer-Policy", REFERRER_POLICY),
    ]
    if settings.production and settings.cookie_secure:
        headers.append(("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY))
    return headers


class SecurityHeaders:
    """WSGI middleware: ``app``'s responses with ``headers`` appended."""

    def __init__(self, app, headers: list[tuple[str, str]]):
        self.app = app
        self.headers = list(headers)

    def __call__(self, environ, start_response):
        extra = self.headers

        def start(status, headers, exc_info=None):
            return start_response(status, headers + extra, exc_info)

        return self.app(environ, start)
