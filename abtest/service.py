"""The use cases: assign a headline, count a click, report, decide.

Glues :mod:`abtest.store` (Redis), :mod:`abtest.bandit` (numpy) and
:mod:`abtest.stats` (scipy).  No Flask here: the web layer turns HTTP into
calls on :class:`Service` and back.

Freshness: each worker keeps the experiments (definition, status, counts and
the Beta posteriors built from them) in memory.  A background thread re-reads
them every ``refresh_interval`` seconds (0.5 s by default) in one pipelined
round trip, and every counted impression refreshes its experiment from the
counts the Lua script returns.  So the counts a decision samples from lag
Redis by at most the refresh interval plus one round trip, well under a
second.  Status changes reach new visitors at once (the impression script
checks the status in Redis) and returning visitors within the same interval.
"""

from __future__ import annotations

import copy
import dataclasses
import hmac
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from .bandit import Posterior
from .model import DECIDED, PAUSED, RUNNING, Definition, Experiment, seed_definition
from .store import RedisStore, StoreError, counts_tuple, reset_after_fork
from .tokens import (
    ClickToken,
    ClickTokens,
    Visitor,
    cookie_records,
    cookie_visitor_id,
    visitor_ref,
)

__all__ = ["Service", "Assignment", "ClickOutcome", "UnknownExperiment", "ActionRefused"]

log = logging.getLogger(__name__)


class UnknownExperiment(LookupError):
    """No experiment has that slug."""


class ActionRefused(ValueError):
    """An editor action that does not apply in the experiment's current state."""


class Assignment(NamedTuple):
    """The headline one visitor gets for one experiment on this request."""

    experiment: Experiment
    variant: str
    #: Signed click token, or None when a click would not be counted
    #: (paused, decided, bots, prefetches, or Redis unreachable).
    click_token: str | None

    @property
    def headline(self) -> str:
        return self.experiment.definition.headline(self.variant)


class ClickOutcome(NamedTuple):
    slug: str
    counted: bool


@dataclasses.dataclass(frozen=True)
class _Cached:
    experiment: Experiment
    posterior: Posterior
    built_at: float  # time.monotonic() when the counts were read


def _cached(experiment: Experiment, built_at: float | None = None) -> _Cached:
    """A snapshot entry with a fresh posterior (its counts read at ``built_at``, default now)."""
    posterior = Posterior(experiment.impressions, experiment.clicks)
    return _Cached(experiment, posterior, time.monotonic() if built_at is None else built_at)


def _newest_first(snapshot: dict[str, _Cached]) -> list[Experiment]:
    experiments = [cached.experiment for cached in snapshot.values()]
    return sorted(experiments, key=lambda experiment: experiment.created_at, reverse=True)


