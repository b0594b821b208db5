"""The servers ``abtest serve`` runs (abtest.server): granian by default, gunicorn on request.

Real ``abtest serve`` processes under each, against a redis-server of the
test's own: the workers start with the experiments the master read (a worker
that has served no one still serves readers while Redis is away); granian's
workers are forked from that master (so abtest.forks resets what they must
not share); a second server is refused the port rather than sharing it; a
request running when SIGTERM comes finishes, counted, and the server exits
0; a Ctrl-C stops every worker at once and the embedded Redis with a save; a
worker killed is replaced and its circuit state leaves /metrics.  Every wait
polls for a condition with a generous deadline.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest
from conftest import free_port
from helpers import HEADLINES, SLUG, teasers
from serving import OwnRedis, Serve, _command, alive, kill, wait_until

from abtest import keys, server
from abtest.server import SERVERS, ServeError


@pytest.fixture
def own_redis(tmp_path):
    own = OwnRedis(tmp_path).start()
    yield own
    own.kill()


def two_workers(serve: Serve) -> list[int]:
    return wait_until(
        lambda: len(found := serve.workers_running()) == 2 and found, 30, "two workers running"
    )


def reader_served(serve: Serve) -> bool:
    """A new reader on a new connection (a worker the kernel picks) gets a seed headline."""
    client = serve.client()
    try:
        response = client.get("/")
    finally:
        client.close()
    ((_, headline),) = teasers(response.body)
    return response.status == 200 and headline in HEADLINES


def impressions(client) -> int:
    counts = client.hgetall(keys.counts(SLUG))
    return sum(int(v) for k, v in counts.items() if k.startswith("i:"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", SERVERS)
def test_workers_start_from_the_masters_build_and_keep_their_port(tmp_path, own_redis, kind):
    with Serve(tmp_path / "data", server=kind, REDIS_URL=own_redis.url) as serve:
        workers = two_workers(serve)
        if kind == "granian" and sys.platform.startswith("linux"):
            # Forked from the master that built the app, not started afresh.
            assert all(_command(pid) == _command(serve.process.pid) for pid in workers)

        # Another server on the same port is refused in one sentence, not let in
        # beside this one (granian listens with SO_REUSEPORT).
        second = subprocess.run(
            [sys.executable, "-m", "abtest.cli", "serve", "--port", str(serve.port)]
            + ["--server", kind],
            env=serve.env | {"ABTEST_DATA_DIR": str(tmp_path / "second")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"port {serve.port} on 127.0.0.1 is in use" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr

        # No worker has served a reader yet; with Redis gone, each still
        # serves them from the experiments read before it started.
        own_redis.kill()
        assert all(reader_served(serve) for _ in range(20))
        assert serve.workers_running() == workers
    assert serve.process.returncode == 0, serve.output()


def test_granian_is_refused_a_port_another_server_shares_out():
    with socket.socket() as other:
        # As a granian worker listens: another granian could bind beside it.
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        built = []
        with pytest.raises(ServeError, match=f"port {port} on 127.0.0.1 is in use"):
            server.serve(lambda: built.append(1), "127.0.0.1", port, 1, server="granian")
        assert built == []  # refused before anything was built


def stopping(serve: Serve, kind: str) -> bool:
    """The server says it is stopping: granian's every worker has its signal; gunicorn's
    master has taken SIGTERM (it signals the workers as it says so)."""
    output = serve.output()
    if kind == "granian":
        return output.count("] Stopping worker-") == serve.workers
    return "Handling signal: term" in output


def counting_waits(client) -> bool:
    """A counting script waits in Redis (held by CLIENT PAUSE WRITE)."""
    return any(c["cmd"] == "evalsha" and "b" in c["flags"] for c in client.client_list())


@pytest.mark.slow
@pytest.mark.parametrize("kind", SERVERS)
def test_sigterm_lets_a_running_request_finish_and_exits_0(tmp_path, own_redis, kind):
    serve = Serve(
        tmp_path / "data",
        server=kind,
        REDIS_URL=own_redis.url,
        # The new reader's count waits as long as the test holds it.
        ABTEST_REDIS_TIMEOUT="60",
    ).start()
    admin = own_redis.client()
    reply: dict = {}
    try:
        before = impressions(admin)
        # Writes wait (the counting script among them); reads go on.
        admin.client_pause(120_000, all=False)

        def new_reader() -> None:
            client = serve.client()
            client.timeout = 120
            try:
                reply["response"] = client.get("/")
            except OSError as error:
                reply["error"] = repr(error)
            finally:
                client.close()

        reader = threading.Thread(target=new_reader, daemon=True)
        reader.start()
        wait_until(lambda: counting_waits(admin), 30, "the new reader's count waits in Redis")
        serve.process.send_signal(signal.SIGTERM)
        wait_until(lambda: stopping(serve, kind), 30, "the server stopping")
        assert reader.is_alive() and not reply  # the request still runs
        admin.client_unpause()
        reader.join(timeout=60)
        serve.process.wait(timeout=60)
    finally:
        admin.client_unpause()
        serve.stop()
    assert "error" not in reply, reply
    response = reply["response"]
    assert response.status == 200 and response.cookie  # served, and counted
    assert impressions(admin) == before + 1
    assert serve.process.returncode == 0, serve.output()


@pytest.mark.slow
@pytest.mark.parametrize("kind", SERVERS)
def test_ctrl_c_stops_every_worker_and_the_embedded_redis_with_a_save(tmp_path, kind):
    data = tmp_path / "data"
    serve = Serve(data, server=kind, own_group=True).start()
    try:
        workers = two_workers(serve)
        assert reader_served(serve)
        # A terminal's Ctrl-C: SIGINT to every process of the group at once;
        # then the master signals each worker too.
        os.killpg(serve.process.pid, signal.SIGINT)
        serve.process.wait(timeout=60)
    finally:
        serve.stop()
    output = serve.output()
    assert serve.process.returncode == 0, output
    assert not any(map(alive, workers))
    # Every worker stopped on its own (granian kills one that does not).
    assert "refused to gracefully stop" not in output, output
    assert not (data / "redis.sock").exists() and not (data / "redis.owner").exists()
    assert "restarting it" not in output


#: A live gauge's file in the metrics directory (prometheus-client's multiprocess mode).
_LIVE_GAUGE = re.compile(r"gauge_live\w*?_(\d+)\.db")


def circuit_open(port: int, token: str) -> float:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return float(re.search(r"^abtest_circuit_open (\S+)$", text, re.MULTILINE).group(1))


@pytest.mark.slow
@pytest.mark.parametrize("kind", SERVERS)
def test_a_killed_worker_is_replaced_and_its_circuit_state_forgotten(tmp_path, own_redis, kind):
    data = tmp_path / "data"
    token = "metrics-token-of-the-test-0123456789"
    with Serve(data, server=kind, REDIS_URL=own_redis.url, ABTEST_METRICS_TOKEN=token) as serve:
        workers = two_workers(serve)
        directory = data / "metrics" / str(serve.process.pid)
        own_redis.kill()

        def opened() -> list[int]:
            """Workers whose breaker has opened (each wrote its circuit state)."""
            assert reader_served(serve)  # uncounted, at once or within the Redis timeout
            found = (_LIVE_GAUGE.fullmatch(path.name) for path in directory.iterdir())
            return [int(m.group(1)) for m in found if m and int(m.group(1)) in workers]

        # Both, so that no worker left alive can open its circuit later (a reader
        # it serves while Redis is away would) and hold the gauge at 1.
        broken = wait_until(
            lambda: len(found := opened()) == 2 and found, 30, "both workers' breakers opened"
        )
        assert circuit_open(serve.port, token) == 1
        for pid in broken:
            kill(pid)
        wait_until(lambda: not any(map(alive, broken)), 15, "the workers killed")

        def replaced() -> bool:
            running = serve.workers_running()
            return len(running) == 2 and not set(running) & set(broken)

        wait_until(replaced, 30, "the killed workers replaced")
        # Redis is still away: only forgetting the dead workers' state makes it 0.
        wait_until(lambda: circuit_open(serve.port, token) == 0, 30, "their circuit forgotten")
        assert reader_served(serve)
    assert serve.process.returncode == 0, serve.output()


def test_serve_refuses_an_unknown_server():
    with pytest.raises(ValueError, match="unknown server 'uwsgi'"):
        server.serve(lambda: None, "127.0.0.1", free_port(), 1, server="uwsgi")
