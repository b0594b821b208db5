"""Running the app under gunicorn from ``abtest serve``."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from .config import Settings

__all__ = ["run"]


class _Application(BaseApplication):
    def __init__(self, settings: Settings, options: dict):
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from . import create_app, stats  # noqa: F401

        # With preload_app this runs once, in the master: the workers fork with
        # scipy already imported (pages shared copy-on-write), so an editor's
        # first stats request doesn't wait a second or two for the import.
        return create_app(self.settings)


def run(settings: Settings, host: str, port: int, workers: int, threads: int = 1) -> None:
    """Serve until SIGINT/SIGTERM; returns (or raises SystemExit) when gunicorn stops."""
    options = {
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
    }
    _Application(settings, options).run()
