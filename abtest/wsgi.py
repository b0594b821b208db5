"""The WSGI application for running under a server by hand.

    granian --interface wsgi abtest.wsgi:app
    gunicorn abtest.wsgi:app

Settings come from the environment as for ``abtest serve``; ``REDIS_URL``
must be set (no embedded Redis here).  ``abtest serve`` remains the supported
way to run the service (under granian, or gunicorn with ``--server
gunicorn``): :mod:`abtest.server` adds what a server started by hand lacks,
the app built once before the workers start, each worker's data-loss watch,
workers that die with their master, metrics of exited workers dropped, and
the embedded Redis.
"""

from __future__ import annotations

from . import create_app

app = create_app()
