"""The use cases: assign a headline, follow a click, report, decide.

Glues :mod:`abtest.store` (Redis), :mod:`abtest.bandit` (numpy) and
:mod:`abtest.stats` (scipy) over this process's :class:`~abtest.snapshot.Snapshot`
of the experiments.  No Flask here: the web layer turns HTTP into calls on
:class:`Service` and back, and sees only this module's types and exceptions
(:class:`~abtest.store.StoreError` when Redis can't be reached).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from . import metrics
from .breaker import CircuitBreaker, OutageLog
from .forks import reset_after_fork
from .model import (
    CLICK,
    CLICKS,
    DECIDED,
    DEFAULT_CARING,
    DRAFT,
    PAUSED,
    PUBLISHED,
    RUNNING,
    SCHEDULED,
    SERVED,
    VARIANT_IDS,
    Definition,
    Experiment,
    InvalidExperiment,
    check_measures,
    check_settings,
    refusal,
    seed_definition,
)
from .report import Excluded, ExperimentReport, Signals
from .snapshot import Entry, Snapshot, front_page_of, start_due
from .store import LATE, RATE_LIMITED, RedisStore, StoreError, counts_tuple
from .stratified import Stratified, stratify
from .tokens import (
    ClickToken,
    ClickTokens,
    ExpiredToken,
    InvalidToken,
    Visitor,
    VisitorCookies,
    cookie_records,
    cookie_visitor_id,
    visitor_ref,
)

__all__ = [
    "Service",
    "Assignment",
    "Served",
    "ClickOutcome",
    "UnknownExperiment",
    "ActionRefused",
    "InvalidLink",
    "StoreError",
    "MAX_ASSIGNMENTS",
    "client_hasher",
]

log = logging.getLogger(__name__)

#: At most this many assignments ride in the visitor cookie (about 30 bytes
#: each, far below the browsers' 4 kB per cookie); the oldest go first.
MAX_ASSIGNMENTS = 64

#: Why a reader was served uncounted when the service could not count them
#: (metrics' ``uncounted`` reasons; ``late`` is :data:`abtest.store.LATE`).
REDIS_UNAVAILABLE = "redis-unavailable"
CIRCUIT_OPEN = "circuit-open"


def client_hasher(secret: str) -> Callable[[str | None], str | None]:
    """The function naming a reader's address in the budgets: a keyed 72-bit
    BLAKE2b hash (12 URL-safe characters), cached.

    Keyed by the secret, so Redis holds no address and none can be recovered
    by hashing all 2^32 of them.  An IPv6 address counts by its /64, the
    block one subscriber gets: otherwise one client would have 2^64 budgets.
    None (no address known) is None: no budget.
    """
    key = hashlib.blake2b(secret.encode(), digest_size=32, person=b"abtest.clients").digest()

    @functools.lru_cache(maxsize=4096)
    def hashed(address: str | None) -> str | None:
        if not address:
            return None
        if ":" in address:
            try:
                network = ipaddress.IPv6Network(f"{address}/64", strict=False)
                address = str(network.network_address)
            except ValueError:
                pass  # not an address: hashed as it is
        digest = hashlib.blake2b(address.encode(), digest_size=9, key=key).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii")

    return hashed


class UnknownExperiment(LookupError):
    """No experiment has that slug."""


class ActionRefused(ValueError):
    """An action that does not apply in the experiment's current state, or to this reader."""


class InvalidLink(ValueError):
    """A click link this service did not make (forged, malformed)."""


class Assignment(NamedTuple):
    """The headline one visitor gets for one experiment on this request."""

    experiment: Experiment
    variant: str
    #: Signed click token, or None when a click would not be counted
    #: (paused, decided, bots, prefetches, or Redis unreachable).
    click_token: str | None
    #: Whether this visitor's impression was counted as seen already (their
    #: cookie says so): nothing is left for a seen beacon to report.
    seen: bool = False

    @property
    def headline(self) -> str:
        return self.experiment.definition.headline(self.variant)


class Served(NamedTuple):
    """What :meth:`Service.assign` gave a visitor."""

    #: The visitor as they leave: with every new assignment Redis counted (the
    #: same object when there is none).
    visitor: Visitor
    assignments: list[Assignment]


class ClickOutcome(NamedTuple):
    slug: str
    counted: bool


