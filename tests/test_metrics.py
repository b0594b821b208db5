"""/metrics: the token, requests by route and status, the counters, every worker summed."""

from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from conftest import REPO, TEST_API_TOKEN, free_port, subprocess_env
from helpers import BROWSER, SLUG, front
from prometheus_client.parser import text_string_to_metric_families

from abtest import create_app, metrics
from abtest.gunicorn import options

AUTH = {"Authorization": f"Bearer {TEST_API_TOKEN}"}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape: ``(name, labels) -> value``."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def scrape(client) -> dict:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.data
    return samples(response.get_data(as_text=True))


def requests_total(found: dict, route: str, status: str) -> float:
    return value(found, "abtest_http_requests_total", route=route, status=status)


# -- the token ---------------------------------------------------------------


def test_metrics_answer_only_the_token(client):
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"
    assert "# TYPE abtest_impressions_total counter" in response.text
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TEST_API_TOKEN}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "abtest_" not in refused.text
        # Words, not a <placeholder> that vanishes wherever the message is shown as HTML.
        message = refused.json["error"]
        assert "<" not in message and ">" not in message
        assert "Authorization: Bearer followed by a space and the metrics token" in message
        assert "ABTEST_METRICS_TOKEN" in message and "ABTEST_API_TOKEN" in message


def _app(settings, redis_client, **changes):
    app = create_app(dataclasses.replace(settings, **changes), redis=redis_client)
    # A development app fills a missing API token from the data dir: keep the one asked for.
    app.extensions["abtest"]["settings"] = dataclasses.replace(
        app.extensions["abtest"]["settings"], **changes
    )
    return app


def test_a_metrics_token_replaces_the_api_token(settings, redis_client):
    app = _app(settings, redis_client, metrics_token="metrics-token-0123456789")
    try:
        client = app.test_client()
        assert client.get("/metrics", headers=AUTH).status_code == 401
        opened = client.get(
            "/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"}
        )
        assert opened.status_code == 200 and "abtest_" in opened.text
    finally:
        app.extensions["abtest"]["service"].stop()


def test_metrics_are_off_without_any_token(settings, redis_client):
    app = _app(settings, redis_client, api_token=None, metrics_token=None)
    try:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            off = app.test_client().get("/metrics", headers=headers)
            assert off.status_code == 404
            assert "ABTEST_METRICS_TOKEN" in off.get_json()["error"]
    finally:
        app.extensions["abtest"]["service"].stop()


# -- what is recorded --------------------------------------------------------


def test_requests_are_counted_by_route_and_status(client):
    before = scrape(client)
    front(client)
    front(client)
    client.get("/articles/no-such-story", headers={"User-Agent": BROWSER})
    client.get("/a-path-nobody-routes-x1", headers={"User-Agent": BROWSER})
    client.get("/a-path-nobody-routes-x2", headers={"User-Agent": BROWSER})
    client.post("/", headers={"User-Agent": BROWSER})
    client.get(f"/api/v1/experiments/{SLUG}/stats")
    response = client.get("/metrics", headers=AUTH)
    after = samples(response.get_data(as_text=True))

    def delta(route: str, status: str) -> float:
        return requests_total(after, route, status) - requests_total(before, route, status)

    assert delta("reader.front", "200") == 2
    assert delta("reader.article", "404") == 1
    assert delta("unmatched", "404") == 2  # the path itself is never a label
    assert delta("unmatched", "405") == 1  # a method no route takes
    assert delta("api.stats", "401") == 1
    assert "a-path-nobody-routes" not in response.text
    # The first scrape is counted once its answer has started.
    assert delta("ops.metrics", "200") == 1


def test_the_service_counters_are_exposed(client):
    before = scrape(client)
    metrics.impressions("counted", n=3)
    metrics.impressions("excluded", "rate-limited")
    metrics.clicks("uncounted", "circuit-open", 2)
    metrics.redis_seconds("impression", 0.003)
    metrics.REDIS_SECONDS.labels("click").observe(0.2)
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("abtest_impressions_total", outcome="counted", reason="") == 3
    assert delta("abtest_impressions_total", outcome="excluded", reason="rate-limited") == 1
    assert delta("abtest_clicks_total", outcome="uncounted", reason="circuit-open") == 2
    assert delta("abtest_redis_seconds_count", call="impression") == 1
    assert delta("abtest_redis_seconds_bucket", call="impression", le="0.005") == 1
    assert delta("abtest_redis_seconds_bucket", call="impression", le="0.002") == 0
    assert delta("abtest_redis_seconds_bucket", call="click", le="0.25") == 1
    try:
        metrics.circuit(True)
        assert value(scrape(client), "abtest_circuit_open") == 1
    finally:
        metrics.circuit(False)
    assert value(scrape(client), "abtest_circuit_open") == 0


def test_the_child_exit_hook_is_harmless_in_one_process():
    hook = options("127.0.0.1", 8000, 2)["child_exit"]
    hook(None, SimpleNamespace(pid=2**22 + 1))  # no multiprocess directory: nothing to do


# -- several processes -------------------------------------------------------

