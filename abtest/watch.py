"""Noticing that Redis came back empty, and saying so until an editor has seen it.

A Redis without persistence that restarts, a volume lost, a ``FLUSHALL``:
Redis answers again, but every count and every experiment an editor made is
gone, and readers would get "No stories yet".  Each process watches for it
off the request path: a background thread (:class:`Watch`) looks every
couple of seconds at a marker key, ``abtest:{instance}``, holding a random id
written the first time any process saw this Redis.  Found missing while
Redis answers, the data was lost: the process that notices first (one Lua
script decides, atomically) writes a new marker and the record
``abtest:{instance}:data-lost`` (when it was noticed, by which process),
logs an ERROR, and every process that sees the marker change reloads the
seed story.  While the record is there and unacknowledged, the dashboard
shows a warning on every page, with a button an editor presses to say they
have seen it (a CSRF-checked POST, kept in the record and logged).

The marker must not be evicted: run Redis with ``maxmemory-policy
noeviction`` (or a ``volatile-*`` policy), as the counts need anyway.

On a Redis Cluster the marker and its record share the hash tag
``{instance}``, so they live on one node: the watch notices that node coming
back empty.  A master that loses its data while its replica is promoted
loses nothing; run every master with persistence (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

import redis
from flask import Flask, current_app, g, redirect, url_for

from . import keys
from .forks import reset_after_fork
from .model import SEED_SLUG
from .service import Service
from .store import REDIS_ERRORS, StoreError

__all__ = ["Watch", "DataLoss", "watch", "init_app", "SIGHT"]

log = logging.getLogger(__name__)

#: Record the marker on first sight, or notice that it is gone.
#:
#: KEYS[1] the marker (``abtest:{instance}``), KEYS[2] the loss record
#: (``abtest:{instance}:data-lost``).
#: ARGV[1] the marker this process knew ("" on its first sight), ARGV[2] a
#: new random id, ARGV[3] now (Unix seconds), ARGV[4] who is noticing.
#:
#: Returns {1, id} when this call wrote the marker (and, if ARGV[1] was
#: set, the loss record), or {0, id} with the marker another process wrote.
SIGHT = """
local current = redis.call('GET', KEYS[1])
if current then
  return {0, current}
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[1] ~= '' then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'noticed_at', ARGV[3], 'noticed_by', ARGV[4], 'previous', ARGV[1])
end
return {1, ARGV[2]}
"""


class DataLoss(NamedTuple):
    """The loss record: when it was noticed, and whether an editor has seen it."""

    noticed_at: float
    noticed_by: str
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> DataLoss | None:
        if not fields.get("noticed_at"):
            return None
        acknowledged_at = fields.get("acknowledged_at")
        return cls(
            noticed_at=float(fields["noticed_at"]),
            noticed_by=fields.get("noticed_by", ""),
            acknowledged_by=fields.get("acknowledged_by") or None,
            acknowledged_at=float(acknowledged_at) if acknowledged_at else None,
        )

    @property
    def noticed(self) -> str:
        """When it was noticed, for people: ``2025-03-04 14:02:07 UTC``."""
        return datetime.fromtimestamp(self.noticed_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_by is not None


class Watch:
    """One process's watch over the marker; :meth:`check` is one look (one round trip).

    :meth:`start` starts the background thread (``abtest serve`` looks once
    in the server's master, :func:`abtest.server.build`, then starts one in
    each worker as it starts, :func:`abtest.server.start_worker`).
    Fork-safe: a forked child keeps the marker its parent knew and starts no
    thread until told.
    """

    def __init__(
        self,
        service: Service,
        load_seed: bool = True,
        interval: float = 2.0,
        clock: Callable[[], float] = time.time,
    ):
        self.service = service
        self.load_seed = load_seed
        self.interval = interval
        self.clock = clock
        #: The marker's value as this process last saw it (None before the first look).
        self.instance: str | None = None
        #: The loss record as last read (None: no loss on record).
        self.lost: DataLoss | None = None
        self._sight = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        #: Started and stopped with the watch: other per-process background work
        #: (the webhooks' evaluator, :mod:`abtest.webhooks`).
        self.companions: list = []
        reset_after_fork(self)

    @property
    def redis(self) -> redis.Redis:
        return self.service.store.redis

    def check(self) -> None:
        """Look at the marker, the loss record and the seed story (one round trip);
        act if the marker is gone or new, or the seed story missing.

        Raises one of :data:`abtest.store.REDIS_ERRORS` when Redis does not answer.
        """
        with self._lock:
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(keys.INSTANCE)
            pipe.hgetall(keys.DATA_LOST)
            pipe.exists(keys.meta(SEED_SLUG))
            marker, record, seeded = pipe.execute()
            if marker is None:
                marker = self._sighted()
                record = self.redis.hgetall(keys.DATA_LOST)
            elif marker != self.instance:
                self._adopt(marker)
            elif self.load_seed and not seeded:
                self._reload()  # an earlier reload failed half-way
            self.lost = DataLoss.from_hash(record)

    def _sighted(self) -> str:
        """The marker is missing: write it (recording a loss if we knew one), or adopt another's."""
        if self._sight is None:
            self._sight = self.redis.register_script(SIGHT)
        knew = self.instance or ""
        written, marker = self._sight(
            keys=[keys.INSTANCE, keys.DATA_LOST],
            args=[
                knew,
                uuid.uuid4().hex,
                repr(self.clock()),
                f"{socket.gethostname()}:{os.getpid()}",
            ],
        )
        if not written:
            self._adopt(marker)
        elif knew:
            log.error(
                "Redis lost its data: the marker %s written when abtest first saw this "
                "Redis is gone. Every count and every experiment made by editors since "
                "then is lost. %sThe dashboard shows a warning until an editor "
                "acknowledges it.",
                keys.INSTANCE,
                "The seed story is loaded again. " if self.load_seed else "",
            )
            self.instance = marker
            self._reload()
        else:
            self.instance = marker
        return marker

    def _adopt(self, marker: str) -> None:
        """Another process wrote a new marker: reload the seed here too if we knew the old one."""
        knew, self.instance = self.instance, marker
        if knew is not None:
            log.warning("Redis has a new instance marker (data lost, noticed elsewhere)")
            self._reload()

    def _reload(self) -> None:
        """Load the seed story again (if the settings load it); re-read the experiments."""
        try:
            if self.load_seed:
                self.service.ensure_seed()
            self.service.snapshot.refresh()
        except StoreError as error:
            log.warning("seed story not reloaded yet (the next look tries again): %s", error)

    def acknowledge(self, editor: str) -> bool:
        """An editor has seen the warning; False if there is no loss on record."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.exists(keys.DATA_LOST)
        pipe.hgetall(keys.DATA_LOST)
        present, record = pipe.execute()
        if not present:
            return False
        now = self.clock()
        self.redis.hset(
            keys.DATA_LOST, mapping={"acknowledged_by": editor, "acknowledged_at": repr(now)}
        )
        lost = DataLoss.from_hash(record)
        log.warning(
            "editor %s acknowledged that Redis lost its data (noticed %s)",
            editor,
            lost.noticed if lost else "?",
        )
        self.lost = DataLoss.from_hash({**record, "acknowledged_by": editor})
        return True

    def current(self) -> DataLoss | None:
        """The loss record, read now; the last one read while Redis fails or is
        known to be away (the circuit breaker is open: no wait for a timeout)."""
        if self.service.breaker.allow():
            with contextlib.suppress(*REDIS_ERRORS):
                self.lost = DataLoss.from_hash(self.redis.hgetall(keys.DATA_LOST))
        return self.lost

    def readiness(self) -> tuple[bool, str]:
        """(ready, reason): Redis answers, with the marker this process knows and the seed story."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.INSTANCE)
        pipe.exists(keys.meta(SEED_SLUG))
        try:
            marker, seeded = pipe.execute()
        except REDIS_ERRORS as error:
            return False, f"redis: {error}"
        if self.instance is not None and marker != self.instance:
            # Lost, and this process has not caught up yet (its watch reloads
            # the seed and re-reads the experiments within an interval).
            return False, "Redis lost its data; the seed story is being reloaded"
        if self.load_seed and not seeded:
            return False, "the seed story is not loaded"
        return True, "ok"

    # -- the thread ---------------------------------------------------------

    def start(self) -> Watch:
        """Look now and then every ``interval`` s, in a daemon thread (once per process)."""
        with self._lock:
            if self._thread is None:
                self._stopped = threading.Event()
                self._thread = threading.Thread(
                    target=_watch_until,
                    args=(weakref.ref(self), self._stopped, self.interval),
                    name="abtest-watch",
                    daemon=True,
                )
                self._thread.start()
        for companion in self.companions:
            companion.start()
        return self

    def look(self) -> None:
        """One :meth:`check`, logging rather than raising when Redis does not answer."""
        try:
            self.check()
        except REDIS_ERRORS as error:
            log.warning("could not look for the instance marker: %s", error)

    def stop(self) -> None:
        self._stopped.set()
        for companion in self.companions:
            companion.stop()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._thread = None
        self._stopped = threading.Event()
        self._sight = None


