"""Running the service under a WSGI server: the one place ``abtest serve`` starts one.

Two servers, the same guarantees:

- **granian** (the default): a Rust HTTP server whose WSGI interface runs
  the app on a pool of Python threads per worker process (its "blocking
  threads"); parsing, keep-alive and writing responses happen in Rust, off
  the GIL.  Embedded through its Python API (``granian.server.mp``), so this
  process is its master.
- **gunicorn** (``--server gunicorn``): its ``gthread`` workers, or ``sync``
  with one thread (:mod:`abtest.gunicorn`).

Whichever runs:

- **One build, before any worker starts** (:func:`build`): the app is made
  in the master, the seed story loaded, the experiments read and the
  instance marker looked at; the workers are forked from it (both servers
  fork on Linux; granian starts fresh interpreters where ``multiprocessing``
  does not fork, macOS and Python 3.14, and each builds its own app).  What
  a forked worker must not share (connections, random streams, threads) is
  reset by :mod:`abtest.forks`.
- **Each worker's own background work** (:func:`start_worker`): its
  data-loss watch (:mod:`abtest.watch`) starts as the worker starts; its
  snapshot refresher starts on its first request and its circuit breaker's
  prober on its first Redis failure, both per process by design.
- **``threads`` requests at once per worker** (:data:`DEFAULT_THREADS`): a
  new reader's request holds a thread while it waits on Redis (at most the
  Redis timeout, until the breaker opens); the rest keep the others.
- **SIGINT/SIGTERM**: the workers stop accepting, finish the requests they
  hold (for up to :data:`GRACEFUL_TIMEOUT` s), and the master returns.  The
  embedded Redis is its starter's to stop (``abtest serve`` does, after).
- **Workers die with the master**, even one killed with SIGKILL, so a new
  ``abtest serve`` finds the port free; a worker that dies is replaced.
- **Metrics**: a worker that exits leaves ``/metrics``' live gauges (its
  counts stay in the totals).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import logging.config
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .forks import process_alive

if TYPE_CHECKING:
    from flask import Flask

    from .config import Settings

__all__ = [
    "SERVERS",
    "DEFAULT_SERVER",
    "DEFAULT_THREADS",
    "GRACEFUL_TIMEOUT",
    "ServeError",
    "run",
    "serve",
    "build",
    "start_worker",
    "granian_options",
    "forget_dead_workers",
]

#: The servers ``abtest serve --server`` runs; the first is the default.
SERVERS = ("granian", "gunicorn")
DEFAULT_SERVER = SERVERS[0]

#: Threads per worker.  Enough that the requests in flight when Redis stalls
#: (each new reader's holds a thread for up to the Redis timeout, until the
#: circuit breaker opens) leave threads free for returning readers and health
#: checks; few enough that a worker's threads are cheap (each is a stack and a
#: slot in the pool; the GIL serializes the Python work anyway, so more
#: threads add no throughput, only waiting room).
DEFAULT_THREADS = 8

#: Seconds a stopping worker has to finish the requests it holds (each waits
#: on Redis for at most the Redis timeout) before it is killed.
GRACEFUL_TIMEOUT = 10

#: granian's access log, close to the combined log format gunicorn writes
#: (granian knows no response size; the query string is left out).
ACCESS_FORMAT = (
    '%(addr)s - - [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d - '
    '"%(header{referer})s" "%(header{user-agent})s"'
)

_LINE = "[%(asctime)s] [%(process)d] [%(levelname)s] "
_DATE = "%Y-%m-%d %H:%M:%S %z"

log = logging.getLogger(__name__)


class ServeError(RuntimeError):
    """The server could not start; the message is one sentence for the operator."""


# -- the service ----------------------------------------------------------------


def run(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    threads: int = DEFAULT_THREADS,
    server: str = DEFAULT_SERVER,
) -> None:
    """Serve abtest until SIGINT/SIGTERM; returns when the server has stopped.

    Raises :class:`ServeError` when it can't start, or SystemExit when the
    server gives up (granian: a worker that keeps dying).
    """
    serve(
        functools.partial(build, settings),
        host,
        port,
        workers,
        threads,
        server=server,
        access_log=settings.access_log,
        in_worker=start_worker,
    )


def build(settings: Settings) -> Flask:
    """The app, made once in the master before the workers start (or in a spawned worker)."""
    from . import create_app, stats  # noqa: F401
    from .store import StoreError
    from .watch import watch

    # scipy imported here, in the master: the workers fork with it (pages
    # shared copy-on-write), so an editor's first stats request doesn't wait
    # a second or two for the import.
    app = create_app(settings)
    # The experiments, read once before the fork: every worker starts with
    # them, so one that has served no one yet can still serve readers if
    # Redis is away when they come.
    try:
        app.extensions["abtest"]["service"].snapshot.refresh()
    except StoreError as error:
        log.warning("experiments not read yet: %s", error)
    # The first look at the instance marker, before the fork: every worker
    # knows it from the start.
    watch(app).look()
    return app


def start_worker(app: Flask) -> None:
    """In each worker, once: its own data-loss watch (abtest.watch)."""
    from .watch import watch

    watch(app).start()


# -- any WSGI app -----------------------------------------------------------------


def serve(
    load: Callable[[], Callable],
    host: str,
    port: int,
    workers: int,
    threads: int = DEFAULT_THREADS,
    server: str = DEFAULT_SERVER,
    access_log: bool = False,
    in_worker: Callable[[Callable], None] | None = None,
    name: str = "abtest",
) -> None:
    """Serve the WSGI app ``load()`` returns until SIGINT/SIGTERM.

    ``load`` runs once in this process before the workers start (in each
    worker too where they are spawned rather than forked: then it and
    ``in_worker`` must be picklable, module-level functions or partials of
    them).  ``in_worker(app)`` runs in each worker before it serves.
    bench/floor.py serves its floor through here, as the service is served.
    """
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")
    if server == "gunicorn":
        _serve_gunicorn(load, host, port, workers, threads, access_log, in_worker, name)
    else:
        _serve_granian(load, host, port, workers, threads, access_log, in_worker, name)


def _serve_gunicorn(load, host, port, workers, threads, access_log, in_worker, name) -> None:
    from . import gunicorn

    _log_lines()
    loaded = []

    def preload():
        # With preload_app this runs once, in the master, before the fork.
        app = load()
        loaded.append(app)
        return app

    def post_fork(server, worker) -> None:
        if in_worker is not None:
            for app in loaded:
                in_worker(app)

    gunicorn.serve(
        preload,
        gunicorn.options(host, port, workers, threads, access_log=access_log)
        | {"post_fork": post_fork, "proc_name": name},
    )


def _log_lines() -> None:
    """abtest's own log lines on stderr beside the server's, with time, pid and level.

    Nothing else configures logging under ``abtest serve``; without a handler
    Python would print bare messages.  abtest logs from INFO, other libraries
    from WARNING.  A logging configuration made before is left alone.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_LINE + "%(name)s: %(message)s", _DATE))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("abtest").setLevel(logging.INFO)


