"""Operations: ``/metrics`` for Prometheus, and the request counts it reports.

``/metrics`` answers a Bearer token: ``ABTEST_METRICS_TOKEN``, else
``ABTEST_API_TOKEN``.  With neither set it is off: 404, as for a path that
does not exist.  A missing or wrong token gets 401.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Flask, Response, jsonify, request

from .. import metrics
from . import context

__all__ = ["blueprint", "RequestMetrics", "register", "bearer_matches"]

blueprint = Blueprint("ops", __name__)

#: What a refused scraper must send, spelled out in words as the API's 401 is
#: (abtest.web.api.SEND_TOKEN): a placeholder in angle brackets vanishes
#: wherever the message is shown as HTML.
SEND_METRICS_TOKEN = (
    "send the header Authorization: Bearer followed by a space and the metrics token "
    "(ABTEST_METRICS_TOKEN; while that is unset, the API token: ABTEST_API_TOKEN, in "
    "development the api_token file in the data directory)"
)


def bearer_matches(token: str | None) -> bool:
    """Whether this request carries ``Authorization: Bearer <token>`` (never for no token)."""
    if not token:
        return False
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        supplied.strip().encode(), token.encode()
    )


@blueprint.get("/metrics", endpoint="metrics")
def metrics_view():
    settings = context.settings()
    token = settings.metrics_token or settings.api_token
    if not token:
        response = jsonify(error="metrics are off: set ABTEST_METRICS_TOKEN")
        response.status_code = 404
        return response
    if not bearer_matches(token):
        response = jsonify(error=SEND_METRICS_TOKEN)
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="abtest metrics"'
        return response
    body, content_type = metrics.exposition()
    response = Response(body, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


class RequestMetrics:
    """WSGI middleware counting responses by route and status.

    It reads the route after Flask has matched it, from the request Flask
    made (werkzeug keeps it in ``environ["werkzeug.request"]``), when the
    response starts: a dict lookup and a counter's add per request, with no
    Flask hook (which Flask would dispatch through its generic machinery).
    """

    __slots__ = ("app", "children")

    def __init__(self, app):
        self.app = app
        # metrics' own dict, cleared in place if the metrics are rebuilt.
        self.children = metrics.request_children

    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
            endpoint = rule.endpoint if rule is not None else None
            child = self.children.get((endpoint, status))
            if child is None:
                child = metrics.request_child(endpoint, status)
            child.inc()
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def register(app: Flask) -> None:
    """Add ``/metrics`` and count every response."""
    app.register_blueprint(blueprint)
    app.wsgi_app = RequestMetrics(app.wsgi_app)
