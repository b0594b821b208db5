"""RedisStore: experiments and their counts in Redis.

Every count is written by one Lua script (:mod:`abtest.scripts`) in one
atomic step: the test's totals, the per-minute and per-hour series, the
client's budget and the click de-duplication marker move together or not at
all, and a script that runs after its deadline writes nothing.  Bots and
prefetches are tallied here in memory and added by :meth:`RedisStore.flush_excluded`
(the background refresher's), never on a reader's request.  The counting
scripts go out on the counting connections (:mod:`abtest.counting`); every
other command through the redis-py client.  Key names come from
:mod:`abtest.keys`.  Every redis-py error leaves this module as
:class:`StoreError`: nothing above the store sees a redis type.  No Flask
and no numpy here.

The same store runs on one server, a Sentinel-watched primary or a Redis
Cluster (:func:`connect`).  On a cluster every key of one experiment shares
its hash tag, so each script and each experiment's reads stay on one slot;
what spans experiments is a pipeline, which redis-py splits into one packet
per node, sent together; and the experiments index is one key, read and
written on its own (docs/scaling.md).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from . import keys, redis_urls, scripts
from .counting import ClusterCountingConnections, CountingConnections
from .forks import reset_after_fork
from .model import (
    ALLOCATIONS,
    CLICK,
    CLICKS,
    DECIDED,
    DEFAULT_CARING,
    DENOMINATORS,
    QUALITY,
    REWARDS,
    RUNNING,
    SEEN,
    SERVED,
    Definition,
    Experiment,
)

__all__ = [
    "RedisStore",
    "connect",
    "REDIS_ERRORS",
    "counts_tuple",
    "ImpressionResult",
    "ClickResult",
    "StoreError",
    "translated_errors",
    "LATE",
    "RATE_LIMITED",
    "UNAVAILABLE",
]


class StoreError(Exception):
    """Redis could not be reached, or refused a command (the message says which)."""


#: What redis-py raises: its errors, and the cluster client's own (a slot no
#: node serves, a cluster that can't be reached), which are not RedisErrors.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)

#: Tries of a cluster command that failed on a node (each after re-reading the
#: slot map): enough to follow a failover the cluster has finished, where
#: redis-py's default of ten would hold a request for ten timeouts.
CLUSTER_RETRIES = 2


def connect(url: str, timeout: float = 0.5) -> redis.Redis | RedisCluster:
    """A client for ``url`` as the store expects it: one server (``redis://``,
    ``rediss://``, ``unix://``), a Redis Cluster (``redis+cluster://``) or a
    Sentinel-watched primary (``redis+sentinel://``); see :mod:`abtest.redis_urls`.

    Raises :class:`~abtest.redis_urls.InvalidRedisURL` (a ValueError) for any
    other URL, and :class:`StoreError` when a cluster can't be reached: a
    cluster client learns the slot map when it is made.
    """
    options: dict = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
    }
    if redis_urls.parse(url).kind == "cluster":
        options["retry"] = Retry(NoBackoff(), CLUSTER_RETRIES)
    try:
        return redis_urls.client_for(url, **options)
    except REDIS_ERRORS as error:
        raise StoreError(f"the Redis Cluster can't be reached: {error}") from error


#: Why a running experiment's impression or click was not counted: the
#: script ran after its deadline (nothing written), or the client had spent
#: its budget (tallied as excluded).
LATE = "late"
RATE_LIMITED = "rate-limited"
#: Why an impression was not counted on a Redis Cluster with a node down: that
#: experiment's node did not answer, while the others' counted (the service's
#: metrics reason of the same name).
UNAVAILABLE = "redis-unavailable"


class ImpressionResult(NamedTuple):
    """What Redis said when asked to count an impression."""

    status: str  # "" when the experiment does not exist, or its node did not answer
    winner: str | None
    #: The counts hash after the write (fresh posterior input), when asked for.
    counts: dict[str, int] | None
    #: Why a running experiment's impression was not counted (:data:`LATE`,
    #: :data:`RATE_LIMITED`, :data:`UNAVAILABLE`); "" otherwise.
    reason: str = ""

    @property
    def counted(self) -> bool:
        return self.status == RUNNING and not self.reason


class ClickResult(NamedTuple):
    status: str
    counted: bool
    #: Why a click on a running experiment was not counted when it was not a
    #: repeat: :data:`LATE` or :data:`RATE_LIMITED`; "" otherwise.
    reason: str = ""


def _impression_result(reply: str | list | Exception) -> ImpressionResult:
    if isinstance(reply, Exception):  # a cluster node that did not answer
        return ImpressionResult(status="", winner=None, counts=None, reason=UNAVAILABLE)
    if isinstance(reply, str):
        return ImpressionResult(status=reply, winner=None, counts=None)
    if len(reply) > 3:  # running, not counted
        counts = _flat_to_counts(reply[2]) if reply[2] else None
        return ImpressionResult(reply[0], None, counts, reply[3])
    return ImpressionResult(
        status=reply[0],
        winner=reply[1] or None,
        counts=_flat_to_counts(reply[2]) if len(reply) > 2 else None,
    )


def _click_result(reply: str | int | list | Exception) -> ClickResult:
    """A click or seen script's reply (a cluster node that did not answer: its error)."""
    if isinstance(reply, Exception):
        return ClickResult(status="", counted=False, reason=UNAVAILABLE)
    if isinstance(reply, str):
        return ClickResult(status=reply, counted=False)
    if isinstance(reply, list):
        return ClickResult(status=RUNNING, counted=False, reason=reply[1])
    return ClickResult(status=RUNNING, counted=bool(reply))


def _flat_to_counts(flat: Sequence[str]) -> dict[str, int]:
    return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}


def translated_errors(method):
    """``method`` with redis-py's errors raised as :class:`StoreError`."""

    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except REDIS_ERRORS as error:
            raise StoreError(str(error)) from error

    return call


class RedisStore:
    """Experiments, counts and series in one Redis database (or one Redis Cluster).

    ``connection`` must decode responses (see :func:`connect`).  The budgets
    (counted impressions and clicks per client and experiment per
    ``budget_window`` seconds; 0: none) apply to the counts that name a
    client.
    """

    #: Clock offsets kept (one per :meth:`load`): the largest is used.
    OFFSETS_KEPT = 8

    def __init__(
        self,
        connection: redis.Redis,
        minute_ttl: int,
        hour_ttl: int,
        budget_window: int = 3600,
        budget_impressions: int = 0,
        budget_clicks: int = 0,
        clock: Callable[[], float] = time.time,
    ):
        """``clock`` is this host's wall clock, for :attr:`clock_offset` (tests skew it)."""
        self.minute_ttl = int(minute_ttl)
        self.hour_ttl = int(hour_ttl)
        self.budget_window = int(budget_window)
        self.budget_impressions = int(budget_impressions)
        self.budget_clicks = int(budget_clicks)
        self.clock = clock
        #: Whether Redis expires hash fields (HEXPIRE, 7.4 and later); None until asked.
        self.field_ttl: bool | None = None
        #: Redis's clock minus this host's, in seconds: a lower bound (see :meth:`load`).
        self.clock_offset = 0.0
        self._offsets: collections.deque[float] = collections.deque(maxlen=self.OFFSETS_KEPT)
        self._counting: CountingConnections | ClusterCountingConnections | None = None
        # The index as last read: load_all reads these experiments with it.
        self._listed: list[str] = []
        self.redis = connection
        # Each slug's definition with the JSON it was parsed from: a refresh
        # reuses the same object while the JSON is unchanged, so readers' page
        # cache (keyed by definition) matches by identity.
        self._definitions: dict[str, tuple[str, Definition]] = {}
        # The six keys every count touches, for the current minute and budget window.
        self._count_keys_cache: dict[tuple[str, int, int], tuple[tuple[str, ...], ...]] = {}
        # Bots and prefetches seen since the last flush: (slug, field) -> n.
        self._excluded: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        # The parent's tallies are the parent's to flush.
        self._excluded = {}
        self._lock = threading.Lock()

    @property
    def redis(self) -> redis.Redis | RedisCluster:
        """The client every command goes through (the counting scripts on its connections)."""
        return self._redis

    @redis.setter
    def redis(self, client: redis.Redis | RedisCluster) -> None:
        if self._counting is not None:
            self._counting.close()
        self._redis = client
        #: Whether the client is a Redis Cluster's.
        self.cluster = isinstance(client, RedisCluster)
        if self.cluster:
            self._counting = ClusterCountingConnections(client)
            connection_kwargs = client.get_connection_kwargs()
        else:
            self._counting = CountingConnections(client)
            connection_kwargs = client.connection_pool.connection_kwargs
        #: Whether the client follows a Sentinel-watched primary.
        self.sentinel = not self.cluster and isinstance(
            client.connection_pool, SentinelConnectionPool
        )
        #: The client's socket timeout (s): how long a reader waits for a count.
        self.timeout: float | None = connection_kwargs.get("socket_timeout")
        # register_script computes the SHA locally: no I/O here.
        settings = {
            "minute_ttl": self.minute_ttl,
            "hour_ttl": self.hour_ttl,
            "budget_ttl": self.budget_window,
            "impression_budget": self.budget_impressions,
            "click_budget": self.budget_clicks,
        }
        self._impression = client.register_script(
            scripts.counting_script(scripts.IMPRESSION, **settings)
        )
        self._clicks, self._seen, self._engaged = (
            {
                field_ttl: client.register_script(
                    scripts.counting_script(script, field_ttl=field_ttl, **settings)
                )
                for field_ttl in (False, True)
            }
            for script in (scripts.CLICK, scripts.SEEN, scripts.ENGAGED)
        )
        self.field_ttl = None  # another server, perhaps another version
        self._create = client.register_script(scripts.CREATE)
        self._set_status = client.register_script(scripts.SET_STATUS)
        self._set_settings = client.register_script(scripts.SET_SETTINGS)

    # -- experiments -------------------------------------------------------

    @translated_errors
    def create(
        self,
        definition: Definition,
        now: float | None = None,
        allocation: str = CLICKS,
        caring: float = DEFAULT_CARING,
        status: str = RUNNING,
        starts_at: float | None = None,
        reward: str = CLICK,
        denominator: str = SERVED,
    ) -> bool:
        """Store a new experiment, running unless ``status`` says draft or
        scheduled (at ``starts_at``); False (and nothing changed) if the slug exists.

        ``allocation``, ``caring``, ``reward`` and ``denominator`` are checked
        already (:func:`abtest.model.check_settings`,
        :func:`~abtest.model.check_measures`).  The definition is written
        first (one script, on the experiment's own slot), then the slug is
        added to the index, which lives on a slot of its own: a creation cut
        off between the two leaves an experiment missing from the index, and
        creating it again (``ensure_seed`` does, at every start) adds it.
        """
        now = time.time() if now is None else now
        payload = json.dumps(definition.to_json(), ensure_ascii=False, separators=(",", ":"))
        created, created_at = self._create(
            keys=[keys.meta(definition.slug)],
            args=[
                payload,
                repr(float(now)),
                allocation,
                repr(float(caring)),
                status,
                "" if starts_at is None else repr(float(starts_at)),
                reward,
                denominator,
            ],
        )
        self.redis.zadd(keys.EXPERIMENTS, {definition.slug: float(created_at)}, nx=True)
        return bool(created)

    @translated_errors
    def slugs(self) -> list[str]:
        """Every experiment slug, newest first."""
        return self.redis.zrevrange(keys.EXPERIMENTS, 0, -1)

    @translated_errors
    def load(self, slugs: Iterable[str]) -> list[Experiment]:
        """Definitions, status and counts of these experiments, in one round trip.

        The same round trip reads Redis's clock (:attr:`clock_offset`).
        """
        return self._load(list(slugs), with_excluded=False)[0]

    @translated_errors
    def load_with_excluded(
        self, slugs: Iterable[str]
    ) -> tuple[list[Experiment], dict[str, dict[str, int]]]:
        """:meth:`load` and each experiment's excluded hash (:meth:`excluded`), together."""
        experiments, excluded, _ = self._load(list(slugs), with_excluded=True)
        return experiments, excluded

    @translated_errors
    def load_all(self) -> list[Experiment]:
        """Every experiment in the index, newest first.

        The index is read in the same round trip as the experiments it listed
        the last time (on a cluster: one round trip per node, the index's
        among them); only experiments new to it are read in a second.  An
        index entry whose experiment is missing (a creation under way) is
        left out, and so is an experiment missing from the index.
        """
        if self.sentinel:
            self._follow_primary()
        listed = self._listed
        experiments, _, index = self._load(listed, with_excluded=False, with_index=True)
        self._listed = index
        known = set(listed)
        new = [slug for slug in index if slug not in known]
        if new:
            experiments += self._load(new, with_excluded=False)[0]
        found = {experiment.slug: experiment for experiment in experiments}
        return [found[slug] for slug in index if slug in found]

    def _follow_primary(self) -> None:
        """Ask the sentinels where the primary is; connections still on another
        address move to it (the pool's idle ones now, the counting ones before
        their next count).

        A primary demoted by ``SENTINEL FAILOVER`` (or cut off by a partition)
        keeps answering, and what is written to it once its replica has taken
        over is lost when it becomes a replica.  Asked at each refresh, the
        answer reaches every connection within a refresh interval, not at its
        first error.  When no sentinel answers, the connections stay put.
        """
        with contextlib.suppress(*REDIS_ERRORS):
            self._counting.primary = self.redis.connection_pool.get_master_address()

    def _load(
        self, slugs: list[str], with_excluded: bool, with_index: bool = False
    ) -> tuple[list[Experiment], dict[str, dict[str, int]], list[str]]:
        """The experiments, their excluded hashes and (``with_index``) the index,
        and Redis's clock, in one pipeline."""
        if self.field_ttl is None:
            self._detect_field_ttl()
        if not slugs and not with_index:
            return [], {}, []
        pipe = self.redis.pipeline(transaction=False)
        if self.cluster:
            # Every primary's clock, in the packet each gets anyway: a count's
            # deadline is checked against the clock of the node that runs it.
            primaries = self.redis.get_primaries()
            for node in primaries:
                pipe.execute_command("TIME", target_nodes=node)
            clocks = len(primaries)
        else:
            clocks = 1
            pipe.time()
        if with_index:
            pipe.zrevrange(keys.EXPERIMENTS, 0, -1)
        for slug in slugs:
            pipe.hgetall(keys.meta(slug))
            pipe.hgetall(keys.counts(slug))
            if with_excluded:
                pipe.hgetall(keys.excluded(slug))
        replies = pipe.execute()
        # The earliest clock: deadlines then err early on every node.
        self._clock_read(min(replies[:clocks]), self.clock())
        index = replies[clocks] if with_index else []
        first = clocks + with_index
        step = 3 if with_excluded else 2
        experiments, excluded = [], {}
        for position, slug in enumerate(slugs):
            at = first + step * position
            meta, counts = replies[at], replies[at + 1]
            if meta:
                experiments.append(self._experiment(slug, meta, counts))
                if with_excluded:
                    excluded[slug] = _int_values(replies[at + 2])
        return experiments, excluded, index

    def _clock_read(self, redis_time: tuple[int, int], received: float) -> None:
        """Fold in one reading of Redis's clock (``TIME``), received at ``received`` (local).

        Redis read its clock before the reply left, so its clock minus ours
        at the reply's arrival is at most the true offset, short of it by the
        reply's transit: deadlines sent in Redis's clock err early, never
        late.  The largest of the last few readings is the tightest such
        bound; a few only, so a step of this host's clock is forgotten soon.
        """
        seconds, micros = redis_time
        with self._lock:
            self._offsets.append(seconds + micros / 1e6 - received)
            self.clock_offset = max(self._offsets)

    def redis_time(self, local: float | None = None) -> float:
        """Redis's clock (Unix seconds) at this host's ``local`` time (default: now), as
        :attr:`clock_offset` estimates it."""
        return (self.clock() if local is None else local) + self.clock_offset

    def deadline(self, seconds: float) -> int:
        """``seconds`` from now in Redis's clock, in microseconds: a counting script's deadline."""
        return int((self.clock() + self.clock_offset + seconds) * 1_000_000)

    def _detect_field_ttl(self) -> None:
        """Ask Redis once whether it has HEXPIRE (7.4 and later)."""
        (reply,) = self._counting.send([("COMMAND", "INFO", "HEXPIRE")])
        self.field_ttl = isinstance(reply, list) and bool(reply) and reply[0] is not None

    def _experiment(self, slug: str, meta: dict[str, str], counts: dict[str, str]) -> Experiment:
        text = meta["definition"]
        parsed, definition = self._definitions.get(slug, (None, None))
        if parsed != text or definition is None:
            definition = Definition.from_json(slug, json.loads(text))
            self._definitions[slug] = (text, definition)
        reward, denominator = _measures(meta.get("reward"), meta.get("denominator"))
        return Experiment(
            definition=definition,
            status=meta.get("status", RUNNING),
            winner=meta.get("winner") or None,
            **counted(definition, counts, reward, denominator),
            created_at=float(meta.get("created_at", 0.0)),
            allocation=_allocation(meta.get("allocation")),
            caring=_caring(meta.get("caring")),
            starts_at=_seconds(meta.get("starts_at")),
            archived_at=_seconds(meta.get("archived_at")),
            rank=_seconds(meta.get("rank")),
            reward=reward,
            denominator=denominator,
        )

    def get(self, slug: str) -> Experiment | None:
        found = self.load([slug])
        return found[0] if found else None

    @translated_errors
    def set_status(
        self,
        slug: str,
        status: str,
        winner: str | None,
        audit_entry: dict,
        expect: str | None = None,
        now: float | None = None,
    ) -> bool:
        """Change status and winner and append an audit entry, atomically.

        With ``expect``, only if the current status is that one.
        """
        now = time.time() if now is None else now
        changed = self._set_status(
            keys=[keys.meta(slug), keys.audit(slug)],
            args=[
                status,
                winner or "",
                repr(float(now)),
                json.dumps(audit_entry, ensure_ascii=False, separators=(",", ":")),
                expect or "",
                scripts.AUDIT_KEPT,
            ],
        )
        if changed and expect == DECIDED and status == RUNNING:
            # Reopened: a new round, whose webhook events may be sent again.
            self.redis.delete(keys.notified(slug))
        return bool(changed)

    @translated_errors
    def set_settings(
        self,
        slug: str,
        allocation: str,
        caring: float,
        audit_entry: dict,
        now: float | None = None,
        reward: str = "",
        denominator: str = "",
    ) -> bool:
        """Change the allocation mode and threshold of caring (and the reward and the
        denominator, unless ``""``) and append an audit entry, atomically; False
        (nothing written) if there is no such experiment."""
        now = time.time() if now is None else now
        changed = self._set_settings(
            keys=[keys.meta(slug), keys.audit(slug)],
            args=[
                allocation,
                repr(float(caring)),
                repr(float(now)),
                json.dumps(audit_entry, ensure_ascii=False, separators=(",", ":")),
                scripts.AUDIT_KEPT,
                reward,
                denominator,
            ],
        )
        return bool(changed)

    @translated_errors
    def audit(self, slug: str, limit: int = 100) -> list[dict]:
        """Audit entries, newest first."""
        return [json.loads(entry) for entry in self.redis.lrange(keys.audit(slug), 0, limit - 1)]

    # -- webhooks (abtest.webhooks) ------------------------------------------

    #: KEYS: meta, audit.  ARGV: the URL ("" removes it), the audit entry, entries kept.
    _SET_WEBHOOK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'webhook')
