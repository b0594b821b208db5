"""Running the app under gunicorn (``abtest serve --server gunicorn``).

Workers are gunicorn's ``gthread`` workers: each process serves ``threads``
requests at once (:data:`abtest.server.DEFAULT_THREADS`).  A new reader's
request waits on Redis (one counting round trip, at most
``ABTEST_REDIS_TIMEOUT``); a returning reader's, a health check's and a static
file's never do.  With one thread per process (gunicorn's ``sync`` workers) a
single stalled counting call held up every request queued behind it, so a slow
Redis stalled the whole site; with several, the requests that need no Redis
keep being served while a few wait out the timeout (and the circuit breaker,
:mod:`abtest.breaker`, stops the rest from trying).  :mod:`abtest.server`
builds the app, runs each worker's own work and chooses the server.
"""

from __future__ import annotations

from collections.abc import Callable

from gunicorn.app.base import BaseApplication

from .server import DEFAULT_THREADS, GRACEFUL_TIMEOUT

__all__ = ["serve", "options", "DEFAULT_THREADS"]


#: Settings only newer gunicorns have; skipped on older ones.
_NEWER = frozenset({"control_socket_disable"})


class _Application(BaseApplication):
    def __init__(self, load: Callable[[], Callable], options: dict):
        self._load = load
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in _NEWER and key not in self.cfg.settings:
                continue  # an older gunicorn without this setting
            self.cfg.set(key, value)

    def load(self):
        return self._load()


def options(
    host: str,
    port: int,
    workers: int,
    threads: int = DEFAULT_THREADS,
    access_log: bool = False,
) -> dict:
    """gunicorn's settings for ``abtest serve --server gunicorn`` (and bench/floor.py's)."""
    return {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        # Build the app (and load the seed story) once, then fork the workers.
        "preload_app": True,
        # gunicorn's access log on stdout (combined log format) when asked for.
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "abtest",
        # A stopping worker finishes the requests it holds (each waits on
        # Redis for at most the Redis timeout) for up to this long.
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "keepalive": 5,
        # gunicorn 25.1+ opens a management socket, one path per user
        # (~/.gunicorn/gunicorn.ctl), which a second server on the machine
        # would take over; abtest is managed by signals.
        "control_socket_disable": True,
        "child_exit": _child_exit,
    }


def _child_exit(server, worker) -> None:
    """gunicorn reaped a worker: its circuit state leaves /metrics (its counts stay)."""
    from . import metrics

    metrics.worker_exited(worker.pid)


def serve(load: Callable[[], Callable], options: dict) -> None:
    """Serve the WSGI app ``load()`` returns until SIGINT/SIGTERM."""
    _Application(load, options).run()
