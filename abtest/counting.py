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

On a Redis Cluster, :class:`ClusterCountingConnections` does the same per
node (tests/test_cluster.py): each command goes to the primary serving its
key's slot, one packet per node, every packet written before any reply is
read, so a front page whose experiments sit on three nodes makes one round
trip to each, overlapped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.exceptions import (
    AskError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    ResponseError,
)

from .forks import reset_after_fork

__all__ = ["pack_evalsha", "CountingConnections", "ClusterCountingConnections"]


def _drop_if_stale(connection: redis.Connection) -> None:
    """Disconnect ``connection`` if it holds data nobody asked for or the server
    closed it (it connects again when next used)."""
    try:
        if connection.can_read():
            connection.disconnect()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        connection.disconnect()


def _evalsha(script: Script, names: Sequence, args: Sequence) -> tuple:
    return ("EVALSHA", script.sha, len(names), *names, *args)


#: The packed head (command, sha, key count, keys) of recent EVALSHA calls.
_HEADS: dict[tuple, bytes] = {}


def pack_evalsha(sha: str, names: Sequence[str], args: Sequence) -> bytes:
    """One ``EVALSHA sha len(names) *names *args`` in the Redis protocol, byte for byte
    what redis-py's ``Connection.pack_commands`` makes of it (with UTF-8 text).

    A counting call's keys repeat for a minute at a time (the series keys
    change each minute), so its head is packed once and kept (the newest
    1,024 heads); only the arguments are packed per call.  Arguments are
    ``str``, ``bytes``, ``int`` or ``float``, as redis-py's encoder takes them.
    """
    if type(names) is not tuple:
        names = tuple(names)
    key = (sha, names, len(args))
    head = _HEADS.get(key)
    if head is None:
        if len(_HEADS) >= 1024:
            _HEADS.clear()
        parts = [b"EVALSHA", sha.encode(), b"%d" % len(names), *(n.encode() for n in names)]
        head = _HEADS[key] = b"*%d\r\n" % (len(parts) + len(args)) + b"".join(
            [b"$%d\r\n%s\r\n" % (len(part), part) for part in parts]
        )
    packed = [head]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif type(arg) is int:
            data = b"%d" % arg
        elif isinstance(arg, bytes):
            data = arg
        elif type(arg) is float:
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis: {arg!r}")
        packed.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(packed)


class CountingConnections:
    """Connections made with ``client``'s pool settings, for the counting scripts alone.

    Kept in a list whose ``pop`` and ``append`` are atomic: a worker's threads
    never share one, and there are only as many as counts ever ran at once in
    this process (one per thread at most).  Errors are redis-py's own.
    """

    #: A connection idle longer than this (s) is checked before use, as
    #: redis-py's pool checks every loan: one closed by the server (its
    #: ``timeout``, a restart) or holding stray data is replaced first.
    IDLE_CHECK = 1.0

    def __init__(self, client: redis.Redis):
        self.client = client
        self._idle: list[tuple[redis.Connection, float]] = []
        # A connection class with a connect() of its own is connected through it,
        # as the pool does on each loan: a Sentinel-managed connection asks the
        # sentinels for the primary there, where a send on a closed connection
        # would connect again to whichever address it had last.
        connection_class = client.connection_pool.connection_class
        self._connect_first = connection_class.connect is not AbstractConnection.connect
        # pack_evalsha encodes text as UTF-8, as the client does by default.
        encoding = client.connection_pool.connection_kwargs.get("encoding", "utf-8")
        self._utf8 = encoding.lower().replace("-", "") == "utf8" and (
            client.connection_pool.connection_kwargs.get("encoding_errors", "strict") == "strict"
        )
        #: Where the sentinels last said the primary is (the store asks them):
        #: a connection still on another address is moved before its next count.
        self.primary: tuple[str, int] | None = None
        reset_after_fork(self)

    def evalsha_many(self, script: Script, calls: Sequence[tuple[Sequence, Sequence]]) -> list:
        """Run one script once per ``(keys, args)`` call, all in one round trip.

        The script is loaded (through the client) only for the calls Redis
        answered NOSCRIPT (after a restart or ``SCRIPT FLUSH``), and just those
        are sent again: a NOSCRIPT reply means the script did not run.  Raises
        the first error reply.
        """
        if self._utf8:
            packed = b"".join([pack_evalsha(script.sha, names, args) for names, args in calls])
            replies = self._exchange(lambda connection: [packed], len(calls))
        else:
            replies = self.send([_evalsha(script, names, args) for names, args in calls])
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            self.client.script_load(script.script)
            retried = self.send([_evalsha(script, *calls[i]) for i in missing])
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
        return self._exchange(lambda connection: connection.pack_commands(commands), len(commands))

    def _exchange(self, pack: Callable[[redis.Connection], list[bytes]], count: int) -> list:
        """Send what ``pack`` makes for a connection, once, and read ``count`` replies."""
        connection, used = self._take()
        replies = []
        try:
            if self._connect_first:
                self._to_primary(connection)
            if used < time.monotonic() - self.IDLE_CHECK:
                _drop_if_stale(connection)
            connection.send_packed_command(pack(connection))
            for _ in range(count):
                try:
                    replies.append(connection.read_response())
                except ResponseError as error:
                    replies.append(error)
            return replies
        finally:
            if len(replies) != count:
                connection.disconnect()  # its next reply would answer someone else
            self._idle.append((connection, time.monotonic()))

    def _to_primary(self, connection: redis.Connection) -> None:
        """Connect ``connection`` through its own connect(), first closing it if it
        is still on a primary other than :attr:`primary`."""
        if connection.is_connected and self.primary not in (
            None,
            (connection.host, connection.port),
        ):
            connection.disconnect()
        if not connection.is_connected:
            connection.connect()

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


