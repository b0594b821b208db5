"""abtest: headline A/B testing for newsrooms.

``create_app`` builds the Flask application; nothing connects to anything
until it is called.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .config import ConfigError, Settings

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app", "Settings", "ConfigError", "__version__"]
__version__ = "0.1.0"

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, redis=None) -> Flask:
    """Build the application.

    ``settings`` defaults to :meth:`Settings.from_env`; ``redis`` (a client
    with ``decode_responses=True``) defaults to one for ``settings.redis_url``.
    """
    # Imported here, not above: `abtest --help` and the other commands import
    # this package without needing flask or the service.
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from .service import Service
    from .sessions import SessionStore, SignInThrottle
    from .store import StoreError, connect

    settings = (settings or Settings.from_env()).with_dev_secrets()
    settings.validate()
    if redis is None:
        if not settings.redis_url:
            raise ConfigError(
                "REDIS_URL is not set: point it at a Redis server, "
                "or run `abtest serve`, which starts an embedded one"
            )
        redis = connect(settings.redis_url, settings.redis_timeout)

    from .web import register
    from .web.headers import SecurityHeaders, security_headers

    app = Flask(__name__, template_folder="web/templates", static_folder="web/static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        # A larger body gets 413 before any of it is read (werkzeug checks
        # Content-Length first; a chunked body is cut off at the limit).  One
        # limit for forms too (Flask's own default for them is lower).
        MAX_CONTENT_LENGTH=settings.max_body,
        MAX_FORM_MEMORY_SIZE=settings.max_body,
    )
    app.json.sort_keys = False  # keep the stats document in SPEC's order
    service = Service.from_settings(settings, redis)
    app.extensions["abtest"] = {
        "settings": settings,
        "service": service,
        "sessions": SessionStore(redis, settings.session_idle),
        "sign_in": SignInThrottle(redis),
    }
    if settings.load_seed:
        try:
            service.ensure_seed()
        except StoreError as error:
            log.warning("seed story not loaded (Redis unreachable): %s", error)

    register(app)
    if settings.proxy_hops:
        # The client's address and scheme as the trusted proxies saw them.  Not
        # the host: absolute URLs come from ABTEST_PUBLIC_URL, never a header.
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops
        )
    app.wsgi_app = SecurityHeaders(app.wsgi_app, security_headers(settings))
    return app
