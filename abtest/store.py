"""RedisStore: experiments and their counts in Redis.

Every count is written by one Lua script (:mod:`abtest.scripts`) in one
atomic step: the test's totals, the per-minute and per-hour series and the
click de-duplication marker move together or not at all.  The counting
scripts go out on the counting connections (:mod:`abtest.counting`); every
other command through the redis-py client.  Key names come from
:mod:`abtest.keys`.  Every redis-py error leaves this module as
:class:`StoreError`: nothing above the store sees a redis type.  No Flask
and no numpy here.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import redis

from . import keys, scripts
from .counting import CountingConnections
from .model import ALLOCATIONS, CLICKS, DEFAULT_CARING, RUNNING, Definition, Experiment

__all__ = [
    "RedisStore",
    "connect",
    "counts_tuple",
    "ImpressionResult",
    "ClickResult",
    "StoreError",
]


class StoreError(Exception):
    """Redis could not be reached, or refused a command (the message says which)."""


def connect(url: str, timeout: float = 0.5) -> redis.Redis:
    """A client for ``url`` (redis:// or unix://) as the store expects it."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


class ImpressionResult(NamedTuple):
    """What Redis said when asked to count an impression."""

    status: str  # "" when the experiment does not exist
    winner: str | None
    #: The counts hash after the write (fresh posterior input), when asked for.
    counts: dict[str, int] | None

    @property
    def counted(self) -> bool:
        return self.status == RUNNING


class ClickResult(NamedTuple):
    status: str
    counted: bool


def _impression_result(reply: str | list) -> ImpressionResult:
    if isinstance(reply, str):
        return ImpressionResult(status=reply, winner=None, counts=None)
    return ImpressionResult(
        status=reply[0],
        winner=reply[1] or None,
        counts=_flat_to_counts(reply[2]) if len(reply) > 2 else None,
    )


def _flat_to_counts(flat: Sequence[str]) -> dict[str, int]:
    return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}


def _translated(method):
    """``method`` with redis-py's errors raised as :class:`StoreError`."""

    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except redis.RedisError as error:
            raise StoreError(str(error)) from error

    return call