def _watch_until(ref: weakref.ref, stopped: threading.Event, interval: float) -> None:
    """The thread: holds the watch weakly, so a discarded app's watch ends with it."""
    failing = False
    while True:
        watch = ref()
        if watch is None:
            return
        try:
            watch.check()
            failing = False
        except REDIS_ERRORS as error:
            if not failing:
                log.warning("could not look for the instance marker: %s", error)
            failing = True
        except Exception:  # keep watching whatever one look hit
            log.exception("the data-loss watch failed a look")
        del watch
        if stopped.wait(interval):
            return


# -- the app ------------------------------------------------------------------


def watch(app: Flask) -> Watch:
    """The app's watch (made by :func:`init_app`)."""
    return app.extensions["abtest"]["watch"]


def init_app(app: Flask) -> None:
    """Give ``app`` its watch, the dashboard's warning and the button to acknowledge it.

    The watch does nothing until started (:meth:`Watch.start`; ``abtest
    serve`` starts it in every process).
    """
    extension = app.extensions["abtest"]
    settings = extension["settings"]
    extension["watch"] = Watch(extension["service"], load_seed=settings.load_seed)

    def data_loss_context() -> dict:
        # Read from Redis on each dashboard page: one small hash, and the
        # warning disappears everywhere as soon as an editor acknowledges it.
        return {"data_loss": watch(current_app).current()}

    app.template_context_processors.setdefault("dashboard", []).append(data_loss_context)
    # Named in the dashboard's namespace so that its hooks apply: a signed-in
    # editor, a CSRF token, its security headers and error pages.
    app.add_url_rule(
        "/dashboard/data-loss/acknowledge",
        endpoint="dashboard.acknowledge_data_loss",
        view_func=_acknowledge,
        methods=["POST"],
    )


def _acknowledge():
    try:
        watch(current_app).acknowledge(g.get("editor") or "?")
    except REDIS_ERRORS as error:
        log.warning("could not record the acknowledgement: %s", error)
    return redirect(url_for("dashboard.index"), code=303)
