"""Running the app under gunicorn from ``abtest serve``."""

from __future__ import annotations

from collections.abc import Callable

from gunicorn.app.base import BaseApplication

from .config import Settings

__all__ = ["run", "serve", "options"]


class _Application(BaseApplication):
    def __init__(self, load: Callable[[], Callable], options: dict):
        self._load = load
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._load()


def options(host: str, port: int, workers: int, threads: int = 1) -> dict:
    """gunicorn's settings for ``abtest serve`` (bench/reader.py serves its floor with them too)."""
    return {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        # Build the app (and load the seed story) once, then fork the workers.
        "preload_app": True,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "abtest",
        "graceful_timeout": 10,
        "keepalive": 5,
        "child_exit": _child_exit,
    }


def _child_exit(server, worker) -> None:
    """gunicorn reaped a worker: its circuit state leaves /metrics (its counts stay)."""
    from . import metrics

    metrics.worker_exited(worker.pid)


def serve(load: Callable[[], Callable], options: dict) -> None:
    """Serve the WSGI app ``load()`` returns until SIGINT/SIGTERM."""
    _Application(load, options).run()


def run(settings: Settings, host: str, port: int, workers: int, threads: int = 1) -> None:
    """Serve until SIGINT/SIGTERM; returns (or raises SystemExit) when gunicorn stops."""

    def load():
        from . import create_app, stats  # noqa: F401

        # With preload_app this runs once, in the master: the workers fork with
        # scipy already imported (pages shared copy-on-write), so an editor's
        # first stats request doesn't wait a second or two for the import.
        return create_app(settings)

    serve(load, options(host, port, workers, threads))
