"""RedisStore: experiments and their counts in Redis.

Every count is written by one Lua script in one atomic step: the test's
totals, the per-minute and per-hour series and the click de-duplication
marker move together or not at all.  Key names come from :mod:`abtest.keys`.
No Flask and no numpy here.
"""

from __future__ import annotations

import json
import os
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import redis
from redis.exceptions import NoScriptError, ResponseError

from . import keys
from .model import RUNNING, Definition, Experiment

__all__ = [
    "RedisStore",
    "connect",
    "counts_tuple",
    "ImpressionResult",
    "ClickResult",
    "StoreError",
    "reset_after_fork",
]

StoreError = redis.RedisError

# KEYS[1] meta hash, KEYS[2] counts hash, KEYS[3] minute hash, KEYS[4] hour hash
# ARGV[1] impression field ("i:<variant>"), ARGV[2] "1" to get the counts back
# The series TTLs are written into the script (RedisStore formats it), so the
# busiest script of all carries two arguments, not four.
# Counts one impression if, and only if, the experiment is running.  A series
# key gets its TTL when it is created (its first field reaches 1), not on
# every write.
# Returns the status alone ("" = no such experiment); {status, winner} once
# decided; with ARGV[2] = "1", {status, winner, counts hash as a flat list},
# from which the caller refreshes its posterior without another round trip.
IMPRESSION_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'running' then
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
  if redis.call('HINCRBY', KEYS[3], ARGV[1], 1) == 1 then
    redis.call('EXPIRE', KEYS[3], {minute_ttl})
  end
  if redis.call('HINCRBY', KEYS[4], ARGV[1], 1) == 1 then
    redis.call('EXPIRE', KEYS[4], {hour_ttl})
  end
end
if ARGV[2] == '1' then
  return {status, redis.call('HGET', KEYS[1], 'winner') or '', redis.call('HGETALL', KEYS[2])}
end
if status == 'decided' then return {status, redis.call('HGET', KEYS[1], 'winner') or ''} end
return status
"""

# KEYS[1] meta hash, KEYS[2] counts hash, KEYS[3] minute hash, KEYS[4] hour hash,
# KEYS[5] this visitor's click marker
# ARGV[1] variant id, ARGV[2] marker TTL (s); the series TTLs are written in.
# The script names the count fields itself, as keys.py does: i:<variant>, c:<variant>.
# Counts the click only while running, only once per visitor (SET NX on the
# marker), and never past the variant's impressions.
# Returns 1 (counted) or 0 while running, else the status ("" = no such experiment).
CLICK_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status or '' end
local shown, clicked = 'i:' .. ARGV[1], 'c:' .. ARGV[1]
local seen = redis.call('HMGET', KEYS[2], shown, clicked)
if tonumber(seen[1] or '0') <= tonumber(seen[2] or '0') then return 0 end
if not redis.call('SET', KEYS[5], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[2], clicked, 1)
if redis.call('HINCRBY', KEYS[3], clicked, 1) == 1 then
  redis.call('EXPIRE', KEYS[3], {minute_ttl})
end
if redis.call('HINCRBY', KEYS[4], clicked, 1) == 1 then
  redis.call('EXPIRE', KEYS[4], {hour_ttl})
end
return 1
"""

# KEYS[1] meta hash, KEYS[2] the experiments index
# ARGV[1] slug, ARGV[2] definition JSON, ARGV[3] now (s)
# Creates the experiment, running, unless it exists; never touches counts.
# Returns 1 if created, 0 if it was already there.
CREATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'definition', ARGV[2], 'status', 'running', 'winner', '',
           'created_at', ARGV[3], 'updated_at', ARGV[3])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
