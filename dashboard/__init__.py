"""The editor dashboard: a Flask blueprint mounted at ``/dashboard``.

``init_app(app)`` registers it and Flask-WTF's ``CSRFProtect``, checking every
POST, PUT, PATCH and DELETE to the dashboard.  The dashboard has the app's only
state-changing routes (tests/test_dashboard.py holds the app to that), so
readers' requests never pay for the check.

App config it reads (all optional):

``DASHBOARD_REFRESH_SECONDS``
    How often an open page fetches fresh numbers (default: the setting
    ``ABTEST_DASHBOARD_REFRESH``, 5 s); a page's ``?every=`` overrides it
    (0.5 to 300 s).
``DASHBOARD_ALPHA``
    Significance level for the verdicts (default 0.05).
``WTF_CSRF_TIME_LIMIT``
    A form's token lifetime; 12 hours here (Flask-WTF's default is one hour),
    so an editor can leave the page open all morning and still click Pause.
"""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from .auth import Editors
from .views import blueprint

__all__ = ["init_app", "blueprint"]


def init_app(app: Flask) -> None:
    """Register the dashboard and CSRF protection on ``app`` (built by ``create_app``)."""
    settings = app.extensions["abtest"]["settings"]
    app.config.setdefault("DASHBOARD_REFRESH_SECONDS", settings.dashboard_refresh)
    app.config.setdefault("DASHBOARD_ALPHA", 0.05)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 12 * 3600)
    if "csrf" not in app.extensions:
        CSRFProtect(app)
        # Flask-WTF's own app-wide hook would inspect every request; the
        # dashboard's blueprint hook (dashboard/views.py) checks its routes.
        app.config["WTF_CSRF_CHECK_DEFAULT"] = False

    app.extensions["dashboard"] = {
        "editors": Editors(settings),
        "throttle": app.extensions["abtest"]["sign_in"],
    }
    app.register_blueprint(blueprint, url_prefix="/dashboard")