# -- granian ------------------------------------------------------------------------

#: The app this process built before its workers started; a forked worker
#: finds it here, a spawned one finds nothing and builds its own.
_preloaded: dict[str, Callable] = {}


def granian_options(
    host: str,
    port: int,
    workers: int,
    threads: int = DEFAULT_THREADS,
    access_log: bool = False,
) -> dict:
    """granian's settings (``MPServer``'s keyword arguments) for ``abtest serve``."""
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels

    options = {
        "address": host,
        "port": port,
        "interface": Interfaces.WSGI,
        "workers": workers,
        # The Python threads that run the app: --threads.
        "blocking_threads": threads,
        # A TLS-terminating proxy in front speaks HTTP/1.1 to it, as to gunicorn.
        "http": HTTPModes.http1,
        "websockets": False,
        "log_level": LogLevels.info,
        "log_access": access_log,
        "log_access_format": ACCESS_FORMAT,
        # A worker that dies is replaced (as gunicorn does); one that keeps
        # dying within seconds of its start stops the server.
        "respawn_failed_workers": True,
        "workers_kill_timeout": GRACEFUL_TIMEOUT,
    }
    with contextlib.suppress(ImportError):
        import setproctitle  # noqa: F401  (granian names processes only with it)

        options["process_name"] = "abtest"
    return options