_PROCESSES = """
import os, sys
from pathlib import Path
from types import SimpleNamespace

data = Path(sys.argv[1])
gone = data / "metrics" / "999999999"           # a master that no longer runs
gone.mkdir(parents=True)
mine = data / "metrics" / str(os.getpid())      # an earlier run with this pid
mine.mkdir()
(mine / "counter_1.db").write_bytes(b"left over")

from abtest import metrics                      # built in one-process mode first
from abtest.gunicorn import options
from abtest.server import forget_dead_workers

directory = metrics.prepare_multiprocess(data)
assert directory == mine and not gone.exists() and not (mine / "counter_1.db").exists()
children = []
done, finish = os.pipe()                        # the second child lives until told
counted, recorded = os.pipe()
for n, circuit_open in ((3, True), (4, False)):
    pid = os.fork()
    if pid == 0:
        metrics.impressions("counted", n=n)
        metrics.request_child("reader.front", "200 OK").inc(n)
        metrics.circuit(circuit_open)
        if circuit_open:
            os._exit(0)
        os.write(recorded, b"x")
        os.read(done, 1)
        sys.exit(0)                             # runs atexit here: the directory must stay
    children.append(pid)
os.waitpid(children[0], 0)
os.read(counted, 1)
assert directory.exists()
print(metrics.exposition()[0].decode())
print("----")
if sys.argv[2] == "gunicorn":                   # gunicorn says which worker it reaped
    options("127.0.0.1", 8000, 2)["child_exit"](None, SimpleNamespace(pid=children[0]))
else:                                           # granian's master looks for dead ones
    assert forget_dead_workers() == [children[0]]  # not the live one, nor this process
    assert forget_dead_workers() == []
print(metrics.exposition()[0].decode())
print("----")
os.write(finish, b"x")
os.waitpid(children[1], 0)
assert directory.exists()
print(directory)
"""


@pytest.mark.parametrize("kind", ["granian", "gunicorn"])
def test_processes_are_summed_and_a_dead_ones_circuit_forgotten(tmp_path, kind):
    result = subprocess.run(
        [sys.executable, "-c", _PROCESSES, str(tmp_path), kind],
        env=subprocess_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    both, after_exit, directory = result.stdout.split("----\n")
    found = samples(both)
    assert value(found, "abtest_impressions_total", outcome="counted", reason="") == 7
    assert requests_total(found, "reader.front", "200") == 7
    assert value(found, "abtest_circuit_open") == 1  # the first child's
    found = samples(after_exit)
    assert value(found, "abtest_circuit_open") == 0  # reaped: its state is gone
    assert value(found, "abtest_impressions_total", outcome="counted", reason="") == 7
    # The master removes its directory when it exits.
    assert not (tmp_path / "metrics" / directory.strip().rsplit("/", 1)[-1]).exists()
    assert (tmp_path / "metrics").is_dir()


def _get(url: str, headers: dict | None = None, timeout: float = 30):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def _wait_until_up(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _get(f"http://127.0.0.1:{port}/healthz/live", timeout=5)
            return
        except urllib.error.HTTPError:
            return  # answering
        except (urllib.error.URLError, ConnectionError):
            assert server.poll() is None, "abtest serve exited"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _writers(directory) -> set[str]:
    """The processes that have counted something: one counter file each."""
    return {path.stem.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["granian", "gunicorn"])
def test_serve_sums_its_workers(tmp_path, kind):
    port = free_port()
    data_dir = tmp_path / "data"
    server = subprocess.Popen(
        [sys.executable, "-m", "abtest.cli", "serve", "--port", str(port), "--workers", "2"]
        + ["--server", kind]
        # gunicorn's sync workers: one held connection holds its worker.
        + (["--threads", "1"] if kind == "gunicorn" else []),
        env=subprocess_env(ABTEST_DATA_DIR=str(data_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    directory = data_dir / "metrics" / str(server.pid)
    try:
        _wait_until_up(port, server)
        readers = 0
        if kind == "gunicorn":
            # One worker takes this connection and waits for the rest of its
            # request, so every request until it is finished goes to the other.
            held = socket.create_connection(("127.0.0.1", port), timeout=60)
            held.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for _ in range(12):
                status, _ = _get(f"http://127.0.0.1:{port}/", {"User-Agent": BROWSER})
                assert status == 200
                readers += 1
            held.sendall(f"User-Agent: {BROWSER}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := held.recv(65536):
                answer += chunk
            held.close()
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            readers += 1
        else:
            # granian's workers each listen on the port (SO_REUSEPORT): the
            # kernel spreads new connections over them.  Readers until both
            # have counted some.
            deadline = time.monotonic() + 60
            while len(_writers(directory)) < 2:
                assert time.monotonic() < deadline, "one worker took every connection"
                status, _ = _get(f"http://127.0.0.1:{port}/", {"User-Agent": BROWSER})
                assert status == 200
                readers += 1

        token = (data_dir / "api_token").read_text().strip()
        status, body = _get(
            f"http://127.0.0.1:{port}/metrics", {"Authorization": f"Bearer {token}"}
        )
        found = samples(body.decode())
        # No one worker served every reader: only all of them together make the total.
        assert requests_total(found, "reader.front", "200") == readers
        counted = value(found, "abtest_impressions_total", outcome="counted", reason="")
        assert counted == readers
        # Present (the master's 0) before any worker's breaker has moved.
        assert found[("abtest_circuit_open", frozenset())] == 0
        assert len(_writers(directory)) >= 2
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0, output
    assert not directory.exists()  # removed by the master on its way out
