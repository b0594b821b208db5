"""One process's copy of every experiment, kept fresh by a background thread.

Each worker keeps the experiments (definition, status, counts and the Beta
posteriors built from them) in memory, so that a reader's request needs at
most one round trip to Redis (the count; on a Redis Cluster, one to each
node holding one of the page's experiments, sent together) and a returning
reader's none.  A background thread re-reads them every ``refresh_interval``
seconds (0.5 s by default, at most 1 s) in one pipelined round trip (one per
node on a cluster), which also reads Redis's clock (counting scripts'
deadlines are sent in it), and every counted
impression folds in the counts its script returns.  So the counts a decision
samples from lag Redis by at most the refresh interval plus one round trip;
a request never waits for them on Redis, even while Redis stalls, except
the first one (there is nothing to serve yet).  Without a refresher thread
(``background=False``) a request re-reads a snapshot older than
:attr:`Snapshot.MAX_AGE` (and twice the interval), unless the circuit
breaker is open.  Each posterior draws by its experiment's allocation
mode, re-read with the counts, so a changed mode reaches readers within the
same interval.  The same thread adds the bots and prefetches this process
tallied to Redis (:meth:`abtest.store.RedisStore.flush_excluded`), so they
cost readers no round trip.  Each refresh also starts the scheduled
experiments whose start time has come (:func:`start_due`), so a scheduled
story goes live on every worker within one refresh interval of its start
time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from .bandit import Posterior
from .breaker import CircuitBreaker
from .forks import reset_after_fork
from .model import RUNNING, SCHEDULED, Experiment
from .store import RedisStore, StoreError, counted

__all__ = ["Entry", "Snapshot", "front_page_of", "start_due"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One experiment as this process last read it, with its posterior."""

    experiment: Experiment
    posterior: Posterior
    built_at: float  # the snapshot's monotonic clock when the counts were read


def _newest_first(entries: dict[str, Entry]) -> list[Experiment]:
    experiments = [entry.experiment for entry in entries.values()]
    return sorted(experiments, key=lambda experiment: experiment.created_at, reverse=True)


def _front_page_order(experiment: Experiment) -> tuple:
    # Higher rank first; equal ranks newest first, then by slug, so every worker agrees.
    return (-experiment.order, -experiment.created_at, experiment.slug)


def front_page_of(experiments: list[Experiment]) -> list[Experiment]:
    """The experiments on the front page, in its order: running, paused and decided
    ones that are not archived, highest rank first."""
    return sorted((e for e in experiments if e.on_front_page), key=_front_page_order)


def start_due(store: RedisStore, experiments: list[Experiment]) -> list[Experiment]:
    """``experiments`` with every scheduled one whose start time has come started.

    A start time is in Redis's clock, which this host's estimate never
    overtakes (:meth:`RedisStore.redis_time`): the start itself is decided
    by :data:`abtest.scripts.START` against ``TIME``, once, whichever worker
    asks first; the others find it running when they read it again here.
    Costs nothing while no scheduled experiment is due.
    """
    if not any(e.status == SCHEDULED for e in experiments):
        return experiments
    now = store.redis_time()
    due = [
        e.slug
        for e in experiments
        if e.status == SCHEDULED and e.starts_at is not None and e.starts_at <= now
    ]
    if not due:
        return experiments
    for slug in due:
        store.start(
            slug,
            {
                "action": "start",
                "editor": "schedule",
                "at": now,
                "from": SCHEDULED,
                "status": RUNNING,
                "winner": None,
            },
        )
    again = {e.slug: e for e in store.load(due)}
    return [again.get(e.slug, e) for e in experiments]