def _logging_config() -> dict:
    """granian's logging, and abtest's unless configured before: one line format, on stderr;
    the access log alone on stdout."""
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "server": {"format": _LINE + "%(message)s", "datefmt": _DATE},
            "abtest": {"format": _LINE + "%(name)s: %(message)s", "datefmt": _DATE},
            "access": {"format": "%(message)s"},
        },
        "filters": {"chosen": {"()": "abtest.server._Chosen"}},
        "handlers": {
            "server": {
                "class": "logging.StreamHandler",
                "formatter": "server",
                "filters": ["chosen"],
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "_granian": {"handlers": ["server"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
    if not logging.getLogger().handlers:
        config["handlers"]["abtest"] = {
            "class": "logging.StreamHandler",
            "formatter": "abtest",
            "stream": "ext://sys.stderr",
        }
        config["root"] = {"handlers": ["abtest"], "level": "WARNING"}
        config["loggers"]["abtest"] = {"level": "INFO"}
    return config


class _Chosen(logging.Filter):
    """Drops granian's warning that the blocking threads outnumber the cores: chosen on
    purpose, as waiting room for requests that wait on Redis (DEFAULT_THREADS)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Configuration allows spawning up to")


def _serve_granian(load, host, port, workers, threads, access_log, in_worker, name) -> None:
    from granian.server.mp import MPServer

    # granian binds with SO_REUSEPORT, each worker a listener of its own, so a
    # port another server holds the same way would be shared, not refused.
    _refuse_a_busy_port(host, port)
    config = _logging_config()
    logging.config.dictConfig(config)
    _preloaded["app"] = load()
    server = MPServer(
        name,
        **granian_options(host, port, workers, threads, access_log),
        log_dictconfig=config,
    )
    started = threading.Event()
    server.on_startup(started.set)
    stop = threading.Event()
    threading.Thread(
        target=_forget_dead_workers_until, args=(stop,), name="abtest-exited-workers", daemon=True
    ).start()
    try:
        server.serve(
            target_loader=functools.partial(_worker_app, load, in_worker, os.getpid()),
            wrap_loader=False,
        )
    except RuntimeError as error:
        if started.is_set():
            raise
        raise ServeError(_listen_error(host, port, error)) from None
    finally:
        stop.set()
        forget_dead_workers()


def _worker_app(load, in_worker, master: int) -> Callable:
    """granian calls this in each worker before it serves: the app, and the worker's own work."""
    _die_with(master)
    _one_stop_signal()
    app = _preloaded.get("app")
    if app is None:  # spawned, not forked
        app = _preloaded["app"] = load()
    if in_worker is not None:
        in_worker(app)
    return app


def _die_with(master: int) -> None:
    """Have this worker sent SIGTERM when its master dies, however it dies.

    gunicorn's workers notice on their own; granian's would keep serving on
    the port with no master.  Linux: the kernel's parent-death signal; elsewhere
    a thread that looks at the parent every second.
    """
    import signal

    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) == 0:
            if os.getppid() != master:  # it died before the signal was asked for
                os.kill(os.getpid(), signal.SIGTERM)
            return

    def orphaned() -> None:
        while os.getppid() == master:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, name="abtest-orphaned", daemon=True).start()


def _one_stop_signal() -> None:
    """Have this granian worker stop on the first SIGINT/SIGTERM, whichever thread takes it.

    Two faults of granian's worker (it installs its handlers after this runs,
    so the installer is wrapped):

    - Its handler sets the worker's stop signal, and setting that a second
      time blocks for ever.  A Ctrl-C reaches every process of the
      terminal's group, and then the master sends each worker SIGTERM (so
      does systemd to every process of a unit): the handler here passes on
      the first signal only.
    - Python runs signal handlers in the main thread only, and a worker's
      main thread sleeps until its handler has run.  The kernel may hand a
      signal to one of the worker's other threads (when the main thread has
      one pending already, as with those two at once); then the handler
      waited, and the worker hung until killed, with whatever requests it
      held.  Whichever thread takes the signal writes its number to a pipe
      (``signal.set_wakeup_fd``), and a thread reading the pipe sends it on
      to the main thread until the handler has run.
    """
    import signal

    try:
        from granian import _signals
    except ImportError:  # a granian that stops its workers another way
        return
    install = getattr(_signals, "set_sync_signals", None)
    if install is None or getattr(install, "once", False):
        return

    def set_sync_signals():
        event = install()
        stopping = threading.Lock()
        numbers = frozenset(_signals._get_signals())

        def handler(signum, frame) -> None:
            if stopping.acquire(blocking=False):
                event.set()

        for number in numbers:
            signal.signal(number, handler)
        readable, writable = os.pipe()
        os.set_blocking(writable, False)
        signal.set_wakeup_fd(writable, warn_on_full_buffer=False)
        threading.Thread(
            target=_pass_signals_on,
            args=(readable, threading.get_ident(), numbers, stopping),
            name="abtest-signals",
            daemon=True,
        ).start()
        return event

    set_sync_signals.once = True
    _signals.set_sync_signals = set_sync_signals


def _pass_signals_on(readable: int, main: int, numbers: frozenset, stopping) -> None:
    """Send each stop signal taken by any thread on to the main thread, until it has acted."""
    import signal

    while True:
        taken = os.read(readable, 64)
        if not taken or stopping.locked():
            return
        for number in set(taken) & numbers:
            signal.pthread_kill(main, number)


def _refuse_a_busy_port(host: str, port: int) -> None:
    """ServeError if another program listens on ``host:port`` (a plain bind, as gunicorn's)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        return  # granian says why
    with socket.socket(family, kind, proto) as probe:
        # A port whose last connections are in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise ServeError(_listen_error(host, port, error)) from None


def _listen_error(host: str, port: int, error: Exception) -> str:
    """One sentence on why ``host:port`` can't be listened on (an OSError or granian's error)."""
    code = getattr(error, "errno", None)
    if code is None:
        found = re.search(r"os error (\d+)", str(error))
        code = int(found.group(1)) if found else None
    if code == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is in use by another program: stop it, or choose another port"
        )
    reason = os.strerror(code) if code else str(error).splitlines()[0]
    return f"can't listen on {host}:{port} ({reason})"


# -- metrics of workers that exited -------------------------------------------------

#: A live gauge's file in the multiprocess directory: ``gauge_livemax_<pid>.db``.
_LIVE_GAUGE = re.compile(r"gauge_live\w*?_(\d+)\.db")


def forget_dead_workers(directory: Path | None = None) -> list[int]:
    """Drop the live gauges of every process that wrote them and is gone; the pids dropped.

    gunicorn tells its master when a worker exits (``child_exit``); granian
    has no such hook, so its master looks every second.
    """
    from prometheus_client import multiprocess

    from . import metrics

    directory = directory or metrics.multiprocess_dir()
    if directory is None:
        return []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    dead = set()
    for filename in names:
        found = _LIVE_GAUGE.fullmatch(filename)
        if found and not process_alive(int(found.group(1))):
            dead.add(int(found.group(1)))
    for pid in sorted(dead):
        multiprocess.mark_process_dead(pid, str(directory))
    return sorted(dead)


def _forget_dead_workers_until(stop: threading.Event) -> None:
    while not stop.wait(1.0):
        try:
            forget_dead_workers()
        except Exception:  # keep looking whatever one look hit
            log.exception("dropping exited workers' metrics failed")