return 1
"""

# KEYS[1] meta hash, KEYS[2] audit list
# ARGV[1] new status, ARGV[2] winner ('' for none), ARGV[3] now (s), ARGV[4] audit entry JSON,
# ARGV[5] expected current status ('' = any), ARGV[6] audit entries kept
# Returns 1 if changed, 0 if the experiment is missing or not in the expected status.
STATUS_LUA = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 0 end
if ARGV[5] ~= '' and current ~= ARGV[5] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'winner', ARGV[2], 'updated_at', ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
return 1
"""

AUDIT_KEPT = 1000


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


def _drop_if_stale(connection: redis.Connection) -> None:
    """Disconnect ``connection`` if it holds data nobody asked for or the server
    closed it (it connects again when next used)."""
    try:
        if connection.can_read():
            connection.disconnect()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        connection.disconnect()


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


#: Objects whose ``_after_fork()`` runs in each forked child (see reset_after_fork).
_reset_after_fork: weakref.WeakSet = weakref.WeakSet()


def reset_after_fork(owner) -> None:
    """Have ``owner._after_fork()`` run in every child this process forks
    (gunicorn's workers), while ``owner`` lives: for state a worker must not
    share with its parent or siblings (connections, random streams)."""
    _reset_after_fork.add(owner)


def _after_fork_in_child() -> None:
    for owner in list(_reset_after_fork):
        owner._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class RedisStore:
    """Experiments, counts and series in one Redis database.

    ``connection`` must decode responses (see :func:`connect`).
    """

    def __init__(self, connection: redis.Redis, minute_ttl: int, hour_ttl: int):
        self._idle: list[tuple[redis.Connection, float]] = []
        self.redis = connection
        reset_after_fork(self)
        self.minute_ttl = int(minute_ttl)
        self.hour_ttl = int(hour_ttl)
        # register_script computes the SHA locally: no I/O here.
        self._impression = connection.register_script(self._with_ttls(IMPRESSION_LUA))
        self._click = connection.register_script(self._with_ttls(CLICK_LUA))
        self._create = connection.register_script(CREATE_LUA)
        self._status = connection.register_script(STATUS_LUA)
        # Each slug's definition with the JSON it was parsed from: a refresh
        # reuses the same object while the JSON is unchanged, so readers' page
        # cache (keyed by definition) matches by identity.
        self._definitions: dict[str, tuple[str, Definition]] = {}
        # The four keys every count touches, for the current minute.
        self._count_keys_cache: dict[tuple[str, int], tuple[str, str, str, str]] = {}

    def _with_ttls(self, script: str) -> str:
        return script.replace("{minute_ttl}", str(self.minute_ttl)).replace(
            "{hour_ttl}", str(self.hour_ttl)
        )

    # -- experiments -------------------------------------------------------

    def create(self, definition: Definition, now: float | None = None) -> bool:
        """Store a new running experiment; False (and nothing changed) if the slug exists."""
        now = time.time() if now is None else now
        payload = json.dumps(definition.to_json(), ensure_ascii=False, separators=(",", ":"))
        created = self._create(
            keys=[keys.meta(definition.slug), keys.EXPERIMENTS],
            args=[definition.slug, payload, repr(float(now))],
        )
        return bool(created)

    def slugs(self) -> list[str]:
        """Every experiment slug, newest first."""
        return self.redis.zrevrange(keys.EXPERIMENTS, 0, -1)

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
        )

    def load_all(self) -> list[Experiment]:
        return self.load(self.slugs())

    def get(self, slug: str) -> Experiment | None:
        found = self.load([slug])
        return found[0] if found else None

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
        changed = self._status(
            keys=[keys.meta(slug), keys.audit(slug)],
            args=[
                status,
                winner or "",
                repr(float(now)),
                json.dumps(audit_entry, ensure_ascii=False, separators=(",", ":")),
                expect or "",
                AUDIT_KEPT,
            ],
        )
        return bool(changed)

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
        return [_impression_result(reply) for reply in self._evalsha_many(self._impression, calls)]

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
        (reply,) = self._evalsha_many(self._click, [(call_keys, [variant, int(marker_ttl)])])
        if isinstance(reply, str):
            return ClickResult(status=reply, counted=False)
        return ClickResult(status=RUNNING, counted=bool(reply))

    def _evalsha_many(self, script, calls: list[tuple[Sequence, Sequence]]) -> list:
        """Run one script once per call, all in one round trip.

        redis-py's pipelines check ``SCRIPT EXISTS`` before every execute (an
        extra round trip), so this sends EVALSHA itself and loads the script
        only for the calls Redis answered NOSCRIPT (after a restart or
        ``SCRIPT FLUSH``), re-running just those: nothing is counted twice.
        """
        commands = [("EVALSHA", script.sha, len(names), *names, *args) for names, args in calls]
        replies = self._send(commands)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            self.redis.script_load(script.script)
            retried = self._send([commands[i] for i in missing])
            for i, reply in zip(missing, retried, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _send(self, commands: list[tuple]) -> list:
        """Send ``commands`` once, in one packet, on a counting connection, and
        read their replies (an error reply as its exception, not raised).

        What a redis-py pipeline without a transaction does, without redis-py
        8's wrappers around every command (its retry loop, metrics recorder
        and argument checks) and around every loan of a pooled connection
        (lock, metrics, events, a poll of the socket): 100,000 instructions,
        a sixth of a counted request, and a system call (docs/performance.md).
        Sent once, whatever retries the client was given: a counting script
        whose reply is lost may have run, and running it again could count
        twice.  A connection that fails to send or read closes itself
        (redis-py does that); one left with replies unread by anything else
        (an exception between two reads) is closed here; either connects
        again on its next use.
        """
        connection, used = self._take()
        replies = []
        try:
            if used < time.monotonic() - self.IDLE_CHECK:
                _drop_if_stale(connection)
            connection.send_packed_command(connection.pack_commands(commands))
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except ResponseError as error:
                    replies.append(error)
            return replies
        finally:
            if len(replies) != len(commands):
                connection.disconnect()  # its next reply would answer someone else
            self._idle.append((connection, time.monotonic()))

    #: A counting connection idle longer than this (s) is checked before use,
    #: as redis-py's pool checks every loan: one closed by the server (its
    #: ``timeout``, a restart) or holding stray data is replaced first.
    IDLE_CHECK = 1.0

    def _take(self) -> tuple[redis.Connection, float]:
        """An idle counting connection and when it was last used, or a new one.

        Counting connections are made with the client pool's connection class
        and settings, but kept apart from it, in a list whose ``pop`` and
        ``append`` are atomic: threads (gthread workers) never share one, and
        there are only as many as counts ever ran at once in this process (one
        per thread at most).  They are outside the pool's ``max_connections``,
        which bounds the pool's own loans (the refresh, the dashboard, health
        checks) as before.  A forked worker starts with none (see
        _after_fork), and replacing ``redis`` closes and replaces them.
        """
        try:
            return self._idle.pop()
        except IndexError:
            pool = self.redis.connection_pool
            return pool.connection_class(**pool.connection_kwargs), time.monotonic()

    @property
    def redis(self) -> redis.Redis:
        """The client every command goes through (the counting scripts on its connections)."""
        return self._redis

    @redis.setter
    def redis(self, client: redis.Redis) -> None:
        for connection, _ in self._idle:
            connection.disconnect()
        self._redis = client
        self._idle = []

    def _after_fork(self) -> None:
        # The parent's connections stay the parent's: a worker talks on its own.
        self._idle = []

    # -- series ------------------------------------------------------------

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

    def ping(self) -> bool:
        return bool(self.redis.ping())


def counts_tuple(definition: Definition, counts: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(impressions, clicks) per variant from a counts hash."""
    ids = definition.variant_ids
    return (
        tuple(int(counts.get(keys.impression_field(v), 0)) for v in ids),
        tuple(int(counts.get(keys.click_field(v), 0)) for v in ids),
    )