class RedisStore:
    """Experiments, counts and series in one Redis database.

    ``connection`` must decode responses (see :func:`connect`).
    """

    def __init__(self, connection: redis.Redis, minute_ttl: int, hour_ttl: int):
        self.minute_ttl = int(minute_ttl)
        self.hour_ttl = int(hour_ttl)
        self._counting: CountingConnections | None = None
        self.redis = connection
        # Each slug's definition with the JSON it was parsed from: a refresh
        # reuses the same object while the JSON is unchanged, so readers' page
        # cache (keyed by definition) matches by identity.
        self._definitions: dict[str, tuple[str, Definition]] = {}
        # The four keys every count touches, for the current minute.
        self._count_keys_cache: dict[tuple[str, int], tuple[str, str, str, str]] = {}

    @property
    def redis(self) -> redis.Redis:
        """The client every command goes through (the counting scripts on its connections)."""
        return self._redis

    @redis.setter
    def redis(self, client: redis.Redis) -> None:
        if self._counting is not None:
            self._counting.close()
        self._redis = client
        self._counting = CountingConnections(client)
        # register_script computes the SHA locally: no I/O here.
        ttls = (self.minute_ttl, self.hour_ttl)
        self._impression = client.register_script(scripts.with_ttls(scripts.IMPRESSION, *ttls))
        self._click = client.register_script(scripts.with_ttls(scripts.CLICK, *ttls))
        self._create = client.register_script(scripts.CREATE)
        self._set_status = client.register_script(scripts.SET_STATUS)
        self._set_settings = client.register_script(scripts.SET_SETTINGS)

    # -- experiments -------------------------------------------------------

    @_translated
    def create(
        self,
        definition: Definition,
        now: float | None = None,
        allocation: str = CLICKS,
        caring: float = DEFAULT_CARING,
    ) -> bool:
        """Store a new running experiment; False (and nothing changed) if the slug exists.

        ``allocation`` and ``caring`` are checked already
        (:func:`abtest.model.check_settings`).
        """
        now = time.time() if now is None else now
        payload = json.dumps(definition.to_json(), ensure_ascii=False, separators=(",", ":"))
        created = self._create(
            keys=[keys.meta(definition.slug), keys.EXPERIMENTS],
            args=[definition.slug, payload, repr(float(now)), allocation, repr(float(caring))],
        )
        return bool(created)

    @_translated
    def slugs(self) -> list[str]:
        """Every experiment slug, newest first."""
        return self.redis.zrevrange(keys.EXPERIMENTS, 0, -1)

    @_translated
    def load(self, slugs: Iterable[str]) -> list[Experiment]:
        """Definitions, status and counts of these experiments, in one round trip."""
        slugs = list(slugs)
        if not slugs:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for slug in slugs:
            pipe.hgetall(keys.meta(slug))
            pipe.hgetall(keys.counts(slug))
        replies = pipe.execute()
        experiments = []
        for index, slug in enumerate(slugs):
            meta, counts = replies[2 * index], replies[2 * index + 1]
            if meta:
                experiments.append(self._experiment(slug, meta, counts))
        return experiments

    def _experiment(self, slug: str, meta: dict[str, str], counts: dict[str, str]) -> Experiment:
        text = meta["definition"]
        parsed, definition = self._definitions.get(slug, (None, None))
        if parsed != text or definition is None:
            definition = Definition.from_json(slug, json.loads(text))
            self._definitions[slug] = (text, definition)
        impressions, clicks = counts_tuple(definition, counts)
        return Experiment(
            definition=definition,
            status=meta.get("status", RUNNING),
            winner=meta.get("winner") or None,
            impressions=impressions,
            clicks=clicks,
            created_at=float(meta.get("created_at", 0.0)),
            allocation=_allocation(meta.get("allocation")),
            caring=_caring(meta.get("caring")),
        )

    def load_all(self) -> list[Experiment]:
        return self.load(self.slugs())

    def get(self, slug: str) -> Experiment | None:
        found = self.load([slug])
        return found[0] if found else None

    @_translated
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
        return bool(changed)

    @_translated
    def set_settings(
        self,
        slug: str,
        allocation: str,
        caring: float,
        audit_entry: dict,
        now: float | None = None,
    ) -> bool:
        """Change the allocation mode and threshold of caring and append an audit
        entry, atomically; False (nothing written) if there is no such experiment."""
        now = time.time() if now is None else now
        changed = self._set_settings(
            keys=[keys.meta(slug), keys.audit(slug)],
            args=[
                allocation,
                repr(float(caring)),
                repr(float(now)),
                json.dumps(audit_entry, ensure_ascii=False, separators=(",", ":")),
                scripts.AUDIT_KEPT,
            ],
        )
        return bool(changed)

    @_translated
    def audit(self, slug: str, limit: int = 100) -> list[dict]:
        """Audit entries, newest first."""
        return [json.loads(entry) for entry in self.redis.lrange(keys.audit(slug), 0, limit - 1)]

    # -- counting ----------------------------------------------------------

    def record_impressions(
        self,
        visits: Sequence[tuple[str, str]],
        now: float | None = None,
        with_counts: Sequence[bool] | None = None,
    ) -> list[ImpressionResult]:
        """Count one impression per (slug, variant), all in one round trip.

        ``with_counts[i]`` asks for visit i's experiment counts back (default: all).
        """
        minute = int(time.time() if now is None else now) // 60
        wanted = [True] * len(visits) if with_counts is None else list(with_counts)
        calls = [
            (
                self._count_keys(slug, minute),
                (keys.impression_field(variant), "1" if want else "0"),
            )
            for (slug, variant), want in zip(visits, wanted, strict=True)
        ]
        try:  # as _translated does, without its extra call on the busiest path
            replies = self._counting.evalsha_many(self._impression, calls)
        except redis.RedisError as error:
            raise StoreError(str(error)) from error
        return [_impression_result(reply) for reply in replies]

    def _count_keys(self, slug: str, minute: int) -> tuple[str, str, str, str]:
        """Meta, counts, this minute's and this hour's series keys (built once a minute)."""
        found = self._count_keys_cache.get((slug, minute))
        if found is None:
            if len(self._count_keys_cache) >= 1024:
                self._count_keys_cache.clear()
            found = self._count_keys_cache[(slug, minute)] = (
                keys.meta(slug),
                keys.counts(slug),
                keys.minute(slug, minute),
                keys.hour(slug, minute // 60),
            )
        return found

    def record_click(
        self, slug: str, variant: str, visitor: str, marker_ttl: int, now: float | None = None
    ) -> ClickResult:
        """Count a click unless this visitor's click was counted already."""
        minute = int(time.time() if now is None else now) // 60
        call_keys = (*self._count_keys(slug, minute), keys.clicked(slug, visitor))
        try:
            (reply,) = self._counting.evalsha_many(
                self._click, [(call_keys, [variant, int(marker_ttl)])]
            )
        except redis.RedisError as error:
            raise StoreError(str(error)) from error
        if isinstance(reply, str):
            return ClickResult(status=reply, counted=False)
        return ClickResult(status=RUNNING, counted=bool(reply))

    # -- series ------------------------------------------------------------

    @_translated
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

    @_translated
    def ping(self) -> bool:
        return bool(self.redis.ping())


def _allocation(stored: str | None) -> str:
    """The stored mode; experiments created before modes existed maximize clicks."""
    return stored if stored in ALLOCATIONS else CLICKS


def _caring(stored: str | None) -> float:
    """The stored threshold of caring; the default where none was stored."""
    try:
        value = float(stored) if stored else DEFAULT_CARING
    except ValueError:
        return DEFAULT_CARING
    return value if 0.0 < value < 1.0 else DEFAULT_CARING


def counts_tuple(definition: Definition, counts: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(impressions, clicks) per variant from a counts hash."""
    ids = definition.variant_ids
    return (
        tuple(int(counts.get(keys.impression_field(v), 0)) for v in ids),
        tuple(int(counts.get(keys.click_field(v), 0)) for v in ids),
    )
