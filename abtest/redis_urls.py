"""Redis clients from URLs: one server, a Redis Cluster, or a Sentinel-watched primary.

=========================================================  ===================================
``REDIS_URL``                                              client
=========================================================  ===================================
``redis://[:password@]host:port/db``, ``rediss://...``,    one server (redis-py's ``from_url``)
``unix:///path.sock``
``redis+cluster://[:password@]host:port[,host:port...]``   :class:`redis.cluster.RedisCluster`
                                                           seeded from every listed node
``redis+sentinel://[:password@]host:port[,host:port...]``  the primary of ``service`` as the
``/service[/db]``                                          listed sentinels report it, found
                                                           again after a failover
=========================================================  ===================================

A password in the URL is the data servers' (``requirepass``); sentinels are
asked without one unless ``?sentinel_password=`` is given.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

__all__ = ["client_for", "Topology", "parse", "InvalidRedisURL"]

CLUSTER = "redis+cluster"
SENTINEL = "redis+sentinel"


class InvalidRedisURL(ValueError):
    """A REDIS_URL this service cannot use; the message says what is wrong."""


class Topology(NamedTuple):
    """What a URL names."""

    kind: str  # "single", "cluster" or "sentinel"
    nodes: tuple[tuple[str, int], ...]  # cluster seeds or sentinels; () for "single"
    password: str | None
    service: str | None  # sentinel: the monitored primary's name
    db: int
    options: dict[str, str]


def _nodes(netloc: str, url: str) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rpartition("@")[2]
    nodes = []
    for part in hosts.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon:
            host, port = part.strip(), ""
        host = host.strip("[]")
        try:
            number = int(port) if port else 6379
        except ValueError:
            raise InvalidRedisURL(f"{url!r}: {part!r} is not host:port") from None
        if not host or not 0 < number < 65536:
            raise InvalidRedisURL(f"{url!r}: {part!r} is not host:port")
        nodes.append((host, number))
    return tuple(nodes)


def parse(url: str) -> Topology:
    """The topology ``url`` names; raises :class:`InvalidRedisURL`."""
    scheme = url.partition("://")[0].lower()
    if scheme not in {CLUSTER, SENTINEL}:
        if scheme not in {"redis", "rediss", "unix"}:
            raise InvalidRedisURL(
                f"{url!r}: REDIS_URL must start with redis://, rediss://, unix://, "
                "redis+cluster:// or redis+sentinel://"
            )
        return Topology("single", (), None, None, 0, {})
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    password = unquote(userinfo.partition(":")[2]) if userinfo else None
    nodes = _nodes(parts.netloc, url)
    options = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    path = [p for p in parts.path.split("/") if p]
    if scheme == CLUSTER:
        if path and path != ["0"]:
            raise InvalidRedisURL(f"{url!r}: a Redis Cluster has only database 0")
        return Topology("cluster", nodes, password or None, None, 0, options)
    if not path or len(path) > 2:
        raise InvalidRedisURL(
            f"{url!r}: name the monitored primary: redis+sentinel://host:port/service[/db]"
        )
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise InvalidRedisURL(f"{url!r}: {path[1]!r} is not a database number") from None
    return Topology("sentinel", nodes, password or None, path[0], db, options)


def client_for(url: str, **options) -> redis.Redis | RedisCluster:
    """A client for ``url`` with redis-py connection ``options`` (timeouts, decoding)."""
    topology = parse(url)
    if topology.kind == "single":
        return redis.Redis.from_url(url, **options)
    if topology.kind == "cluster":
        options.pop("health_check_interval", None)
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in topology.nodes],
            password=topology.password,
            **options,
        )
    sentinel_options = {
        key: options[key] for key in ("socket_timeout", "socket_connect_timeout") if key in options
    }
    if "sentinel_password" in topology.options:
        sentinel_options["password"] = topology.options["sentinel_password"]
    sentinel = Sentinel(list(topology.nodes), sentinel_kwargs=sentinel_options)
    return sentinel.master_for(
        topology.service, password=topology.password, db=topology.db, **options
    )
