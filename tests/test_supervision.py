"""The embedded Redis looked after: restarted when it dies, never left behind, a stale one cleared.

Real processes throughout: ``abtest serve`` and its bundled redis-server,
killed with SIGKILL.  Counts "acknowledged" are those whose reader got a
cookie: Redis confirmed them.  The embedded Redis fsyncs its append-only file
every second but writes each command to it before replying, so a killed
redis-server (not a crashed machine) keeps every acknowledged count; the
tests wait until Redis reports its AOF buffer written before killing it, and
then require the counts exactly.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest
from serving import Serve, alive, kill, wait_until

from abtest import keys
from abtest.embedded import EmbeddedRedis, EmbeddedRedisError, redis_server_executable
from abtest.model import SEED_SLUG

pytestmark = pytest.mark.slow


def embedded_client(data_dir):
    return EmbeddedRedis(data_dir).client(decode_responses=True, socket_timeout=5)


def impressions(client) -> int:
    counts = client.hgetall(keys.counts(SEED_SLUG))
    return sum(int(v) for k, v in counts.items() if k.startswith("i:"))


def written(client) -> bool:
    """Redis has written every acknowledged command to its append-only file."""
    return int(client.info("persistence")["aof_buffer_length"]) == 0


def new_visitor_counted(server) -> bool:
    client = server.client()
    try:
        return client.get("/").cookie is not None
    except OSError:
        return False
    finally:
        client.close()


def test_a_killed_embedded_redis_is_restarted_and_counting_resumes(tmp_path):
    data = tmp_path / "data"
    with Serve(data) as server:
        redis = embedded_client(data)
        acknowledged = sum(new_visitor_counted(server) for _ in range(30))
        assert acknowledged == 30
        wait_until(lambda: written(redis), 10, "the AOF buffer written")
        assert impressions(redis) == acknowledged
        old_pid = int(redis.info("server")["process_id"])

        kill(old_pid)
        killed = time.monotonic()
        # Every reader counted from here on adds to the acknowledged counts.
        later = 0
        while not new_visitor_counted(server):
            assert time.monotonic() - killed < 5.0, "counting did not resume within 5 s"
            time.sleep(0.02)
        later += 1
        resumed = time.monotonic() - killed
        # Each worker's first count on a connection to the old server fails (a
        # count is never retried) and opens its breaker for a moment: in a
        # while every worker counts again.
        streak = 0
        while streak < 20:
            counted = new_visitor_counted(server)
            later += counted
            streak = streak + 1 if counted else 0
            assert time.monotonic() - killed < 30.0, "some worker did not count again"
        steady = time.monotonic() - killed

        redis = embedded_client(data)
        assert int(redis.info("server")["process_id"]) != old_pid
        assert impressions(redis) == acknowledged + later  # none lost, none doubled
        assert server.process.poll() is None  # abtest itself was not restarted
        print(
            f"\nSIGKILL of the embedded redis-server: counting resumed after {resumed:.2f} s, "
            f"20 new readers in a row counted after {steady:.2f} s"
        )
    assert "restarting it" in server.output()


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_serve_starts_again_after_its_master_was_killed(tmp_path, server):
    data = tmp_path / "data"
    first = Serve(data, server=server).start()
    try:
        assert new_visitor_counted(first)
        redis = embedded_client(data)
        wait_until(lambda: written(redis), 10, "the AOF buffer written")
        redis_pid = int(redis.info("server")["process_id"])
        workers = wait_until(
            lambda: len(found := first.workers_running()) == 2 and found, 15, "two workers"
        )
        kill(first.process.pid)
        first.process.wait()
        # The kernel sends the orphan SIGTERM: it saves and exits by itself.
        wait_until(lambda: not alive(redis_pid), 15, "the orphaned redis-server exits")
        # The workers go too: none is left serving on the port without a master.
        wait_until(lambda: not any(map(alive, workers)), 15, "the orphaned workers exit")
    finally:
        first.stop()

    with Serve(data, port=first.port, server=server) as second:
        assert impressions(embedded_client(data)) == 1
        assert new_visitor_counted(second)
    assert second.process.returncode == 0, second.output()
    assert "already serves" not in second.output()


def leave_a_stale_server(data_dir) -> subprocess.Popen:
    """A redis-server on ``data_dir``'s socket whose abtest died without taking it along
    (as on a system without PR_SET_PDEATHSIG): its owner file names a pid that has exited."""
    with EmbeddedRedis(data_dir) as first:  # writes the configuration
        config = first.config
    stale = subprocess.Popen([redis_server_executable(), str(config)], start_new_session=True)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (data_dir / "redis.owner").write_text(gone.stdout)
    server = EmbeddedRedis(data_dir)
    wait_until(server.running_elsewhere, 15, "the stale redis-server answers")
    return stale


def test_a_stale_embedded_redis_whose_owner_is_gone_is_shut_down_with_a_save(tmp_path, caplog):
    stale = leave_a_stale_server(tmp_path)
    try:
        client = EmbeddedRedis(tmp_path).client(decode_responses=True, socket_timeout=5)
        client.set("kept", "yes")
        with caplog.at_level(logging.WARNING, logger="abtest.embedded"):
            server = EmbeddedRedis(tmp_path).start()
        try:
            assert stale.wait(timeout=15) == 0  # SHUTDOWN SAVE, not a kill
            assert "which is gone" in caplog.text and "final save" in caplog.text
            fresh = server.client(decode_responses=True, socket_timeout=5)
            assert fresh.get("kept") == "yes"
            assert int(fresh.info("server")["process_id"]) == server.process.pid
        finally:
            server.stop()
    finally:
        kill(stale.pid)
        stale.wait()


def test_a_running_embedded_redis_with_a_live_owner_is_left_alone(tmp_path):
    with EmbeddedRedis(tmp_path) as running:
        with pytest.raises(EmbeddedRedisError, match="already serves"):
            EmbeddedRedis(tmp_path).start()
        assert running.client(socket_timeout=5).ping()
        assert running.process.poll() is None


def test_a_server_with_no_owner_on_record_is_left_alone_with_a_clear_message(tmp_path):
    stale = leave_a_stale_server(tmp_path)
    try:
        (tmp_path / "redis.owner").unlink()  # started by something else: not ours to stop
        with pytest.raises(EmbeddedRedisError, match="already serves") as refused:
            EmbeddedRedis(tmp_path).start()
        assert f"pid {stale.pid}" in str(refused.value)
        assert stale.poll() is None
    finally:
        kill(stale.pid)
        stale.wait()
