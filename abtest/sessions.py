"""Editors' sessions and sign-in attempts, in Redis.

Both live in Redis so that every worker process and every app server on one
Redis sees the same thing: an editor signed out on one is signed out on all,
and a lockout counts every attempt wherever it landed.  Key names come from
:mod:`abtest.keys`; every redis-py error leaves this module as
:class:`~abtest.store.StoreError`.  No Flask here: the session interface
(:class:`abtest.web.shortcuts.EditorSessions`) and the sign-in view use these.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

import redis

from . import keys
from .store import translated_errors as _translated

__all__ = ["SessionStore", "SignInThrottle", "SIGN_IN"]


class SessionStore:
    """Signed-in editors' sessions: an id in the browser, the data here.

    A session's record expires ``idle`` seconds after the last request that
    touched it, and deleting it ends the session at once for every copy of
    its cookie.  Each editor's set of session ids lets all of an editor's
    sessions end together (signing out everywhere, or the editor removed).
    ``connection`` must decode responses (see :func:`abtest.store.connect`).
    """

    def __init__(self, connection: redis.Redis, idle: int):
        self.redis = connection
        self.idle = int(idle)

    @_translated
    def create(self, editor: str, data: str) -> str:
        """A new session for ``editor`` holding ``data``; returns its id (a fresh random one)."""
        session_id = secrets.token_urlsafe(32)
        index = keys.editor_sessions(editor)
        # Drop the ids of sessions that have ended by themselves (idle), so an
        # editor's set holds no more than their live sessions and this one.
        known = sorted(self.redis.smembers(index))
        if known:
            check = self.redis.pipeline(transaction=False)
            for known_id in known:
                check.exists(keys.session(known_id))
            ended = [
                known_id
                for known_id, alive in zip(known, check.execute(), strict=True)
                if not alive
            ]
            if ended:
                self.redis.srem(index, *ended)
        # One step, so that signing out everywhere (which watches the set)
        # never misses a session made while it runs.
        write = self.redis.pipeline(transaction=True)
        write.set(keys.session(session_id), data, ex=self.idle, nx=True)
        write.sadd(index, session_id)
        write.execute()
        return session_id

    @_translated
    def load(self, session_id: str, touch: bool = True) -> str | None:
        """The session's data, or None once it has ended.

        ``touch``: the request counts as the editor's activity, so the idle
        timeout starts again (in the same round trip).
        """
        key = keys.session(session_id)
        if touch:
            return self.redis.getex(key, ex=self.idle)
        return self.redis.get(key)

    @_translated
    def save(self, session_id: str, data: str, touch: bool = True) -> bool:
        """Replace a live session's data; False (and nothing written) if it has ended.

        A session ended elsewhere while this request ran stays ended.
        ``touch`` as for :meth:`load`; otherwise the session keeps its expiry.
        """
        key = keys.session(session_id)
        if touch:
            return bool(self.redis.set(key, data, ex=self.idle, xx=True))
        return bool(self.redis.set(key, data, keepttl=True, xx=True))

    @_translated
    def delete(self, session_id: str, editor: str) -> None:
        """End one session now."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.session(session_id))
        pipe.srem(keys.editor_sessions(editor), session_id)
        pipe.execute()

    @_translated
    def delete_all(self, editor: str) -> int:
        """End every session of ``editor`` now; returns how many were live."""
        index = keys.editor_sessions(editor)

        def end_all(pipe: redis.client.Pipeline) -> None:
            # WATCH on the set: a session created meanwhile makes this run again.
            session_keys = [keys.session(session_id) for session_id in pipe.smembers(index)]
            pipe.multi()
            if session_keys:
                pipe.delete(*session_keys)
            pipe.delete(index)

        replies = self.redis.transaction(end_all, index)
        return int(replies[0]) if len(replies) == 2 else 0


# KEYS[1]  the attempts of one (user name, address) pair: a sorted set of
#          attempt ids scored by time
# ARGV[1]  now (seconds, the caller's clock), ARGV[2] the window (seconds),
# ARGV[3]  the number of attempts allowed in the window, ARGV[4] a new attempt id
#
# Drops attempts older than the window.  Under the limit: records this attempt
# and returns "0".  At the limit: records nothing and returns the seconds until
# the oldest attempt leaves the window.  Checking and recording in one step is
# what makes the limit exact however many workers take attempts at once.
SIGN_IN = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return '0'
"""


class SignInThrottle:
    """At most ``failures`` sign-in attempts for one user name from one address per ``window``.

    Every attempt counts as a failure from the moment it is admitted until the
    password proves right (:meth:`succeeded` forgets the pair's attempts), so
    concurrent guesses in several workers can't slip past the limit.  The pair
    is the user name (case-folded) and the client's address: a name locked
    out from one address can still sign in from another, so whoever guesses
    from outside can't lock an editor out of the office.
    """

    def __init__(
        self,
        connection: redis.Redis,
        failures: int = 10,
        window: float = 900.0,
        clock: Callable[[], float] = time.time,
    ):
        self.failures = failures
        self.window = window
        self.clock = clock
        self.redis = connection
        self._attempt = connection.register_script(SIGN_IN)

    @staticmethod
    def _key(address: str, username: str) -> str:
        pair = f"{username.casefold()}\x00{address}".encode()
        return keys.sign_in_attempts(hashlib.blake2b(pair, digest_size=16).hexdigest())

    @_translated
    def attempt(self, address: str, username: str) -> float:
        """Admit one attempt (0.0), or refuse it: the seconds until the pair may try again."""
        wait = self._attempt(
            keys=[self._key(address, username)],
            args=[
                repr(float(self.clock())),
                repr(float(self.window)),
                self.failures,
                secrets.token_hex(8),
            ],
        )
        return float(wait)

    @_translated
    def succeeded(self, address: str, username: str) -> None:
        """The password was right: the pair's attempts are forgotten."""
        self.redis.delete(self._key(address, username))
