"""The WSGI application for servers other than ``abtest serve``.

    granian --interface wsgi abtest.wsgi:app
    gunicorn abtest.wsgi:app

Settings come from the environment as for ``abtest serve``; ``REDIS_URL``
must be set (no embedded Redis here).  ``abtest serve`` remains the supported
way to run the service: it adds gunicorn's hooks (the data-loss watch after
fork, metrics of exited workers) and the embedded Redis.
"""

from __future__ import annotations

from . import create_app

app = create_app()