class Snapshot:
    """Every experiment as this process last read it; the refresher thread keeps it fresh.

    The entries are replaced, never changed in place (copy on write): readers
    iterate them in other threads (a worker serves requests on several).  The
    refresher starts on first use, so in a worker, not in the master that
    forked it; a forked child starts its own.
    """

    #: Without a refresher thread: older than this (s), and twice the refresh
    #: interval, the snapshot is re-read by the request that finds it so (at
    #: most once per MAX_AGE while there is one to serve, so an outage doesn't
    #: make every reader wait for a timeout).
    MAX_AGE = 1.0

    def __init__(
        self,
        store: RedisStore,
        refresh_interval: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
        background: bool = True,
        breaker: CircuitBreaker | None = None,
    ):
        """``background=False`` runs no refresher thread: the requests re-read
        a stale snapshot themselves (tests drive the clock).  While
        ``breaker`` is open, requests do not try; a failed re-read opens it."""
        self.store = store
        self.refresh_interval = refresh_interval
        self.monotonic = monotonic
        self.background = background
        self.breaker = breaker
        self._entries: dict[str, Entry] = {}
        # Whether every experiment was read once (entries put one by one are not all).
        self._read_all = False
        self._front: tuple[dict | None, list[Experiment]] = (None, [])
        self._loaded_at = -float("inf")
        self._tried_at = -float("inf")
        self._refresher: threading.Thread | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        reset_after_fork(self)

    def entry(self, experiment: Experiment, built_at: float | None = None) -> Entry:
        """An entry with a fresh posterior (its counts read at ``built_at``, default now)."""
        posterior = Posterior(experiment.impressions, experiment.clicks, experiment.allocation)
        return Entry(experiment, posterior, self.monotonic() if built_at is None else built_at)

    def entries(self) -> dict[str, Entry]:
        """Every experiment by slug, re-read first if the snapshot is stale.

        Raises :class:`~abtest.store.StoreError` only when there is no
        snapshot to serve and Redis can't be reached.
        """
        if self.background:
            if self._refresher is None:
                self._start_refresher()
            if self._read_all:
                # The refresher keeps them fresh: a reader never waits on Redis for
                # them (a refresh during a stall would wait out the whole timeout).
                return self._entries
        now = self.monotonic()
        age = now - self._loaded_at
        stale = age > self.MAX_AGE and age > 2 * self.refresh_interval
        if stale and (
            not self._entries
            or (now - self._tried_at > self.MAX_AGE and (not self.breaker or self.breaker.allow()))
        ):
            self._tried_at = now
            try:
                self.refresh()
            except StoreError as error:
                if self.breaker is not None:
                    self.breaker.failed(error)
                log.warning("could not refresh experiments from Redis: %s", error)
                if not self._entries:
                    raise
        return self._entries

    def refresh(self) -> None:
        """Re-read every experiment from Redis (one round trip, one per node on a cluster)."""
        experiments = start_due(self.store, self.store.load_all())
        self._entries = {experiment.slug: self.entry(experiment) for experiment in experiments}
        self._loaded_at = self.monotonic()
        self._read_all = True

    def experiments(self) -> list[Experiment]:
        """Every experiment, newest first."""
        return _newest_first(self.entries())

    def front_page(self) -> list[Experiment]:
        """The stories on the front page, in the editors' order (sorted once per snapshot).

        Running, paused (every reader gets headline ``a``) and decided ones,
        unless archived; drafts and scheduled stories are not published yet.
        Highest rank first: a story's rank is the moment it went live unless
        an editor moved it, so new stories come first.
        """
        entries = self.entries()
        sorted_for, found = self._front
        if sorted_for is not entries:
            found = front_page_of([entry.experiment for entry in entries.values()])
            self._front = (entries, found)
        return found

    def put(self, *experiments: Experiment) -> None:
        """Replace these experiments' entries with fresh ones (read from Redis just now)."""
        self._replace(*(self.entry(experiment) for experiment in experiments))

    def update(
        self, entry: Entry, status: str, winner: str | None, counts: dict | None
    ) -> Experiment:
        """Fold what an impression script returned into ``entry``'s experiment."""
        experiment = entry.experiment
        if counts is None:
            if (status, winner) == (experiment.status, experiment.winner):
                return experiment
            fresh = dataclasses.replace(experiment, status=status, winner=winner)
            self._replace(dataclasses.replace(entry, experiment=fresh))
            return fresh
        fresh = dataclasses.replace(
            experiment,
            status=status,
            winner=winner,
            **counted(experiment.definition, counts, experiment.reward, experiment.denominator),
        )
        self._replace(self.entry(fresh))
        return fresh

    def _replace(self, *entries: Entry) -> None:
        self._entries = {**self._entries, **{entry.experiment.slug: entry for entry in entries}}

    # -- the refresher ------------------------------------------------------

    def _start_refresher(self) -> None:
        with self._lock:
            if self._refresher is not None:
                return
            stopped = threading.Event()
            thread = threading.Thread(
                target=self._refresh_until, args=(stopped,), name="abtest-refresh", daemon=True
            )
            self._refresher, self._stopped = thread, stopped
            thread.start()

    def _refresh_until(self, stopped: threading.Event) -> None:
        """Refresh every interval until ``stopped``; no error ends it, since readers
        rely on it alone for fresh counts."""
        failing = False
        while not stopped.wait(self.refresh_interval):
            try:
                self.refresh()
                self.store.flush_excluded()
                failing = False
            except StoreError as error:
                if not failing:
                    log.warning("background refresh failed: %s", error)
                failing = True
            except Exception:
                log.exception("background refresh failed")
                failing = True

    def stop(self) -> None:
        """Stop this process's refresher (tests, shutdown), adding what it tallied."""
        self._stopped.set()
        try:
            self.store.flush_excluded()
        except StoreError as error:
            log.warning("excluded readers not added, Redis unreachable: %s", error)

    def _after_fork(self) -> None:
        """In a forked child (a server's worker): its own lock and refresher, and
        posteriors with none of the parent's decisions drawn ahead."""
        self._lock = threading.Lock()
        self._entries = {
            slug: self.entry(entry.experiment, entry.built_at)
            for slug, entry in self._entries.items()
        }
        self._refresher = None
        self._stopped = threading.Event()
