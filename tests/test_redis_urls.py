"""REDIS_URL forms: one server, a Redis Cluster, a Sentinel-watched primary."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import TEST_SECRET
from redis.cluster import RedisCluster
from topologies import Cluster, SentinelSetup, free_port

from abtest.cli import main
from abtest.config import ConfigError, Settings
from abtest.redis_urls import InvalidRedisURL, client_for, parse
from abtest.store import StoreError, connect


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "rediss://h:1/2", "unix:///tmp/redis.sock"]
)
def test_plain_urls_name_one_server(url):
    assert parse(url).kind == "single"


def test_a_cluster_url_lists_its_seed_nodes_and_password():
    topology = parse("redis+cluster://:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002")
    assert topology.kind == "cluster"
    assert topology.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert topology.password == "s@cret"


def test_a_sentinel_url_names_the_primary_and_database():
    topology = parse("redis+sentinel://:pw@s1:26379,s2:26380/news/3?sentinel_password=x")
    assert topology.kind == "sentinel"
    assert topology.nodes == (("s1", 26379), ("s2", 26380))
    assert (topology.service, topology.db, topology.password) == ("news", 3, "pw")
    assert topology.options == {"sentinel_password": "x"}


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://localhost", "must start with"),
        ("redis+sentinel://s1:26379", "name the monitored primary"),
        ("redis+sentinel://s1:26379/news/x", "not a database number"),
        ("redis+cluster://h:port", "not host:port"),
        ("redis+cluster://h:1/2", "only database 0"),
        ("redis+cluster://h:70000", "not host:port"),
    ],
)
def test_malformed_urls_say_what_is_wrong(url, message):
    with pytest.raises(InvalidRedisURL, match=message):
        parse(url)


@pytest.mark.slow
def test_cluster_and_sentinel_urls_reach_real_servers(tmp_path):
    cluster = Cluster(tmp_path / "cluster")
    try:
        client = client_for(cluster.url, decode_responses=True, socket_timeout=5)
        assert isinstance(client, RedisCluster)
        for name in ("{a}x", "{b}x", "{c}x", "{d}x"):
            client.set(name, name)
        assert [client.get(n) for n in ("{a}x", "{b}x", "{c}x", "{d}x")] == [
            "{a}x",
            "{b}x",
            "{c}x",
            "{d}x",
        ]
        # Four hash tags over three primaries: at least two of them hold keys.
        assert sum(bool(m.client().dbsize()) for m in cluster.masters) >= 2
    finally:
        cluster.stop()
    sentinel = SentinelSetup(tmp_path / "sentinel")
    try:
        client = client_for(sentinel.url, decode_responses=True, socket_timeout=5)
        client.set("k", "v")
        assert sentinel.primary.client().get("k") == "v"
    finally:
        sentinel.stop()


def test_a_redis_url_of_no_known_form_is_a_configuration_error():
    with pytest.raises(ConfigError, match="REDIS_URL: .*must start with"):
        Settings(redis_url="http://localhost:6379").validate()
    with pytest.raises(ConfigError, match="name the monitored primary"):
        Settings(redis_url="redis+sentinel://localhost:26379").validate()
    Settings(redis_url="redis+cluster://10.0.0.1:7000,10.0.0.2:7000").validate()


def test_a_cluster_that_cannot_be_reached_is_a_store_error():
    # A cluster client reads the slot map when it is made: nothing answers here.
    port = free_port()
    with pytest.raises(StoreError, match="Redis Cluster can't be reached"):
        connect(f"redis+cluster://127.0.0.1:{port}", timeout=0.5)


def test_a_command_says_the_cluster_cannot_be_reached(tmp_path):
    runner = CliRunner(
        env={
            "REDIS_URL": f"redis+cluster://127.0.0.1:{free_port()}",
            "ABTEST_DATA_DIR": str(tmp_path),
            "ABTEST_SECRET_KEY": TEST_SECRET,
        }
    )
    listed = runner.invoke(main, ["experiments", "list"])
    assert listed.exit_code == 1
    assert "Error: the Redis Cluster can't be reached" in listed.output