else redis.call('HSET', KEYS[1], 'webhook', ARGV[1]) end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1
"""
    #: KEYS: meta, audit.  ARGV: the audit entry, entries kept.
    _APPEND_AUDIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
return 1
"""

    @translated_errors
    def set_webhook(self, slug: str, url: str | None, audit_entry: dict) -> bool:
        """Set (or, with None, remove) the experiment's webhook URL and append an audit
        entry, atomically; False (nothing written) if there is no such experiment."""
        return bool(
            self.redis.register_script(self._SET_WEBHOOK)(
                keys=[keys.meta(slug), keys.audit(slug)],
                args=[url or "", _audit_json(audit_entry), scripts.AUDIT_KEPT],
            )
        )

    @translated_errors
    def webhooks(self, slugs: Iterable[str]) -> dict[str, str | None]:
        """Each experiment's webhook URL (None: none set), in one round trip."""
        slugs = list(slugs)
        pipe = self.redis.pipeline(transaction=False)
        for slug in slugs:
            pipe.hget(keys.meta(slug), "webhook")
        return {slug: url or None for slug, url in zip(slugs, pipe.execute(), strict=True)}

    @translated_errors
    def append_audit(self, slug: str, audit_entry: dict) -> bool:
        """Append an entry to an existing experiment's audit log; False if it has gone."""
        return bool(
            self.redis.register_script(self._APPEND_AUDIT)(
                keys=[keys.meta(slug), keys.audit(slug)],
                args=[_audit_json(audit_entry), scripts.AUDIT_KEPT],
            )
        )

    # -- an experiment's life: drafts, schedules, edits, archive, order --------

    def _audited(self, name: str, slug: str, args: list, counts_key: bool = False) -> object:
        """Run :mod:`abtest.scripts`' lifecycle script ``name`` on ``slug``'s meta hash
        (its counts hash too with ``counts_key``) and audit list; ``args`` end with
        the audit entry (a dict, or None for none)."""
        *values, entry = args
        script = self.redis.register_script(getattr(scripts, name))  # a local SHA-1, no I/O
        extra = [keys.counts(slug)] if counts_key else []
        return script(
            keys=[keys.meta(slug), *extra, keys.audit(slug)],
            args=[*values, "" if entry is None else _audit_json(entry), scripts.AUDIT_KEPT],
        )

    @translated_errors
    def start(self, slug: str, audit_entry: dict, now: float | None = None) -> bool:
        """Put a draft or scheduled experiment live at ``now`` (audited); False if it
        is neither.  With ``now=None``, only a scheduled one whose start time has
        come by Redis's clock (:data:`abtest.scripts.START`)."""
        return bool(self._audited("START", slug, ["" if now is None else repr(now), audit_entry]))

    @translated_errors
    def schedule(
        self, slug: str, starts_at: float | None, audit_entry: dict, now: float | None = None
    ) -> bool:
        """Schedule a draft (or a scheduled experiment) for ``starts_at``, or with
        None make a scheduled one a draft again (audited); False if in another status."""
        start = "" if starts_at is None else repr(float(starts_at))
        now = repr(float(time.time() if now is None else now))
        return bool(self._audited("SCHEDULE", slug, [start, now, audit_entry]))

    @translated_errors
    def edit(
        self,
        definition: Definition,
        previous: Definition,
        quiet: float,
        audit_entry: dict,
        now: float | None = None,
    ) -> str | None:
        """Replace the ``previous`` text with ``definition``'s while nobody has been
        counted (audited); counting then waits ``quiet`` seconds.  None when done,
        else why not (:data:`abtest.scripts.EDIT`'s reasons)."""
        texts = [_definition_json(d) for d in (definition, previous)]
        now = repr(float(time.time() if now is None else now))
        args = [*texts, now, repr(float(quiet)), audit_entry]
        reply = self._audited("EDIT", definition.slug, args, counts_key=True)
        return None if reply == 1 else str(reply)

    @translated_errors
    def archive(
        self, slug: str, archived: bool, audit_entry: dict, now: float | None = None
    ) -> bool:
        """Archive a decided or paused experiment, or unarchive one (audited);
        False where that does not apply."""
        now = repr(float(time.time() if now is None else now))
        return bool(self._audited("ARCHIVE", slug, ["1" if archived else "", now, audit_entry]))

    @translated_errors
    def set_rank(
        self, slug: str, rank: float, audit_entry: dict | None, now: float | None = None
    ) -> bool:
        """Set the story's front-page rank, higher first (audited when ``audit_entry``
        is given); False if there is no such experiment."""
        now = repr(float(time.time() if now is None else now))
        return bool(self._audited("SET_RANK", slug, [repr(float(rank)), now, audit_entry]))

    # -- counting ----------------------------------------------------------

    def record_impressions(
        self,
        visits: Sequence[tuple[str, str]],
        now: float | None = None,
        with_counts: Sequence[bool] | None = None,
        *,
        client: str | None = None,
        deadline: int | None = None,
    ) -> list[ImpressionResult]:
        """Count one impression per (slug, variant), all in one round trip.

        ``with_counts[i]`` asks for visit i's experiment counts back (default:
        all).  ``client`` (a short hash of the reader's address) spends that
        client's impression budget, when there is one; ``deadline``
        (:meth:`deadline`) is when the reader gives up: a script that runs
        later counts nothing and says :data:`LATE`.
        """
        now = time.time() if now is None else now
        minute, window = int(now) // 60, int(now) // self.budget_window
        wanted = [True] * len(visits) if with_counts is None else list(with_counts)
        budget = client if client and self.budget_impressions else ""
        late = "" if deadline is None else str(deadline)
        calls = [
            (self._keys(slug, minute, window)[0], (variant, "1" if want else "0", late, budget))
            for (slug, variant), want in zip(visits, wanted, strict=True)
        ]
        try:  # as _translated does, without its extra call on the busiest path
            replies = self._counting.evalsha_many(self._impression, calls)
        except REDIS_ERRORS as error:
            raise StoreError(str(error)) from error
        # On a cluster with a node down, that node's calls have its error as
        # their reply; those on the other nodes ran and counted.
        return [_impression_result(reply) for reply in replies]

    def _keys(self, slug: str, minute: int, window: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The impression script's keys (meta, counts, this minute's and this hour's
        series, this window's budget, the excluded hash), and the click script's (the
        same, then the click and the seen markers), built once a minute."""
        found = self._count_keys_cache.get((slug, minute, window))
        if found is None:
            if len(self._count_keys_cache) >= 1024:
                self._count_keys_cache.clear()
            counting = (
                keys.meta(slug),
                keys.counts(slug),
                keys.minute(slug, minute),
                keys.hour(slug, minute // 60),
                keys.budget(slug, window),
                keys.excluded(slug),
            )
            found = self._count_keys_cache[(slug, minute, window)] = (
                counting,
                (*counting, keys.clicked(slug), keys.seen(slug)),
            )
        return found

    def record_click(
        self,
        slug: str,
        variant: str,
        visitor: str,
        marker_ttl: int,
        now: float | None = None,
        *,
        client: str | None = None,
        deadline: int | None = None,
        seen_ttl: int | None = None,
    ) -> ClickResult:
        """Count a click unless this visitor's click was counted already.

        ``visitor`` names the visitor in the markers hash (the service passes
        the click token's visitor ref); the marker expires ``marker_ttl``
        seconds on, and the seen marker the click sets (unless there is one)
        ``seen_ttl`` (default: ``marker_ttl``).  ``client`` and ``deadline`` as
        for :meth:`record_impressions`.
        """
        now = time.time() if now is None else now
        minute, window = int(now) // 60, int(now) // self.budget_window
        call_keys = self._keys(slug, minute, window)[1]
        budget = client if client and self.budget_clicks else ""
        late = "" if deadline is None else str(deadline)
        (reply,) = self._marked(
            self._clicks,
            [
                (
                    call_keys,
                    (
                        variant,
                        visitor,
                        int(marker_ttl),
                        late,
                        budget,
                        int(marker_ttl if seen_ttl is None else seen_ttl),
                    ),
                )
            ],
        )
        return _click_result(reply)

    def record_seen(
        self,
        seen: Sequence[tuple[str, str, str]],
        marker_ttl: int,
        now: float | None = None,
        *,
        client: str | None = None,
        deadline: int | None = None,
    ) -> list[ClickResult]:
        """Count seen impressions, each ``(slug, variant, visitor ref)`` once, in one
        round trip; ``client`` spends that client's impression budget (one beacon,
        one impression), ``deadline`` as for :meth:`record_impressions`."""
        now = time.time() if now is None else now
        minute, window = int(now) // 60, int(now) // self.budget_window
        budget = client if client and self.budget_impressions else ""
        late = "" if deadline is None else str(deadline)
        calls = [
            (
                (*self._keys(slug, minute, window)[0], keys.seen(slug), keys.clicked(slug)),
                (variant, visitor, int(marker_ttl), late, budget),
            )
            for slug, variant, visitor in seen
        ]
        return [_click_result(reply) for reply in self._marked(self._seen, calls)]

    def record_engaged(
        self,
        slug: str,
        visitor: str,
        marker_ttl: int,
        now: float | None = None,
        *,
        deadline: int | None = None,
    ) -> tuple[str | None, str | None]:
        """Count a quality click for the visitor whose click in ``slug`` was counted.

        Returns ``(variant, None)`` when counted, ``(None, reason)`` when not:
        ``"not-clicked"`` (no counted click, or its quality click was counted
        already), ``"late"``, or the experiment's status (``""``: no such
        experiment).
        """
        now = time.time() if now is None else now
        minute = int(now) // 60
        call_keys = (
            keys.meta(slug),
            keys.counts(slug),
            keys.minute(slug, minute),
            keys.hour(slug, minute // 60),
            keys.clicked(slug),
            keys.engaged(slug),
        )
        late = "" if deadline is None else str(deadline)
        (reply,) = self._marked(self._engaged, [(call_keys, (visitor, int(marker_ttl), late))])
        if isinstance(reply, list):
            return None, str(reply[1])
        if reply.startswith("!"):
            return None, reply[1:]
        return (reply, None) if reply else (None, "not-clicked")

    def _marked(self, script: dict, calls: list) -> list:
        """Run one of the marker scripts (``{field_ttl: script}``) for ``calls``."""
        try:
            if self.field_ttl is None:
                self._detect_field_ttl()
            return self._counting.evalsha_many(script[self.field_ttl], calls)
        except redis.ResponseError as error:
            self.field_ttl = None  # a server that lost HEXPIRE (another version) is asked again
            raise StoreError(str(error)) from error
        except REDIS_ERRORS as error:
            raise StoreError(str(error)) from error

    # -- exclusions --------------------------------------------------------

    def exclude(self, slug: str, kind: str, reason: str, variant: str) -> None:
        """Tally one reader served but not counted (``kind`` ``"i"`` or ``"c"``, ``reason``
        ``bot`` or ``prefetch``), in memory: :meth:`flush_excluded` adds the tallies to Redis."""
        field = (slug, keys.excluded_field(kind, reason, variant))
        with self._lock:
            self._excluded[field] = self._excluded.get(field, 0) + 1

    def flush_excluded(self) -> int:
        """Add the tallies since the last flush to Redis (one round trip, none if there
        are none); returns how many readers they were.

        Sent once, never retried, like a count: tallies whose reply is lost
        may or may not have been added, and are not sent again.
        """
        with self._lock:
            pending, self._excluded = self._excluded, {}
        if not pending:
            return 0
        commands = [
            ("HINCRBY", keys.excluded(slug), field, n) for (slug, field), n in pending.items()
        ]
        try:
            replies = self._counting.send(commands)
        except REDIS_ERRORS as error:
            raise StoreError(str(error)) from error
        for reply in replies:
            if isinstance(reply, Exception):
                raise StoreError(str(reply))
        return sum(pending.values())

    @translated_errors
    def excluded(self, slugs: Iterable[str]) -> dict[str, dict[str, int]]:
        """Each experiment's excluded hash (``i:<reason>:<variant>``, ``c:<reason>:<variant>``)."""
        slugs = list(slugs)
        pipe = self.redis.pipeline(transaction=False)
        for slug in slugs:
            pipe.hgetall(keys.excluded(slug))
        return {slug: _int_values(reply) for slug, reply in zip(slugs, pipe.execute(), strict=True)}

    # -- series ------------------------------------------------------------

    @translated_errors
    def series(
        self, slug: str, start: float, end: float, resolution: str
    ) -> list[tuple[int, dict]]:
        """Per-interval counts between ``start`` and ``end`` (Unix seconds).

        ``resolution`` is ``"minute"`` or ``"hour"``.  Returns ``(interval
        start in Unix seconds, counts hash)`` for every interval with counts,
        oldest first.
        """
        if resolution == "minute":
            width, key = 60, keys.minute
        elif resolution == "hour":
            width, key = 3600, keys.hour
        else:
            raise ValueError(f"resolution must be minute or hour, not {resolution!r}")
        numbers = range(int(start) // width, int(end) // width + 1)
        pipe = self.redis.pipeline(transaction=False)
        for number in numbers:
            pipe.hgetall(key(slug, number))
        return [
            (number * width, {field: int(value) for field, value in reply.items()})
            for number, reply in zip(numbers, pipe.execute(), strict=True)
            if reply
        ]

    @translated_errors
    def ping(self) -> bool:
        """Whether Redis answers: on a cluster, every primary in the slot map (a
        failed one raises, and has the map read again for the next ping)."""
        if self.cluster:
            return bool(self.redis.ping(target_nodes=RedisCluster.PRIMARIES))
        return bool(self.redis.ping())


def _audit_json(entry: dict) -> str:
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


def _int_values(stored: dict[str, str]) -> dict[str, int]:
    return {field: int(value) for field, value in stored.items()}


def _allocation(stored: str | None) -> str:
    """The stored mode; experiments created before modes existed maximize clicks."""
    return stored if stored in ALLOCATIONS else CLICKS


def _seconds(stored: str | None) -> float | None:
    """A stored moment or rank (Unix seconds), or None."""
    try:
        return float(stored) if stored else None
    except ValueError:
        return None


def _definition_json(definition: Definition) -> str:
    """A definition as :meth:`RedisStore.create` stores it."""
    return json.dumps(definition.to_json(), ensure_ascii=False, separators=(",", ":"))


def _caring(stored: str | None) -> float:
    """The stored threshold of caring; the default where none was stored."""
    try:
        value = float(stored) if stored else DEFAULT_CARING
    except ValueError:
        return DEFAULT_CARING
    return value if 0.0 < value < 1.0 else DEFAULT_CARING


def _measures(reward: str | None, denominator: str | None) -> tuple[str, str]:
    """The stored reward and denominator; the defaults where none (or no known one) was stored."""
    return (
        reward if reward in REWARDS else CLICK,
        denominator if denominator in DENOMINATORS else SERVED,
    )


def counts_tuple(
    definition: Definition, counts: dict, reward: str = CLICK, denominator: str = SERVED
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(impressions, clicks) per variant from a counts hash, as the statistics use
    them: seen impressions or every one served, quality clicks or every click."""
    ids = definition.variant_ids
    shown = keys.seen_field if denominator == SEEN else keys.impression_field
    clicked = keys.quality_field if reward == QUALITY else keys.click_field
    return (
        tuple(int(counts.get(shown(v), 0)) for v in ids),
        tuple(int(counts.get(clicked(v), 0)) for v in ids),
    )


def counted(definition: Definition, counts: dict, reward: str, denominator: str) -> dict:
    """An :class:`Experiment`'s count fields from a counts hash (see there)."""
    ids = definition.variant_ids

    def field(name) -> tuple[int, ...]:
        return tuple(int(counts.get(name(v), 0)) for v in ids)

    served, seen = field(keys.impression_field), field(keys.seen_field)
    clicks, quality = field(keys.click_field), field(keys.quality_field)
    return {
        "impressions": seen if denominator == SEEN else served,
        "clicks": quality if reward == QUALITY else clicks,
        "served": served,
        "seen": seen,
        "all_clicks": clicks,
        "quality_clicks": quality,
    }