class Service:
    """One process's view of the experiments and every use case on them."""

    #: A counted impression asks Redis for fresh counts (in the same round
    #: trip) when this worker's posterior is older than this (s): the
    #: posterior tracks traffic closely without rebuilding it per reader.
    COUNTS_MAX_AGE = 0.1

    def __init__(
        self,
        store: RedisStore,
        click_tokens: ClickTokens,
        refresh_interval: float = 0.5,
        visitor_lifetime: int = 30 * 86_400,
        rng: np.random.Generator | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.click_tokens = click_tokens
        self.refresh_interval = refresh_interval
        # A click's de-duplication marker must outlive every token that
        # visitor can still present: their assignment (the cookie) plus the
        # lifetime of a token minted on its last day.
        self.click_marker_ttl = int(visitor_lifetime) + click_tokens.max_age
        self.clock = clock
        self._seeded_rng = rng
        self._rng: np.random.Generator | None = rng
        self._cache: dict[str, _Cached] = {}
        self._front: tuple[dict | None, list[Experiment]] = (None, [])
        self._loaded_at = 0.0
        self._tried_at = 0.0
        self._analyses: dict[tuple, dict] = {}
        self._refresher: threading.Thread | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        reset_after_fork(self)

    @classmethod
    def from_settings(cls, settings, connection) -> Service:
        """The service as ``settings`` configure it, over a Redis ``connection``
        (one with ``decode_responses=True``, see :func:`abtest.store.connect`)."""
        return cls(
            RedisStore(connection, settings.minute_retention, settings.hour_retention),
            ClickTokens(settings.secret_key, settings.click_token_ttl),
            refresh_interval=settings.refresh_interval,
            visitor_lifetime=settings.visitor_days * 86_400,
        )

    # -- the in-memory snapshot ------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child (a gunicorn worker): its own RNG, lock and refresher,
        and posteriors with none of the parent's decisions drawn ahead."""
        self._lock = threading.Lock()
        self._rng = self._seeded_rng
        self._cache = {
            slug: _cached(cached.experiment, cached.built_at)
            for slug, cached in self._cache.items()
        }
        self._refresher = None
        self._stopped = threading.Event()

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            # Seeded from the OS per process, so workers never share a stream.
            self._rng = np.random.default_rng()
        return self._rng

    def refresh(self) -> None:
        """Re-read every experiment from Redis (one round trip)."""
        experiments = self.store.load_all()
        self._cache = {experiment.slug: _cached(experiment) for experiment in experiments}
        self._loaded_at = time.monotonic()

    def _snapshot(self) -> dict[str, _Cached]:
        if self._refresher is None:
            self._start_refresher()
        now = time.monotonic()
        age = now - self._loaded_at
        stale = age > 1.0 and age > 2 * self.refresh_interval
        if stale and (not self._cache or now - self._tried_at > 1.0):
            # First request, or the refresher is failing: try ourselves, at
            # most once a second while there is a snapshot to serve, so that
            # an outage doesn't make every reader wait for a timeout.
            self._tried_at = now
            try:
                self.refresh()
            except StoreError as error:
                log.warning("could not refresh experiments from Redis: %s", error)
                if not self._cache:
                    raise
        return self._cache

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
        failing = False
        while not stopped.wait(self.refresh_interval):
            try:
                self.refresh()
                failing = False
            except StoreError as error:
                if not failing:
                    log.warning("background refresh failed: %s", error)
                failing = True

    def stop(self) -> None:
        """Stop this process's background refresher (tests, shutdown)."""
        self._stopped.set()

    def experiments(self) -> list[Experiment]:
        """Experiments as last read, newest first."""
        return _newest_first(self._snapshot())

    def front_page(self) -> list[Experiment]:
        """The running and decided experiments, newest first (sorted once per snapshot)."""
        snapshot = self._snapshot()
        sorted_for, found = self._front
        if sorted_for is not snapshot:
            found = [e for e in _newest_first(snapshot) if e.status in (RUNNING, DECIDED)]
            self._front = (snapshot, found)
        return found

    def experiment(self, slug: str) -> Experiment:
        cached = self._snapshot().get(slug)
        if cached is None:
            raise UnknownExperiment(slug)
        return cached.experiment

    def _update(
        self, cached: _Cached, status: str, winner: str | None, counts: dict | None
    ) -> Experiment:
        """Fold what an impression script returned into this worker's snapshot."""
        experiment = cached.experiment
        if counts is None:
            if (status, winner) == (experiment.status, experiment.winner):
                return experiment
            fresh = dataclasses.replace(experiment, status=status, winner=winner)
            self._store_cached(dataclasses.replace(cached, experiment=fresh))
            return fresh
        impressions, clicks = counts_tuple(experiment.definition, counts)
        fresh = dataclasses.replace(
            experiment, status=status, winner=winner, impressions=impressions, clicks=clicks
        )
        self._store_cached(_cached(fresh))
        return fresh

    def _store_cached(self, *entries: _Cached) -> None:
        # Copy on write: readers iterate the snapshot in other threads (gthread workers).
        self._cache = {**self._cache, **{entry.experiment.slug: entry for entry in entries}}

    # -- readers ----------------------------------------------------------

    def assign(self, visitor: Visitor, slugs: Sequence[str], count: bool) -> list[Assignment]:
        """Headlines for ``visitor`` in each experiment, counting new impressions.

        ``count=False`` (bots, prefetches) counts nothing and serves the
        visitor's own headline if they have one, else the default (``a``, or
        the winner once decided), with no click token.  New assignments are
        added to ``visitor.assignments`` only once Redis has counted them; if
        Redis can't be reached the reader still gets a headline, uncounted.
        At most one round trip.
        """
        snapshot = self._snapshot()
        entries = []
        for slug in slugs:
            cached = snapshot.get(slug)
            if cached is None:
                raise UnknownExperiment(slug)
            entries.append(cached)
        assigned = visitor.assignments
        # A headline to draw and count where the visitor has none of this story's.
        chosen: dict[str, str] = {}
        if count:
            for slug, cached in zip(slugs, entries, strict=True):
                experiment = cached.experiment
                ids = experiment.definition.variant_ids
                if experiment.status == RUNNING and assigned.get(slug) not in ids:
                    chosen[slug] = ids[cached.posterior.choose(self.rng)]
        counted = self._count_impressions(snapshot, chosen, assigned) if chosen else {}

        assignments = []
        ref = None
        for slug, cached in zip(slugs, entries, strict=True):
            experiment = counted.get(slug) or cached.experiment
            variant = assigned.get(slug)
            if experiment.status != RUNNING or variant not in experiment.definition.variant_ids:
                variant = chosen.get(slug) if experiment.status == RUNNING else None
                assignments.append(
                    Assignment(experiment, variant or experiment.default_variant, None)
                )
            elif not count:
                # A prefetch by a reader with a headline: theirs, but nothing to count.
                assignments.append(Assignment(experiment, variant, None))
            else:
                ref = ref or visitor_ref(visitor.id)
                token = self.click_tokens.sign(slug, variant, ref)
                assignments.append(Assignment(experiment, variant, token))
        return assignments

    def _count_impressions(
        self, snapshot: dict[str, _Cached], chosen: dict[str, str], assigned: dict[str, str]
    ) -> dict[str, Experiment]:
        """Count the ``chosen`` headlines in one round trip, and add those Redis
        counted to ``assigned``; returns each experiment as Redis's reply left it."""
        visits = list(chosen.items())
        oldest = time.monotonic() - self.COUNTS_MAX_AGE
        try:
            results = self.store.record_impressions(
                visits,
                now=self.clock(),
                with_counts=[snapshot[slug].built_at < oldest for slug, _ in visits],
            )
        except StoreError as error:
            log.warning("impression not counted, Redis unreachable: %s", error)
            return {}
        counted = {}
        for (slug, variant), result in zip(visits, results, strict=True):
            cached = snapshot[slug]
            if result.status:
                counted[slug] = self._update(cached, result.status, result.winner, result.counts)
            if result.counted:
                assigned[slug] = variant
        return counted

    def click(self, token: ClickToken, cookie: str | None) -> ClickOutcome:
        """Count a click for a token this service signed.

        ``cookie`` is the clicking browser's visitor cookie, as sent.  A token
        is signed only for a counted impression and names (by
        :func:`~abtest.tokens.visitor_ref`) the visitor it was shown to; the
        cookie's visitor id must hash to that ref, which only that visitor's
        cookie can do, so its signature need not be checked here.  The
        cookie must also list the token's variant: a check of the service's
        own consistency, since no one else can sign a token.
        Raises :class:`UnknownExperiment`, or :class:`ActionRefused` when the
        token was made for another browser, or another variant.
        """
        experiment = self.experiment(token.slug)
        if token.variant not in experiment.variant_ids:
            raise ActionRefused("that headline is not part of this story")
        visitor_id = cookie_visitor_id(cookie)
        if (
            visitor_id is None
            or not hmac.compare_digest(visitor_ref(visitor_id), token.visitor_ref)
            or not cookie_records(cookie, token.slug, token.variant)
        ):
            raise ActionRefused("this link was not issued to this browser")
        result = self.store.record_click(
            token.slug, token.variant, visitor_id, self.click_marker_ttl, now=self.clock()
        )
        return ClickOutcome(slug=token.slug, counted=result.counted)

    # -- editors ----------------------------------------------------------

    def fresh(self, slug: str) -> Experiment:
        """The experiment read from Redis now, not from the snapshot."""
        experiment = self.store.get(slug)
        if experiment is None:
            raise UnknownExperiment(slug)
        self._store_cached(_cached(experiment))
        return experiment

    def fresh_all(self) -> list[Experiment]:
        """Every experiment read from Redis now (one round trip), newest first."""
        experiments = self.store.load_all()
        self._store_cached(*(_cached(experiment) for experiment in experiments))
        return experiments

    def report(self, slug: str, alpha: float = 0.05, experiment: Experiment | None = None) -> dict:
        """The stats document for one experiment, with its identity and variants named."""
        # scipy is imported by the first report (`abtest serve` imports it before
        # forking its workers), never by the reader path itself.
        from . import stats

        experiment = experiment or self.fresh(slug)
        key = (experiment.impressions, experiment.clicks, alpha)
        analysis = self._analyses.get(key)
        if analysis is None:
            # The document depends on the counts alone: an editor's page polling a
            # quiet test, or several editors on one test, reuse it.
            analysis = stats.analyze(experiment.impressions, experiment.clicks, alpha=alpha)
            if len(self._analyses) >= 256:
                self._analyses.clear()
            self._analyses[key] = analysis
        document = copy.deepcopy(analysis)
        for variant_id, headline, row in zip(
            experiment.variant_ids,
            experiment.definition.headlines,
            document["variants"],
            strict=True,
        ):
            row["id"] = variant_id
            row["headline"] = headline
        return {
            "experiment": experiment.slug,
            "title": experiment.definition.title,
            "status": experiment.status,
            "winner": experiment.winner,
            "created_at": experiment.created_at,
            **document,
        }

    def create(self, definition: Definition) -> bool:
        """Store a new experiment; False if the slug is taken."""
        created = self.store.create(definition, now=self.clock())
        if created:
            self.fresh(definition.slug)
        return created

    def ensure_seed(self) -> bool:
        """Load the bundled seed story unless it is there already (counts untouched)."""
        return self.store.create(seed_definition(), now=self.clock())

    def decide(self, slug: str, winner: str, editor: str) -> Experiment:
        """Choose the winner: every reader gets it from the next request on; counting stops."""
        experiment = self.fresh(slug)
        if winner not in experiment.variant_ids:
            raise ActionRefused(f"there is no variant {winner!r}")
        if experiment.status == DECIDED:
            raise ActionRefused("a winner is chosen already; reopen the test first")
        return self._transition(experiment, DECIDED, winner, "decide", editor)

    def pause(self, slug: str, editor: str) -> Experiment:
        experiment = self.fresh(slug)
        if experiment.status != RUNNING:
            raise ActionRefused("only a running test can be paused")
        return self._transition(experiment, PAUSED, None, "pause", editor)

    def resume(self, slug: str, editor: str) -> Experiment:
        experiment = self.fresh(slug)
        if experiment.status != PAUSED:
            raise ActionRefused("only a paused test can be resumed")
        return self._transition(experiment, RUNNING, None, "resume", editor)

    def reopen(self, slug: str, editor: str) -> Experiment:
        experiment = self.fresh(slug)
        if experiment.status != DECIDED:
            raise ActionRefused("only a decided test can be reopened")
        return self._transition(experiment, RUNNING, None, "reopen", editor)

    def _transition(
        self, experiment: Experiment, status: str, winner: str | None, action: str, editor: str
    ) -> Experiment:
        now = self.clock()
        entry = {
            "action": action,
            "editor": editor,
            "at": now,
            "from": experiment.status,
            "status": status,
            "winner": winner,
            "stats": self.report(experiment.slug, experiment=experiment),
        }
        if not self.store.set_status(
            experiment.slug, status, winner, entry, expect=experiment.status, now=now
        ):
            raise ActionRefused("the test changed meanwhile; reload and try again")
        return self.fresh(experiment.slug)

    @property
    def minute_retention(self) -> int:
        """Seconds per-minute counts are kept."""
        return self.store.minute_ttl

    @property
    def hour_retention(self) -> int:
        """Seconds per-hour counts are kept."""
        return self.store.hour_ttl

    def audit(self, slug: str, limit: int = 100) -> list[dict]:
        return self.store.audit(slug, limit)

    def series(self, slug: str, resolution: str | None = None) -> dict:
        """Counts per interval since the experiment started, per variant.

        Minutes while the experiment is younger than the minute retention,
        hours after that.  Returns ``{"resolution", "interval_seconds",
        "variants", "points": [{"t", "impressions": [...], "clicks": [...]}]}``.
        """
        experiment = self.experiment(slug)
        now = self.clock()
        if resolution is None:
            young = now - experiment.created_at < self.store.minute_ttl
            resolution = "minute" if young else "hour"
        start = max(
            experiment.created_at,
            now - (self.store.minute_ttl if resolution == "minute" else self.store.hour_ttl),
        )
        points = []
        for started, counts in self.store.series(slug, start, now, resolution):
            impressions, clicks = counts_tuple(experiment.definition, counts)
            points.append({"t": started, "impressions": list(impressions), "clicks": list(clicks)})
        return {
            "experiment": slug,
            "resolution": resolution,
            "interval_seconds": 60 if resolution == "minute" else 3600,
            "variants": list(experiment.variant_ids),
            "points": points,
        }

    def health(self) -> tuple[bool, str]:
        """(Redis reachable, reason)."""
        try:
            self.store.ping()
        except StoreError as error:
            return False, f"redis: {error}"
        return True, "ok"