#: Where each command the store counts with names its key (the slot it goes to).
_KEY_AT = {"EVALSHA": 3, "HINCRBY": 1}


class ClusterCountingConnections:
    """The counting connections for a Redis Cluster: :class:`CountingConnections`
    per node, with the cluster's routing.

    Each command goes to the primary that serves its key's slot in the
    client's slot map (``EVALSHA``: its first key; ``HINCRBY``: its key; any
    other command: the client's default node).  The commands for one node go
    in one packet; every node's packet is written before any reply is read.
    On top of :class:`CountingConnections`' rules:

    - a ``MOVED`` or ``ASK`` reply means the command did not run: it is sent
      again where the reply points (``ASK``: after ``ASKING``), at most
      :attr:`REDIRECTS` times, and ``MOVED`` updates the client's slot map
      as redis-py's own commands do;
    - a node that can't be reached, or answers an error, fails only its own
      commands: :meth:`send` and :meth:`evalsha_many` return that error as
      their reply, so counts that ran on the other nodes are reported as
      counted, never lost in an exception.  Only when no command got a
      reply is an error raised.  The slot map is left for the client to
      re-read (its own commands do that on a connection error; the store's
      background refresh and the circuit breaker's probe make some).
    """

    IDLE_CHECK = CountingConnections.IDLE_CHECK

    #: Redirections followed per command (a slot moving while it is sent).
    REDIRECTS = 2

    def __init__(self, client: RedisCluster):
        self.client = client
        self._idle: dict[str, list[tuple[redis.Connection, float]]] = {}
        reset_after_fork(self)

    def evalsha_many(self, script: Script, calls: Sequence[tuple[Sequence, Sequence]]) -> list:
        """Run one script once per ``(keys, args)`` call: one round trip per node.

        Each node that answered NOSCRIPT (a promoted replica, a restart, a
        ``SCRIPT FLUSH``) gets the script loaded in the same packet as the
        calls sent to it again.  Returns each call's reply, or its error
        (see the class); raises the first error when no call succeeded.
        """
        commands = [("EVALSHA", script.sha, len(names), *names, *args) for names, args in calls]
        replies = self.send(commands, raise_all=False)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            retried = self._exchange(
                [commands[i] for i in missing], preamble=[("SCRIPT", "LOAD", script.script)]
            )
            for i, reply in zip(missing, retried, strict=True):
                replies[i] = reply
        _raise_if_none_succeeded(replies)
        return replies

    def send(self, commands: list[tuple], raise_all: bool = True) -> list:
        """Send ``commands`` once, each to its node, and read their replies (an
        error reply, or a node that can't be reached, as the exception for its
        commands); with ``raise_all``, raises the first error when no command
        got a reply."""
        replies = self._exchange(commands)
        if raise_all:
            _raise_if_none_succeeded(replies)
        return replies

    def _exchange(self, commands: list[tuple], preamble: Sequence[tuple] = ()) -> list:
        """Every command's reply or error, following redirections; ``preamble``
        goes first in each node's packet (its replies are not returned)."""
        replies: list = [None] * len(commands)
        asked: dict[int, AskError] = {}  # commands a migrating slot sent elsewhere, once
        pending = list(range(len(commands)))
        for attempt in range(1 + self.REDIRECTS):
            packets: dict[str, tuple[ClusterNode, list[tuple[int | None, tuple]]]] = {}
            for i in pending:
                try:
                    node = self._node_at(asked[i]) if i in asked else self._node(commands[i])
                except (RedisClusterException, redis.RedisError) as error:
                    replies[i] = error
                    continue
                packet = packets.get(node.name)
                if packet is None:
                    packet = packets[node.name] = (node, [(None, c) for c in preamble])
                if i in asked:
                    packet[1].append((None, ("ASKING",)))
                packet[1].append((i, commands[i]))
            self._round_trip(packets, replies)
            asked = {}
            pending = [i for i in pending if isinstance(replies[i], AskError)]
            if not pending or attempt == self.REDIRECTS:
                break
            for i in pending:
                if isinstance(replies[i], MovedError):  # the slot has a new owner for good
                    self.client.nodes_manager.move_slot(replies[i])
                else:
                    asked[i] = replies[i]
        return replies

    def _node(self, command: tuple) -> ClusterNode:
        at = _KEY_AT.get(command[0])
        if at is None or (at == 3 and not command[2]):
            return self.client.get_default_node()
        slot = self.client.keyslot(command[at])
        return self.client.nodes_manager.get_node_from_slot(slot)

    def _node_at(self, redirect: AskError) -> ClusterNode:
        node = self.client.get_node(host=redirect.host, port=redirect.port)
        if node is None:
            where = f"{redirect.host}:{redirect.port}"
            raise redis.ConnectionError(f"asked to go to {where}, a node not in the slot map")
        return node

    def _round_trip(
        self,
        packets: dict[str, tuple[ClusterNode, list[tuple[int | None, tuple]]]],
        replies: list,
    ) -> None:
        """Write every node's packet, then read every reply into ``replies``."""
        written: list[tuple[str, redis.Connection, list[tuple[int | None, tuple]]]] = []
        try:
            for name, (node, entries) in packets.items():
                connection, used = self._take(node)
                try:
                    if used < time.monotonic() - self.IDLE_CHECK:
                        _drop_if_stale(connection)
                    connection.send_packed_command(
                        connection.pack_commands([command for _, command in entries])
                    )
                except _UNREACHABLE as error:  # redis-py has disconnected it
                    _fail(entries, replies, error)
                    self._give_back(name, connection)
                    continue
                written.append((name, connection, entries))
            while written:
                name, connection, entries = written[0]
                _read(connection, entries, replies)
                written.pop(0)
                self._give_back(name, connection)
        finally:
            for name, connection, _ in written:
                connection.disconnect()  # its next reply would answer someone else
                self._give_back(name, connection)

    def _give_back(self, name: str, connection: redis.Connection) -> None:
        self._idle.setdefault(name, []).append((connection, time.monotonic()))

    def _take(self, node: ClusterNode) -> tuple[redis.Connection, float]:
        """An idle connection to ``node`` and when it was last used, or a new one."""
        try:
            return self._idle.get(node.name, []).pop()
        except IndexError:
            pool = self.client.get_redis_connection(node).connection_pool
            return pool.connection_class(**pool.connection_kwargs), time.monotonic()

    def close(self) -> None:
        """Disconnect every idle connection."""
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection, _ in connections:
                connection.disconnect()

    def _after_fork(self) -> None:
        self._idle = {}


_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


def _read(
    connection: redis.Connection, entries: list[tuple[int | None, tuple]], replies: list
) -> None:
    """Read one node's replies into ``replies`` (error replies as their exception); a
    connection that fails is disconnected and fails the commands still unanswered."""
    for position, (index, _) in enumerate(entries):
        try:
            reply = connection.read_response()
        except ResponseError as error:  # MOVED, ASK and NOSCRIPT among them
            reply = error
        except _UNREACHABLE as error:
            connection.disconnect()
            _fail(entries[position:], replies, error)
            return
        if index is not None:
            replies[index] = reply


def _fail(entries: list[tuple[int | None, tuple]], replies: list, error: Exception) -> None:
    """``error`` as the reply of every command in ``entries``."""
    for index, _ in entries:
        if index is not None:
            replies[index] = error


def _raise_if_none_succeeded(replies: list) -> None:
    if replies and all(isinstance(reply, Exception) for reply in replies):
        raise replies[0]
