"""The abtest command: a real `abtest serve`, and stats / experiments on a real Redis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import free_port, subprocess_env
from helpers import HEADLINES, SLUG, teasers

from abtest.cli import main

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"


def wait_for(url: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.slow
def test_serve_starts_its_own_redis_and_stops_it(tmp_path):
    port = free_port()
    data_dir = tmp_path / "data"
    env = subprocess_env(ABTEST_DATA_DIR=str(data_dir))
    server = subprocess.Popen(
        [sys.executable, "-m", "abtest.cli", "serve", "--port", str(port), "--workers", "2"]
        + ["--access-log"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        status, body = wait_for(f"http://127.0.0.1:{port}/healthz/ready")
        assert status == 200 and json.loads(body) == {"status": "ok", "redis": "ok"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/", headers={"User-Agent": BROWSER}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            ((_, headline),) = teasers(response.read())
        assert headline in HEADLINES
        token = (data_dir / "api_token").read_text().strip()
        stats = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/experiments/{SLUG}/stats",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(stats, timeout=30) as response:
            document = json.loads(response.read())
        assert sum(v["impressions"] for v in document["variants"]) == 1
        assert (data_dir / "redis.sock").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0, output
    assert "embedded Redis" in output
    assert "with 2 worker(s) of 8 thread(s)" in output
    # Stopped once, by the master: no worker unwinding through serve stops it
    # early (and the supervisor has nothing to restart).
    assert "restarting it" not in output and "exited with status" not in output
    assert "Control socket" not in output
    assert '"GET / HTTP/1.1" 200' in output  # the access log
    assert not (data_dir / "redis.owner").exists()
    assert not (data_dir / "redis.sock").exists()  # the embedded server was shut down
    assert (data_dir / "appendonlydir").exists() or (data_dir / "appendonly.aof").exists()


def test_serve_defaults_to_threaded_workers_and_offers_the_access_log(runner):
    from abtest.gunicorn import DEFAULT_THREADS, options

    result = runner.invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--access-log / --no-access-log" in result.output
    threads = next(p for p in main.commands["serve"].params if p.name == "threads")
    assert threads.default == DEFAULT_THREADS > 1
    chosen = options("127.0.0.1", 8000, 2)
    assert chosen["worker_class"] == "gthread" and chosen["threads"] == DEFAULT_THREADS
    assert chosen["preload_app"] is True and chosen["accesslog"] is None
    assert options("127.0.0.1", 8000, 2, access_log=True)["accesslog"] == "-"
    assert options("127.0.0.1", 8000, 2, threads=1)["worker_class"] == "sync"


def test_serve_refuses_production_with_a_default_secret(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "abtest.cli", "serve", "--port", str(free_port())],
        env=subprocess_env(ABTEST_ENV="production", ABTEST_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ABTEST_SECRET_KEY" in result.stderr


def test_stats_table_and_json(runner, client, service):
    response = client.get("/", headers={"User-Agent": BROWSER})
    ((link, headline),) = teasers(response.data)
    client.get(link, headers={"User-Agent": BROWSER})
    table = runner.invoke(main, ["stats", SLUG])
    assert table.exit_code == 0, table.output
    assert "P(best)" in table.output and "Verdict:" in table.output
    assert "anytime interval" in table.output
    assert "Fixed-sample tests, for reference" in table.output
    for text in HEADLINES:
        assert text in table.output
    document = json.loads(runner.invoke(main, ["stats", SLUG, "--json"]).output)
    assert document == service.report(SLUG).to_json()
    assert list(document) == [
        "experiment",
        "title",
        "status",
        "winner",
        "created_at",
        "variants",
        "tests",
        "decision",
        "alpha",
        "notes",
    ]
    assert [row["id"] for row in document["variants"]] == ["a", "b", "c"]
    assert list(document["tests"]) == ["chi_square", "pairwise", "sequential"]
    assert sum(v["clicks"] for v in document["variants"]) == 1


def test_stats_of_an_unknown_experiment_fails_clearly(runner, redis_client):
    result = runner.invoke(main, ["stats", "no-such-story"])
    assert result.exit_code != 0
    assert "no experiment 'no-such-story'" in result.output


def test_experiments_create_and_list(runner, redis_client, tmp_path):
    toml = tmp_path / "budget.toml"
    toml.write_text(
        'slug = "budget-vote"\ntitle = "Budget"\n'
        'headlines = ["Council passes budget", "Budget passes after late vote"]\n'
        'body = """First paragraph.\n\nSecond paragraph."""\n'
    )
    created = runner.invoke(main, ["experiments", "create", str(toml)])
    assert created.exit_code == 0, created.output
    listed = runner.invoke(main, ["experiments", "list"])
    assert "budget-vote\trunning" in listed.output and SLUG in listed.output
    again = runner.invoke(main, ["experiments", "create", str(toml)])
    assert again.exit_code != 0 and "exists already" in again.output

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"slug": "Bad Slug", "title": "", "headlines": ["One"], "body": "x"}))
    invalid = runner.invoke(main, ["experiments", "create", str(bad)])
    assert invalid.exit_code != 0
    for field in ("slug:", "title:", "headlines:"):
        assert field in invalid.output
    broken = tmp_path / "broken.toml"
    broken.write_text("slug = ")
    assert "not valid TOML" in runner.invoke(main, ["experiments", "create", str(broken)]).output


def test_hash_password_prints_only_a_working_hash(runner):
    from werkzeug.security import check_password_hash

    result = runner.invoke(main, ["hash-password"], input="correct horse\ncorrect horse\n")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    assert check_password_hash(line, "correct horse")
    short = runner.invoke(main, ["hash-password"], input="short\nshort\n")
    assert short.exit_code != 0 and "at least 8 characters" in short.output


def test_experiments_create_with_settings_and_change_them(runner, redis_client, tmp_path):
    from abtest import keys

    toml = tmp_path / "budget.toml"
    toml.write_text(
        'slug = "budget-vote"\ntitle = "Budget"\nheadlines = ["Passes", "Squeaks through"]\n'
        'body = "The council voted."\nallocation = "winner"\ncaring = 0.05\n'
    )
    created = runner.invoke(main, ["experiments", "create", str(toml)])
    assert created.exit_code == 0, created.output
    meta = redis_client.hgetall(keys.meta("budget-vote"))
    assert meta["allocation"] == "winner" and float(meta["caring"]) == 0.05
    listed = runner.invoke(main, ["experiments", "list"]).output
    assert "allocation=winner\tcaring=0.05" in listed
    assert "allocation=clicks\tcaring=0.02" in listed  # the seed story: the defaults

    changed = runner.invoke(main, ["experiments", "settings", "budget-vote", "--caring", "0.01"])
    assert changed.exit_code == 0, changed.output
    assert "allocation=winner, caring=0.01" in changed.output
    assert redis_client.lrange(keys.audit("budget-vote"), 0, -1)  # audited
    for arguments, message in (
        (["--caring", "2"], "caring:"),
        (["--allocation", "fastest"], "Invalid value"),
        (["--caring", "0.01"], "nothing changed"),
    ):
        refused = runner.invoke(main, ["experiments", "settings", "budget-vote", *arguments])
        assert refused.exit_code != 0 and message in refused.output, refused.output
    unknown = runner.invoke(main, ["experiments", "settings", "nope", "--caring", "0.01"])
    assert unknown.exit_code != 0 and "no experiment 'nope'" in unknown.output

    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "slug": "other",
                "title": "T",
                "headlines": ["A", "B"],
                "body": "x",
                "allocation": "fastest",
                "caring": 1,
            }
        )
    )
    invalid = runner.invoke(main, ["experiments", "create", str(bad)])
    assert invalid.exit_code != 0
    assert "allocation:" in invalid.output and "caring:" in invalid.output
    assert not redis_client.exists(keys.meta("other"))


def test_simulate_offers_exactly_the_simulators_allocations():
    # cli.py names them itself so that `abtest --help` doesn't import numpy
    # and scipy with abtest.simulate; this keeps the two lists one.
    from abtest import cli, simulate

    option = next(p for p in cli.simulate.params if p.name == "allocations")
    assert tuple(option.type.choices) == simulate.ALLOCATIONS


def test_experiments_actions_change_the_state_and_are_audited(runner, service, monkeypatch):
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # what getpass.getuser reads first
        monkeypatch.setenv(name, "night-desk")
    actor = "cli:night-desk"
    for arguments, said in (
        (["pause", SLUG], f"{SLUG}: paused"),
        (["resume", SLUG], f"{SLUG}: running"),
        (["decide", SLUG, "B"], f"{SLUG}: decided, winner B"),
        (["reopen", SLUG], f"{SLUG}: running"),
    ):
        result = runner.invoke(main, ["experiments", *arguments])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == said
    assert service.fresh(SLUG).status == "running"
    audit = list(reversed(service.audit(SLUG)))
    assert [(e["action"], e["editor"]) for e in audit] == [
        ("pause", actor),
        ("resume", actor),
        ("decide", actor),
        ("reopen", actor),
    ]
    assert audit[2]["winner"] == "b"
    changed = runner.invoke(main, ["experiments", "settings", SLUG, "--caring", "0.05"])
    assert changed.exit_code == 0, changed.output
    assert service.audit(SLUG)[0]["editor"] == actor


def test_experiments_actions_refuse_clearly(runner, service):
    for arguments, message in (
        (["pause", "nope"], "no experiment 'nope'"),
        (["decide", "nope", "a"], "no experiment 'nope'"),
        (["decide", SLUG, "z"], "no variant 'z': choose one of A, B, C"),
        (["resume", SLUG], "only a paused test can be resumed"),
        (["reopen", SLUG], "only a decided test can be reopened"),
    ):
        refused = runner.invoke(main, ["experiments", *arguments])
        assert refused.exit_code == 1, (arguments, refused.output)
        assert message in refused.output, refused.output
    missing = runner.invoke(main, ["experiments", "decide", SLUG])
    assert missing.exit_code == 2 and "VARIANT" in missing.output
    assert service.fresh(SLUG).status == "running"
    assert service.audit(SLUG) == []
    assert runner.invoke(main, ["experiments", "decide", SLUG, "a"]).exit_code == 0
    again = runner.invoke(main, ["experiments", "decide", SLUG, "b"])
    assert again.exit_code == 1 and "reopen the test first" in again.output
    assert runner.invoke(main, ["experiments", "pause", SLUG]).exit_code == 1
    assert (service.fresh(SLUG).status, service.fresh(SLUG).winner) == ("decided", "a")
    assert [e["action"] for e in service.audit(SLUG)] == ["decide"]