class Service:
    """The use cases, over one process's snapshot of the experiments."""

    #: A counted impression asks Redis for fresh counts (in the same round
    #: trip) when this worker's posterior is older than this (s): the
    #: posterior tracks traffic closely without rebuilding it per reader.
    COUNTS_MAX_AGE = 0.1

    #: A seen beacon's token must be younger than this (s): a slot is reported
    #: seen within an hour of its page being served, or not at all.  It bounds
    #: the seen markers: an hour of seen readers, not a day's.
    SEEN_WITHIN = 3600

    #: The share of the Redis timeout a counting script's deadline leaves for
    #: its reply to travel back: a script that counts just before its
    #: deadline must be heard before its reader gives up.
    REPLY_MARGIN = 0.1

    def __init__(
        self,
        store: RedisStore,
        click_tokens: ClickTokens,
        visitor_cookies: VisitorCookies,
        refresh_interval: float = 0.5,
        visitor_lifetime: int = 30 * 86_400,
        rng: np.random.Generator | None = None,
        clock: Callable[[], float] = time.time,
        deadlines: bool = True,
        breaker_backoff: float = 1.0,
        client_secret: str = "",
        quality_seconds: float = 15.0,
    ):
        """With ``deadlines``, each count carries its deadline: the store's
        client's socket timeout from now (less :attr:`REPLY_MARGIN`), when
        that client has one.  ``client_secret`` keys the hash of readers'
        addresses (:func:`client_hasher`)."""
        self.store = store
        self.click_tokens = click_tokens
        self.visitor_cookies = visitor_cookies
        #: Stops counting after a Redis failure; probes in the background.
        self.breaker = CircuitBreaker(breaker_backoff, lambda: self.store.ping())
        self.snapshot = Snapshot(store, refresh_interval, breaker=self.breaker)
        self.outage_log = OutageLog(log)
        # A click's de-duplication marker must outlive every token that
        # visitor can still present: their assignment (the cookie) plus the
        # lifetime of a token minted on its last day.
        self.click_marker_ttl = int(visitor_lifetime) + click_tokens.max_age
        # A seen marker only stops a replay of the token it counted, so it lives
        # as long as a token is taken for a seen beacon; the visitor's cookie
        # remembers the seen impression after that (a returning visitor's pages
        # ask for no beacon).
        self.seen_marker_ttl = min(self.SEEN_WITHIN, click_tokens.max_age)
        #: The engaged time (s) on the story page that makes a click a quality click.
        self.quality_seconds = float(quality_seconds)
        self.clock = clock
        self.deadlines = deadlines
        self.client_ref = client_hasher(client_secret)
        self._seeded_rng = rng
        self._rng: np.random.Generator | None = rng
        self._analyses: dict[tuple, dict] = {}
        self._stratified: dict[tuple, Stratified] = {}
        self._excluded: dict[str, dict[str, int]] = {}
        reset_after_fork(self)

    @classmethod
    def from_settings(cls, settings, connection) -> Service:
        """The service as ``settings`` configure it, over a Redis ``connection``
        (one with ``decode_responses=True``, see :func:`abtest.store.connect`)."""
        return cls(
            RedisStore(
                connection,
                settings.minute_retention,
                settings.hour_retention,
                budget_window=settings.budget_window,
                budget_impressions=settings.budget_impressions,
                budget_clicks=settings.budget_clicks,
            ),
            ClickTokens(settings.secret_key, settings.click_token_ttl),
            VisitorCookies(settings.secret_key),
            refresh_interval=settings.refresh_interval,
            visitor_lifetime=settings.visitor_days * 86_400,
            breaker_backoff=settings.breaker_backoff,
            client_secret=settings.secret_key,
            quality_seconds=settings.quality_seconds,
        )

    def _after_fork(self) -> None:
        # A forked child (a server's worker) draws its own random stream.
        self._rng = self._seeded_rng

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            # Seeded from the OS per process, so workers never share a stream.
            self._rng = np.random.default_rng()
        return self._rng

    def stop(self) -> None:
        """Stop this process's background threads (tests, shutdown)."""
        self.snapshot.stop()
        self.breaker.stop()

    def _deadline(self) -> int | None:
        """When a count sent now is too late to matter (its reader has stopped
        waiting for the reply), in Redis's clock."""
        timeout = self.store.timeout
        if not self.deadlines or timeout is None:
            return None
        return self.store.deadline(timeout * (1 - self.REPLY_MARGIN))

    def experiments(self) -> list[Experiment]:
        """Experiments as last read, newest first."""
        return self.snapshot.experiments()

    def front_page(self) -> list[Experiment]:
        """The stories on the front page (running, paused and decided, not archived),
        in the editors' order: newest first unless an editor moved them."""
        return self.snapshot.front_page()

    def experiment(self, slug: str) -> Experiment:
        entry = self.snapshot.entries().get(slug)
        if entry is None:
            raise UnknownExperiment(slug)
        return entry.experiment

    # -- readers ----------------------------------------------------------

    def read_visitor(self, cookie: str | None) -> Visitor:
        """The visitor a cookie names, or a new one (missing, forged or malformed)."""
        known = self.visitor_cookies.loads(cookie)
        return Visitor.new() if known is None else known

    def visitor_cookie(self, visitor: Visitor) -> str:
        """The signed cookie value for ``visitor``.

        It keeps only the assignments of experiments still running or paused
        (decided or deleted ones are dropped), at most :data:`MAX_ASSIGNMENTS`,
        the newest, so it stays small however many stories run.
        """
        assignments = visitor.assignments
        if len(assignments) > 1:  # a single assignment was just made: it is live
            live = {e.slug for e in self.experiments() if e.status != DECIDED}
            kept = [(slug, variant) for slug, variant in assignments.items() if slug in live]
            visitor = Visitor(visitor.id, dict(kept[-MAX_ASSIGNMENTS:]), visitor.seen)
        return self.visitor_cookies.dumps(visitor)

    def assign(
        self,
        visitor: Visitor,
        slugs: Sequence[str],
        count: bool,
        *,
        client: str | None = None,
        excluded: str | None = None,
    ) -> Served:
        """Headlines for ``visitor`` in each experiment, counting new impressions.

        ``count=False`` (bots, prefetches, HEAD requests) counts nothing and
        serves the visitor's own headline if they have one, else the default
        (``a``, or the winner once decided), with no click token; with
        ``excluded`` (``"bot"`` or ``"prefetch"``) each impression that would
        have been counted is tallied as excluded for that reason.  ``client``
        is the reader's address: it spends that address's impression budget
        in each experiment.  A new assignment joins the visitor returned only
        once Redis has counted it; if Redis can't be reached, answers after
        the deadline or the address is past its budget, the reader still gets
        a headline, uncounted.  At most one round trip.
        """
        entries = self.snapshot.entries()
        found = []
        for slug in slugs:
            entry = entries.get(slug)
            # A draft or a scheduled story is not there yet, for readers.
            if entry is None or entry.experiment.status not in PUBLISHED:
                raise UnknownExperiment(slug)
            found.append(entry)
        assigned = visitor.assignments
        # A headline to draw and count where the visitor has none of this story's.
        chosen: dict[str, str] = {}
        if count:
            for slug, entry in zip(slugs, found, strict=True):
                experiment = entry.experiment
                ids = experiment.definition.variant_ids
                if experiment.status == RUNNING and assigned.get(slug) not in ids:
                    chosen[slug] = ids[entry.posterior.choose(self.rng)]
        elif excluded is not None:
            self._exclude_impressions(found, assigned, excluded)
        if chosen:
            counted, new = self._count_impressions(entries, chosen, client)
            if new:
                visitor = visitor.with_assignments(new)
                assigned = visitor.assignments
        else:
            counted = {}

        assignments = []
        ref = None
        for slug, entry in zip(slugs, found, strict=True):
            experiment = counted.get(slug) or entry.experiment
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
                seen = visitor.seen
                assignments.append(
                    Assignment(experiment, variant, token, bool(seen) and slug in seen)
                )
        return Served(visitor, assignments)

    def _exclude_impressions(
        self, found: list[Entry], assigned: dict[str, str], reason: str
    ) -> None:
        """Tally the impressions a bot or prefetch would have made (no Redis call)."""
        for entry in found:
            experiment = entry.experiment
            if experiment.status == RUNNING and assigned.get(experiment.slug) is None:
                self.store.exclude(experiment.slug, "i", reason, experiment.default_variant)
                metrics.impressions("excluded", reason)

    def _count_impressions(
        self, entries: dict[str, Entry], chosen: dict[str, str], client: str | None
    ) -> tuple[dict[str, Experiment], dict[str, str]]:
        """Count the ``chosen`` headlines in one round trip.

        Returns each experiment as Redis's reply left it, and the assignments
        Redis counted.
        """
        if not self.breaker.allow():
            metrics.impressions("uncounted", CIRCUIT_OPEN, len(chosen))
            return {}, {}
        visits = list(chosen.items())
        oldest = self.snapshot.monotonic() - self.COUNTS_MAX_AGE
        started = time.perf_counter()
        try:
            results = self.store.record_impressions(
                visits,
                now=self.clock(),
                with_counts=[entries[slug].built_at < oldest for slug, _ in visits],
                client=self.client_ref(client),
                deadline=self._deadline(),
            )
        except StoreError as error:
            metrics.redis_seconds("impression", time.perf_counter() - started)
            self.breaker.failed(error)
            metrics.impressions("uncounted", REDIS_UNAVAILABLE, len(visits))
            self.outage_log.warning("impression not counted, Redis unreachable: %s", error)
            return {}, {}
        metrics.redis_seconds("impression", time.perf_counter() - started)
        self.breaker.succeeded()
        counted, new = {}, {}
        for (slug, variant), result in zip(visits, results, strict=True):
            if result.status:
                counted[slug] = self.snapshot.update(
                    entries[slug], result.status, result.winner, result.counts
                )
            if result.counted:
                new[slug] = variant
                metrics.impressions("counted")
            elif result.reason == RATE_LIMITED:
                metrics.impressions("excluded", RATE_LIMITED)
            elif result.reason:  # late, or the text was edited a moment ago
                metrics.impressions("uncounted", result.reason)
        if any(result.reason == REDIS_UNAVAILABLE for result in results):
            # A Redis Cluster node down: its experiments uncounted, the others counted.
            self.breaker.failed("a Redis Cluster node did not answer")
        return counted, new

    def read_click(
        self,
        token: str,
        cookie: str | None,
        count: bool = True,
        *,
        client: str | None = None,
        excluded: str | None = None,
    ) -> ClickOutcome:
        """Follow a click link: which story it leads to, and whether the click counted.

        ``token`` is the link's click token as sent and ``cookie`` the
        clicking browser's visitor cookie; ``client`` the reader's address
        (it spends that address's click budget).  A genuine link that
        expired, a click that is not to be counted (``count=False``: bots,
        prefetches, HEAD requests; with ``excluded`` naming why, the click is
        tallied as excluded), a click past the address's budget and a click
        Redis could not take lead to the story uncounted.  Raises
        :class:`InvalidLink` for a link this service did not make,
        :class:`UnknownExperiment`, or :class:`ActionRefused` when the link
        was made for another browser or another headline.
        """
        try:
            click_token = self.click_tokens.loads(token)
        except ExpiredToken as expired:
            if expired.token is None:
                raise InvalidLink("this link is not valid") from None
            return self._uncounted(expired.token.slug)
        except InvalidToken:
            raise InvalidLink("this link is not valid") from None
        if not count:
            experiment = self.experiment(click_token.slug)  # raises UnknownExperiment
            if (
                excluded is not None
                and experiment.status == RUNNING
                and click_token.variant in experiment.variant_ids
            ):
                self.store.exclude(click_token.slug, "c", excluded, click_token.variant)
                metrics.clicks("excluded", excluded)
            return ClickOutcome(slug=click_token.slug, counted=False)
        try:
            return self._count_click(click_token, cookie, client)
        except StoreError as error:  # no snapshot to check the link against, and no Redis
            self.outage_log.warning("click not counted, Redis unreachable: %s", error)
            return ClickOutcome(slug=click_token.slug, counted=False)

    def _uncounted(self, slug: str) -> ClickOutcome:
        self.experiment(slug)  # raises UnknownExperiment
        return ClickOutcome(slug=slug, counted=False)

    def _count_click(
        self, token: ClickToken, cookie: str | None, client: str | None
    ) -> ClickOutcome:
        """Count a click for a genuine, unexpired token.

        A token is signed only for a counted impression and names (by
        :func:`~abtest.tokens.visitor_ref`) the visitor it was shown to; the
        cookie's visitor id must hash to that ref, which only that visitor's
        cookie can do, so its signature need not be checked here.  The
        cookie must also list the token's variant: a check of the service's
        own consistency, since no one else can sign a token.  The click's
        de-duplication marker is the token's visitor ref, so Redis holds no
        visitor id.
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
        if not self.breaker.allow():
            metrics.clicks("uncounted", CIRCUIT_OPEN)
            return ClickOutcome(slug=token.slug, counted=False)
        started = time.perf_counter()
        try:
            result = self.store.record_click(
                token.slug,
                token.variant,
                token.visitor_ref,
                self.click_marker_ttl,
                seen_ttl=self.seen_marker_ttl,
                now=self.clock(),
                client=self.client_ref(client),
                deadline=self._deadline(),
            )
        except StoreError as error:
            # The reader still gets the story; the click is lost, not faked.
            metrics.redis_seconds("click", time.perf_counter() - started)
            self.breaker.failed(error)
            metrics.clicks("uncounted", REDIS_UNAVAILABLE)
            self.outage_log.warning("click not counted, Redis unreachable: %s", error)
            return ClickOutcome(slug=token.slug, counted=False)
        metrics.redis_seconds("click", time.perf_counter() - started)
        self.breaker.succeeded()
        if result.counted:
            metrics.clicks("counted")
        elif result.reason == RATE_LIMITED:
            metrics.clicks("excluded", RATE_LIMITED)
        elif result.reason == LATE:
            metrics.clicks("uncounted", LATE)
        return ClickOutcome(slug=token.slug, counted=result.counted)

    def record_seen(
        self, tokens: Sequence[str], visitor: Visitor, *, client: str | None = None
    ) -> tuple[int, Visitor]:
        """Count the impressions a seen beacon reports, each once: the number counted,
        and the visitor with every reported impression marked seen (for their cookie).

        ``tokens`` are the assignments' click tokens, which the beacon sends
        back: each names the story, the headline and (by its ref) the visitor,
        and only this service can sign one, so a beacon cannot name a headline
        nobody was served.  ``visitor`` is the one the request's signed cookie
        names: their id must hash to each token's ref (a token copied out of a
        page counts for no one else) and their assignments list the token's
        headline.  Every token is checked before anything is counted: one
        forged or foreign token refuses the beacon (:class:`InvalidLink`,
        :class:`ActionRefused`).  Impressions the cookie says were seen, tokens
        older than :attr:`SEEN_WITHIN`, stories no longer running, repeats (the
        seen markers, which last as long) and beacons past the address's
        impression budget count nothing.
        """
        ref = visitor_ref(visitor.id)
        seen = {}
        for token in tokens:
            try:
                parsed = self.click_tokens.loads(token, max_age=self.seen_marker_ttl)
            except ExpiredToken as expired:
                if expired.token is None:
                    metrics.seen("refused", "forged")
                    raise InvalidLink("this beacon's token is not valid") from None
                continue
            except InvalidToken:
                metrics.seen("refused", "forged")
                raise InvalidLink("this beacon's token is not valid") from None
            if (
                not hmac.compare_digest(ref, parsed.visitor_ref)
                or visitor.assignments.get(parsed.slug) != parsed.variant
            ):
                metrics.seen("refused", "foreign")
                raise ActionRefused("this beacon's token was not issued to this browser")
            if parsed.slug in visitor.seen:
                metrics.seen("uncounted", "repeat")
            else:
                seen[parsed.slug] = parsed
        entries = self.snapshot.entries()
        wanted = [
            (slug, token.variant, token.visitor_ref)
            for slug, token in seen.items()
            if slug in entries
            and entries[slug].experiment.status == RUNNING
            and token.variant in entries[slug].experiment.variant_ids
        ]
        if not wanted:
            return 0, visitor
        if not self.breaker.allow():
            metrics.seen("uncounted", CIRCUIT_OPEN, len(wanted))
            return 0, visitor
        try:
            results = self.store.record_seen(
                wanted,
                self.seen_marker_ttl,
                now=self.clock(),
                client=self.client_ref(client),
                deadline=self._deadline(),
            )
        except StoreError as error:
            self.breaker.failed(error)
            metrics.seen("uncounted", REDIS_UNAVAILABLE, len(wanted))
            self.outage_log.warning("seen impressions not counted, Redis unreachable: %s", error)
            return 0, visitor
        self.breaker.succeeded()
        marked = []
        for (slug, _, _), result in zip(wanted, results, strict=True):
            if result.counted:
                metrics.seen("counted")
                marked.append(slug)
            elif result.reason == RATE_LIMITED:
                metrics.seen("excluded", RATE_LIMITED)
            elif result.status != RUNNING:
                metrics.seen("uncounted", result.reason or "not-running")
            elif not result.reason:
                metrics.seen("uncounted", "repeat")
                marked.append(slug)  # counted before (by a beacon or a click)
            else:
                metrics.seen("uncounted", result.reason)
        return len([r for r in results if r.counted]), (
            visitor.with_seen(marked) if marked else visitor
        )

    def record_engaged(self, slug: str, cookie: str | None, seconds: float) -> bool:
        """Count a quality click: the visitor whose click on ``slug`` was counted
        read the story for ``seconds`` of engaged time, at least
        :attr:`quality_seconds`.  Once per visitor and story; whether counted.

        The visitor is the cookie's visitor id (only their cookie carries it,
        so it needs no signature check, as for a click); the headline is the
        one whose click was counted for them.  Raises :class:`UnknownExperiment`.
        """
        experiment = self.experiment(slug)
        visitor_id = cookie_visitor_id(cookie)
        if visitor_id is None or seconds < self.quality_seconds or experiment.status != RUNNING:
            return False
        if not self.breaker.allow():
            metrics.quality("uncounted", CIRCUIT_OPEN)
            return False
        try:
            variant, reason = self.store.record_engaged(
                slug,
                visitor_ref(visitor_id),
                self.click_marker_ttl,
                now=self.clock(),
                deadline=self._deadline(),
            )
        except StoreError as error:
            self.breaker.failed(error)
            metrics.quality("uncounted", REDIS_UNAVAILABLE)
            self.outage_log.warning("quality click not counted, Redis unreachable: %s", error)
            return False
        self.breaker.succeeded()
        if variant is None:
            metrics.quality("uncounted", reason or "")
            return False
        metrics.quality("counted")
        return True

    # -- editors ----------------------------------------------------------

    def fresh(self, slug: str) -> Experiment:
        """The experiment read from Redis now, not from the snapshot (with its exclusions,
        for :meth:`report`)."""
        found, excluded = self.store.load_with_excluded([slug])
        if not found:
            raise UnknownExperiment(slug)
        found = start_due(self.store, found)  # a scheduled start that has come, as readers see it
        self._excluded.update(excluded)
        self.snapshot.put(*found)
        return found[0]

    def fresh_all(self) -> list[Experiment]:
        """Every experiment read from Redis now (one round trip), newest first."""
        experiments, excluded = self.store.load_with_excluded(self.store.slugs())
        experiments = start_due(self.store, experiments)
        self._excluded.update(excluded)
        self.snapshot.put(*experiments)
        return experiments

    def report(
        self,
        slug: str,
        alpha: float = 0.05,
        experiment: Experiment | None = None,
        stratified: bool = True,
    ) -> ExperimentReport:
        """The stats report for one experiment, with its identity and variants named.

        ``stratified=False`` leaves out the CTRs by hour (``None``), and with
        them a read of the hourly series: for lists of many experiments.
        """
        # scipy is imported by the first report (`abtest serve` imports it before
        # forking its workers), never by the reader path itself.
        from . import stats

        experiment = experiment or self.fresh(slug)
        key = (
            experiment.impressions,
            experiment.clicks,
            alpha,
            experiment.allocation,
            experiment.caring,
        )
        analysis = self._analyses.get(key)
        if analysis is None:
            # The report depends on the counts and the settings alone, and is
            # frozen: an editor's page polling a quiet test, or several editors
            # on one test, share it.
            analysis = stats.build_report(
                experiment.impressions,
                experiment.clicks,
                alpha=alpha,
                mode=experiment.allocation,
                relative_threshold=experiment.caring,
            )
            if len(self._analyses) >= 256:
                self._analyses.clear()
            self._analyses[key] = analysis
        excluded = self._excluded.get(slug)
        if excluded is None:
            excluded = self._excluded[slug] = self.store.excluded([slug])[slug]
        return ExperimentReport.of(
            experiment,
            analysis,
            excluded=tuple(Excluded.from_hash(excluded, v) for v in experiment.variant_ids),
            stratified=self._stratify(experiment) if stratified else None,
            signals=self._signals(experiment),
        )

    def _signals(self, experiment: Experiment) -> Signals:
        """Every count of ``experiment``, which the statistics use, and the seen check."""
        from . import stats

        served = experiment.served or experiment.impressions
        seen = experiment.seen or (0,) * len(served)
        clicks = experiment.all_clicks or experiment.clicks
        key = ("signals", served, seen, clicks)
        check = self._analyses.get(key)
        if check is None:
            if len(self._analyses) >= 256:
                self._analyses.clear()
            check = self._analyses[key] = stats.seen_check(served, seen, clicks)
        return Signals(
            reward=experiment.reward,
            denominator=experiment.denominator,
            served=served,
            seen=seen,
            clicks=clicks,
            quality=experiment.quality_clicks or (0,) * len(served),
            check=check,
        )

    def _stratify(self, experiment: Experiment) -> Stratified:
        """The CTRs stratified by hour, from the hourly series (one pipelined read).

        Cached by the counts: while they stand still, so does every hour's.
        """
        key = (
            experiment.slug,
            experiment.impressions,
            experiment.clicks,
            experiment.reward,
            experiment.denominator,
        )
        found = self._stratified.get(key)
        if found is not None:
            return found
        variants = len(experiment.variant_ids)
        hours: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        if any(experiment.impressions):
            now = self.clock()
            start = max(experiment.created_at, now - self.store.hour_ttl)
            for _, counts in self.store.series(experiment.slug, start, now, "hour"):
                hours.append(
                    counts_tuple(
                        experiment.definition, counts, experiment.reward, experiment.denominator
                    )
                )
        # A click counts in the hour it happens, its impression in the hour it was
        # served: a quiet hour can hold more clicks than impressions, capped here.
        found = stratify(
            [[shown[v] for shown, _ in hours] for v in range(variants)],
            [[min(clicked[v], shown[v]) for shown, clicked in hours] for v in range(variants)],
        )
        if len(self._stratified) >= 256:
            self._stratified.clear()
        self._stratified[key] = found
        return found

    def create(
        self,
        definition: Definition,
        allocation: str = CLICKS,
        caring: float = DEFAULT_CARING,
        *,
        status: str = RUNNING,
        starts_at: float | None = None,
        editor: str | None = None,
        reward: str = CLICK,
        denominator: str = SERVED,
    ) -> bool:
        """Store a new experiment; False if the slug is taken.

        ``allocation`` is the allocation mode (``"clicks"``: maximize clicks;
        ``"winner"``: find the winner) and ``caring`` the threshold of caring,
        a share of the leader's CTR; raises
        :class:`~abtest.model.InvalidExperiment` for bad ones, and for a
        ``starts_at`` that is not in the future.  ``status`` is ``running``
        (readers are tested from now on), ``draft`` (readers can't reach it)
        or ``scheduled`` (it goes live by itself at ``starts_at``, Unix
        seconds).  ``reward`` and ``denominator`` choose what its statistics
        count (:func:`~abtest.model.check_measures`).  With ``editor``, the
        creation is kept in the audit log.
        """
        allocation, caring = check_settings(allocation, caring)
        reward, denominator = check_measures(reward, denominator)
        if status not in (DRAFT, SCHEDULED, RUNNING):
            raise InvalidExperiment(
                {"status": f"create it running, as a draft or scheduled, not {status!r}"}
            )
        now = self.clock()
        starts_at = self._check_start(starts_at, now) if status == SCHEDULED else None
        created = self.store.create(
            definition,
            now=now,
            allocation=allocation,
            caring=caring,
            status=status,
            starts_at=starts_at,
            reward=reward,
            denominator=denominator,
        )
        if created:
            if editor is not None:
                entry = self._entry("create", editor, now, None, status, None)
                if starts_at is not None:
                    entry["starts_at"] = starts_at
                self.store.append_audit(definition.slug, entry)
            self.fresh(definition.slug)
        return created

    #: The latest start time a schedule may name: a year ahead (a later one is a typo).
    MAX_SCHEDULE_AHEAD = 366 * 86_400

    def _check_start(self, starts_at: float | None, now: float) -> float:
        """A start time from an editor: a finite moment in the coming year."""
        if starts_at is None or not math.isfinite(starts_at):
            raise InvalidExperiment({"starts_at": "give the start time"})
        if starts_at <= now:
            raise InvalidExperiment(
                {
                    "starts_at": "that start time has passed (it is now "
                    + time.strftime("%d %b %Y %H:%M UTC", time.gmtime(now))
                    + "): choose a later one, or start the test now"
                }
            )
        if starts_at > now + self.MAX_SCHEDULE_AHEAD:
            raise InvalidExperiment({"starts_at": "choose a start time within the coming year"})
        return float(starts_at)

    def ensure_seed(self) -> bool:
        """Load the bundled seed story unless it is there already (counts untouched)."""
        return self.store.create(seed_definition(), now=self.clock())

    def _allowed(self, slug: str, action: str) -> Experiment:
        """The experiment, read now, if ``action`` applies to it (else :class:`ActionRefused`)."""
        experiment = self.fresh(slug)
        refused = refusal(experiment, action)
        if refused:
            raise ActionRefused(refused)
        return experiment

    def decide(self, slug: str, winner: str, editor: str) -> Experiment:
        """Choose the winner: every reader gets it from the next request on; counting stops."""
        experiment = self.fresh(slug)
        if winner not in experiment.variant_ids:
            raise ActionRefused(f"there is no variant {winner!r}")
        experiment = self._allowed(slug, "decide")
        return self._transition(experiment, DECIDED, winner, "decide", editor)

    def pause(self, slug: str, editor: str) -> Experiment:
        """Pause: the story stays on the front page and at its address, every reader
        gets headline ``a`` (a reader's own headline comes back on resume) and
        nothing is counted."""
        experiment = self._allowed(slug, "pause")
        return self._transition(experiment, PAUSED, None, "pause", editor)

    def resume(self, slug: str, editor: str) -> Experiment:
        experiment = self._allowed(slug, "resume")
        return self._transition(experiment, RUNNING, None, "resume", editor)

    def reopen(self, slug: str, editor: str) -> Experiment:
        experiment = self._allowed(slug, "reopen")
        return self._transition(experiment, RUNNING, None, "reopen", editor)

    # -- an experiment's life: drafts, schedules, edits, archive, order -----

    #: How long counting waits after an edit (s): longer than any worker that
    #: serves readers keeps its copy of the old text (its refresher reads
    #: every experiment again every refresh interval, at most 1 s, in one
    #: round trip; counting and the refresher need the same Redis, so while
    #: readers are counted the copies are fresh), so no impression of the old
    #: text is counted for the new one.
    EDIT_QUIET = 3.0

    def _entry(
        self, action: str, editor: str, now: float, before: str | None, status: str, winner
    ) -> dict:
        """An audit entry with no statistics (the actions that count nothing and change none)."""
        return {
            "action": action,
            "editor": editor,
            "at": now,
            "from": before,
            "status": status,
            "winner": winner,
        }

    def _changed(self, done: bool, slug: str) -> Experiment:
        if not done:
            raise ActionRefused("the test changed meanwhile; reload and try again")
        return self.fresh(slug)

    def start(self, slug: str, editor: str) -> Experiment:
        """Put a draft or scheduled experiment live now: on the front page, first,
        and readers are tested from the next request on."""
        experiment = self._allowed(slug, "start")
        now = self.clock()
        entry = self._entry("start", editor, now, experiment.status, RUNNING, None)
        return self._changed(self.store.start(slug, entry, now=now), slug)

    def schedule(self, slug: str, starts_at: float, editor: str) -> Experiment:
        """Schedule a draft (or move a scheduled start) to ``starts_at`` (Unix seconds).

        The story goes live by itself then, within one refresh interval on
        every worker.  Raises :class:`~abtest.model.InvalidExperiment` for a
        start time that is not in the coming year.
        """
        experiment = self._allowed(slug, "schedule")
        now = self.clock()
        starts_at = self._check_start(starts_at, now)
        entry = self._entry("schedule", editor, now, experiment.status, SCHEDULED, None)
        entry["starts_at"] = starts_at
        return self._changed(self.store.schedule(slug, starts_at, entry, now=now), slug)

    def unschedule(self, slug: str, editor: str) -> Experiment:
        """Make a scheduled experiment a draft again: it will not go live by itself."""
        self._allowed(slug, "unschedule")
        now = self.clock()
        entry = self._entry("unschedule", editor, now, SCHEDULED, DRAFT, None)
        return self._changed(self.store.schedule(slug, None, entry, now=now), slug)

    def edit(self, slug: str, definition: Definition, editor: str) -> Experiment:
        """Replace the story's title, headlines and body, while nobody has seen it.

        Applies to drafts, scheduled experiments and running or paused ones
        with no impression counted; refused (:class:`ActionRefused`) once one
        is, since the counts would then mix two texts, and once a winner is
        chosen.  The whole previous text is kept in the audit entry.  Readers
        get the new text within a refresh interval; counting waits
        :attr:`EDIT_QUIET` seconds, so that no worker counts its copy of the
        old text.
        """
        if definition.slug != slug:
            raise InvalidExperiment({"slug": "the slug can't change; create a new experiment"})
        experiment = self._allowed(slug, "edit")
        previous = experiment.definition
        if definition == previous:
            raise ActionRefused("the text is the same as before")
        now = self.clock()
        entry = self._entry("edit", editor, now, experiment.status, experiment.status, None)
        entry["changed"] = _changes(previous, definition)
        entry["text_from"] = previous.to_json()
        why = self.store.edit(definition, previous, self.EDIT_QUIET, entry, now=now)
        if why == "missing":
            raise UnknownExperiment(slug)
        if why == "changed":
            raise ActionRefused(
                "the story was changed meanwhile, by another editor; reload and edit it again"
            )
        if why is not None:
            raise ActionRefused(refusal(self.fresh(slug), "edit") or "the test changed meanwhile")
        return self.fresh(slug)

    def archive(self, slug: str, editor: str) -> Experiment:
        """Archive a decided or paused experiment: off the front page and the
        dashboard's main list; its address still serves its story (the winner,
        or headline ``a`` if paused), so old links work."""
        experiment = self._allowed(slug, "archive")
        now = self.clock()
        entry = self._entry("archive", editor, now, experiment.status, experiment.status, None)
        entry["winner"] = experiment.winner
        return self._changed(self.store.archive(slug, True, entry, now=now), slug)

    def unarchive(self, slug: str, editor: str) -> Experiment:
        """Bring an archived experiment back, as it was, to its old place on the front page."""
        experiment = self._allowed(slug, "unarchive")
        now = self.clock()
        entry = self._entry("unarchive", editor, now, experiment.status, experiment.status, None)
        entry["winner"] = experiment.winner
        return self._changed(self.store.archive(slug, False, entry, now=now), slug)

    def front_page_order(self) -> list[Experiment]:
        """The front page's stories as Redis holds them now, in their order."""
        return front_page_of(self.fresh_all())

    def move(self, slug: str, position: int, editor: str) -> Experiment:
        """Put the story at ``position`` (1: the top) on the front page.

        Only the moved story's rank changes (to between its new neighbours'),
        so new stories still come first, and every worker has the new order
        within its refresh interval.  A position past the end is the end.
        """
        stories = self.front_page_order()
        experiment = next((e for e in stories if e.slug == slug), None)
        if experiment is None:
            self._allowed(slug, "move")  # says why it is not on the front page
            raise ActionRefused("the story is not on the front page")
        was = stories.index(experiment) + 1
        position = min(max(int(position), 1), len(stories))
        if position == was:
            raise ActionRefused(f"the story is at position {was} already")
        others = [e for e in stories if e.slug != slug]
        above = others[position - 2].order if position > 1 else None
        below = others[position - 1].order if position <= len(others) else None
        now = self.clock()
        entry = self._entry("move", editor, now, experiment.status, experiment.status, None)
        entry |= {"winner": experiment.winner, "position_from": was, "position": position}
        rank = _between(above, below)
        if rank is None:  # no room between equal or adjacent ranks: number them all again
            order = [*others[: position - 1], experiment, *others[position - 1 :]]
            top = max(e.order for e in stories)
            for index, story in enumerate(order):
                if story is not experiment:
                    self.store.set_rank(story.slug, top - index, None, now=now)
            rank = top - order.index(experiment)
        if not self.store.set_rank(slug, rank, entry, now=now):
            raise UnknownExperiment(slug)
        return self.fresh(slug)

    def set_settings(
        self,
        slug: str,
        allocation: str,
        caring: float,
        editor: str,
        reward: str | None = None,
        denominator: str | None = None,
    ) -> Experiment:
        """Change the allocation mode, the threshold of caring and (unless None)
        the reward and the denominator (audited).

        New readers are allocated by the new settings from this worker's next
        request on, and every worker's within its refresh interval; readers
        already assigned keep their headline.  Every count is kept whatever
        the reward and denominator, so changing them re-reads the whole test
        the new way.  Raises :class:`~abtest.model.InvalidExperiment` for bad
        values and :class:`ActionRefused` when nothing would change.
        """
        allocation, caring = check_settings(allocation, caring)
        experiment = self.fresh(slug)
        reward, denominator = check_measures(
            experiment.reward if reward is None else reward,
            experiment.denominator if denominator is None else denominator,
        )
        before = (experiment.allocation, experiment.caring, experiment.reward)
        if (allocation, caring, reward, denominator) == (*before, experiment.denominator):
            raise ActionRefused("the test has these settings already")
        now = self.clock()
        entry = {
            "action": "settings",
            "editor": editor,
            "at": now,
            "from": experiment.status,
            "status": experiment.status,
            "winner": experiment.winner,
            "settings_from": {
                "allocation": experiment.allocation,
                "caring": experiment.caring,
                "reward": experiment.reward,
                "denominator": experiment.denominator,
            },
            "settings": {
                "allocation": allocation,
                "caring": caring,
                "reward": reward,
                "denominator": denominator,
            },
            "stats": self.report(experiment.slug, experiment=experiment).to_json(),
        }
        if not self.store.set_settings(
            slug, allocation, caring, entry, now=now, reward=reward, denominator=denominator
        ):
            raise UnknownExperiment(slug)
        return self.fresh(slug)

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
            "stats": self.report(experiment.slug, experiment=experiment).to_json(),
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
            impressions, clicks = counts_tuple(
                experiment.definition, counts, experiment.reward, experiment.denominator
            )
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


def _between(above: float | None, below: float | None) -> float | None:
    """A front-page rank between two neighbours' (None: no neighbour on that side),
    or None when there is no room (equal ranks, or too close for a float)."""
    if above is None:
        return below + 0.001  # the top: barely above, so stories going live later still lead
    if below is None:
        return above - 1.0
    middle = (above + below) / 2
    return middle if below < middle < above else None


def _changes(before: Definition, after: Definition) -> list[str]:
    """What an edit changed, in words: "title", "headline B", "headline D added", "story"."""
    changed = ["title"] if before.title != after.title else []
    for index in range(max(len(before.headlines), len(after.headlines))):
        old = before.headlines[index] if index < len(before.headlines) else None
        new = after.headlines[index] if index < len(after.headlines) else None
        if old != new:
            word = " added" if old is None else " removed" if new is None else ""
            changed.append(f"headline {VARIANT_IDS[index].upper()}{word}")
    if before.body != after.body:
        changed.append("story")
    return changed
