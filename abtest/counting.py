"""The counting connections: the counting scripts sent at the wire level, past redis-py's wrappers.

A bypass, kept because every new visitor and every click pays for it.  redis-py
8 wraps every command in a retry loop, a metrics recorder and argument
checks, and every loan of a pooled connection in a lock, metrics, events and
a poll of the socket; its pipelines also ask ``SCRIPT EXISTS`` before every
execute (a second round trip).  :class:`CountingConnections` does what a
redis-py pipeline without a transaction does, with the connection's own
``pack_commands``, ``send_packed_command`` and ``read_response``, on
connections kept apart from the client's pool.

What it must keep of redis-py's behaviour, and the tests that hold it there
(tests/test_counting.py):

- a count is sent once, never retried, whatever retries the client was
  given: a script whose reply is lost may have run, and running it again
  could count twice;
- a connection left with replies unread (an exception between two reads) is
  closed, so its next user never reads someone else's reply;
- a connection idle for over :attr:`CountingConnections.IDLE_CHECK` is
  checked before use, as the pool checks every loan (one the server closed
  is replaced first);
- a forked worker starts with none of its parent's connections;
- the pool's ``max_connections`` bounds the pool's own loans only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, ResponseError

from .forks import reset_after_fork

__all__ = ["CountingConnections"]


def _drop_if_stale(connection: redis.Connection) -> None:
    """Disconnect ``connection`` if it holds data nobody asked for or the server
    closed it (it connects again when next used)."""
    try:
        if connection.can_read():
            connection.disconnect()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        connection.disconnect()


class CountingConnections:
    """Connections made with ``client``'s pool settings, for the counting scripts alone.

    Kept in a list whose ``pop`` and ``append`` are atomic: threads (gthread
    workers) never share one, and there are only as many as counts ever ran at
    once in this process (one per thread at most).  Errors are redis-py's own.
    """

    #: A connection idle longer than this (s) is checked before use, as
    #: redis-py's pool checks every loan: one closed by the server (its
    #: ``timeout``, a restart) or holding stray data is replaced first.
    IDLE_CHECK = 1.0

    def __init__(self, client: redis.Redis):
        self.client = client
        self._idle: list[tuple[redis.Connection, float]] = []
        reset_after_fork(self)

    def evalsha_many(self, script: Script, calls: Sequence[tuple[Sequence, Sequence]]) -> list:
        """Run one script once per ``(keys, args)`` call, all in one round trip.

        The script is loaded (through the client) only for the calls Redis
        answered NOSCRIPT (after a restart or ``SCRIPT FLUSH``), and just those
        are sent again: a NOSCRIPT reply means the script did not run.  Raises
        the first error reply.
        """
        commands = [("EVALSHA", script.sha, len(names), *names, *args) for names, args in calls]
        replies = self.send(commands)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            self.client.script_load(script.script)
            retried = self.send([commands[i] for i in missing])
            for i, reply in zip(missing, retried, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def send(self, commands: list[tuple]) -> list:
        """Send ``commands`` once, in one packet, and read their replies (an
        error reply as its exception, not raised).

        A connection that fails to send or read closes itself (redis-py does
        that); one left with replies unread by anything else is closed here;
        either connects again on its next use.
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

    def _take(self) -> tuple[redis.Connection, float]:
        """An idle connection and when it was last used, or a new one."""
        try:
            return self._idle.pop()
        except IndexError:
            pool = self.client.connection_pool
            return pool.connection_class(**pool.connection_kwargs), time.monotonic()

    def close(self) -> None:
        """Disconnect every idle connection."""
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.disconnect()

    def _after_fork(self) -> None:
        # The parent's connections stay the parent's: a worker talks on its own.
        self._idle = []
