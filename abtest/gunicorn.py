"""Running the app under gunicorn from ``abtest serve``.

Workers are gunicorn's ``gthread`` workers: each process serves
:data:`DEFAULT_THREADS` requests at once.  A new reader's request waits on
Redis (one counting round trip, at most ``ABTEST_REDIS_TIMEOUT``); a
returning reader's, a health check's and a static file's never do.  With one
thread per process (gunicorn's ``sync`` workers) a single stalled counting
call held up every request queued behind it, so a slow Redis stalled the whole
site; with several, the requests that need no Redis keep being served while a
few wait out the timeout (and the circuit breaker, :mod:`abtest.breaker`, stops
the rest from trying).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gunicorn.app.base import BaseApplication

from .config import Settings
from .store import StoreError

__all__ = ["run", "serve", "options", "DEFAULT_THREADS"]

#: Threads per worker.  Enough that the requests in flight when Redis stalls
#: (each new reader's holds a thread for up to the Redis timeout, until the
#: circuit breaker opens) leave threads free for returning readers and health
#: checks; few enough that a worker's threads are cheap (each is a stack and a
#: slot in the pool; the GIL serializes the Python work anyway, so more
#: threads add no throughput, only waiting room).
DEFAULT_THREADS = 8


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
    """gunicorn's settings for ``abtest serve`` (bench/reader.py serves its floor with them too)."""
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
        "graceful_timeout": 10,
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


def _log_like_gunicorn() -> None:
    """abtest's own log lines on stderr beside gunicorn's, with time, pid and level.

    Nothing else configures logging under ``abtest serve``; without a handler
    Python would print bare messages.  abtest logs from INFO, other libraries
    from WARNING.  A logging configuration made before is left alone.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            "%Y-%m-%d %H:%M:%S %z",
        )
    )
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("abtest").setLevel(logging.INFO)


def run(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    threads: int = DEFAULT_THREADS,
) -> None:
    """Serve until SIGINT/SIGTERM; returns (or raises SystemExit) when gunicorn stops."""
    _log_like_gunicorn()
    loaded = []

    def load():
        from . import create_app, stats  # noqa: F401
        from .watch import watch

        # With preload_app this runs once, in the master: the workers fork with
        # scipy already imported (pages shared copy-on-write), so an editor's
        # first stats request doesn't wait a second or two for the import.
        app = create_app(settings)
        # The experiments, read once before the fork: every worker starts with
        # them, so one that has served no one yet can still serve readers if
        # Redis is away when they come.
        try:
            app.extensions["abtest"]["service"].snapshot.refresh()
        except StoreError as error:
            logging.getLogger(__name__).warning("experiments not read yet: %s", error)
        # The first look at the instance marker, before the fork: every worker
        # knows it from the start.
        watch(app).look()
        loaded.append(app)
        return app

    def post_fork(server, worker) -> None:
        from .watch import watch

        # Each worker watches for Redis coming back empty (abtest.watch).
        for app in loaded:
            watch(app).start()

    serve(
        load,
        options(host, port, workers, threads, access_log=settings.access_log)
        | {"post_fork": post_fork},
    )
