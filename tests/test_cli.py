"""The abtest command: a real `abtest serve`, and stats / experiments on a real Redis."""

from __future__ import annotations

import json
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import TEST_SECRET, free_port, subprocess_env
from helpers import HEADLINES, SLUG, teasers

from abtest.cli import NO_EDITOR, main

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
@pytest.mark.parametrize("kind", ["granian", "gunicorn"])
def test_serve_starts_its_own_redis_and_stops_it(tmp_path, kind):
    port = free_port()
    data_dir = tmp_path / "data"
    env = subprocess_env(ABTEST_DATA_DIR=str(data_dir))
    server = subprocess.Popen(
        [sys.executable, "-m", "abtest.cli", "serve", "--port", str(port), "--workers", "2"]
        + ["--access-log", "--server", kind],
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
        # README's curl example: the token of this data directory, however it is set.
        token = subprocess.run(
            [sys.executable, "-m", "abtest.cli", "api-token"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        assert token == (data_dir / "api_token").read_text().strip()
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
    assert NO_EDITOR in output  # nobody can sign in yet: said, with the command to fix it
    # Stopped once, by the master: no worker unwinding through serve stops it
    # early (and the supervisor has nothing to restart).
    assert "restarting it" not in output and "exited with status" not in output
    assert "Control socket" not in output
    assert '"GET / HTTP/1.1" 200' in output  # the access log
    assert not (data_dir / "redis.owner").exists()
    assert not (data_dir / "redis.sock").exists()  # the embedded server was shut down
    assert (data_dir / "appendonlydir").exists() or (data_dir / "appendonly.aof").exists()


def test_serve_defaults_to_granian_with_threads_and_offers_the_access_log(runner):
    from abtest import server
    from abtest.gunicorn import options

    result = runner.invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--access-log / --no-access-log" in result.output
    assert "--server [granian|gunicorn]" in result.output
    params = {p.name: p for p in main.commands["serve"].params}
    assert params["server"].default == server.DEFAULT_SERVER == "granian"
    assert tuple(params["server"].type.choices) == server.SERVERS
    assert params["threads"].default == server.DEFAULT_THREADS > 1
    # granian: --threads is each worker's blocking threads (the app's threads).
    chosen = server.granian_options("127.0.0.1", 8000, 2)
    assert chosen["blocking_threads"] == server.DEFAULT_THREADS and chosen["workers"] == 2
    assert chosen["interface"] == "wsgi" and chosen["log_access"] is False
    assert chosen["respawn_failed_workers"] is True
    assert chosen["workers_kill_timeout"] == server.GRACEFUL_TIMEOUT
    assert server.granian_options("127.0.0.1", 8000, 2, access_log=True)["log_access"] is True
    assert server.granian_options("127.0.0.1", 8000, 2, threads=1)["blocking_threads"] == 1
    # gunicorn: gthread workers, or sync with one thread.
    chosen = options("127.0.0.1", 8000, 2)
    assert chosen["worker_class"] == "gthread" and chosen["threads"] == server.DEFAULT_THREADS
    assert chosen["preload_app"] is True and chosen["accesslog"] is None
    assert chosen["graceful_timeout"] == server.GRACEFUL_TIMEOUT
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
        "simpson",
        "reward",
        "denominator",
        "seen_check",
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
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.output.splitlines()
    assert header.split() == [
        "slug",
        "status",
        "headlines",
        "impressions",
        "clicks",
        "allocation",
        "caring",
        "reward",
        "denominator",
        "winner",
    ]
    assert [row.split() for row in rows] == [
        ["budget-vote", "running", "2", "0", "0", "clicks", "0.02", "click", "served"],
        [SLUG, "running", "3", "0", "0", "clicks", "0.02", "click", "served"],
    ]
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
    settings = {row.split()[0]: row.split()[5:7] for row in listed.splitlines()[1:]}
    assert settings["budget-vote"] == ["winner", "0.05"]
    assert settings[SLUG] == ["clicks", "0.02"]  # the seed story: the defaults

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


def test_experiments_list_shows_the_winner_as_its_headline(runner, service):
    service.decide(SLUG, "b", "test")
    listed = runner.invoke(main, ["experiments", "list"])
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.splitlines()
    assert row.startswith(f"{SLUG}  decided")
    assert row.endswith(f"B: {HEADLINES[1]}")
    # Aligned under its header.
    assert row.index("B: ") == header.index("winner")


def test_help_lists_each_command_in_a_whole_sentence(runner):
    """click cuts a command's description to one terminal line ("...")."""
    for group in ([], ["experiments"], ["editors"]):
        shown = runner.invoke(main, [*group, "--help"], terminal_width=80)
        assert shown.exit_code == 0, shown.output
        listing = " ".join(shown.output.partition("Commands:")[2].split())
        # click's cut: "...; pause, resume,..." (a word, then the dots).
        assert listing and not re.search(r"\S\.\.\.", listing), listing
        command = main
        for name in group:
            command = command.commands[name]
        for name, sub in command.commands.items():
            first = " ".join((sub.help or "").split("\n\n")[0].split())
            sentence = first[: first.index(". ") + 1] if ". " in first else first
            assert f"{name} {sentence}" in listing, (name, listing)


def test_help_imports_neither_numpy_nor_scipy_nor_flask():
    """`abtest --help` answers at once: the heavy imports wait for the commands that use them."""
    script = (
        "import json, sys\n"
        "from abtest.cli import main\n"
        "for arguments in (['--help'], ['experiments', '--help'], ['editors', '--help']):\n"
        "    try:\n"
        "        main(arguments)\n"
        "    except SystemExit as done:\n"
        "        assert done.code == 0, arguments\n"
        "heavy = ('numpy', 'scipy', 'flask', 'werkzeug', 'gunicorn', 'redis', 'prometheus_client')"
        "\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Commands:" in result.stdout
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []


def test_serve_on_a_busy_port_fails_at_once_with_one_message(tmp_path):
    port = free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        result = subprocess.run(
            [sys.executable, "-m", "abtest.cli", "serve", "--port", str(port)],
            env=subprocess_env(ABTEST_DATA_DIR=str(tmp_path / "data")),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stdout == ""  # no "serving on", no embedded Redis started
    assert result.stderr.splitlines() == [
        f"Error: port {port} on 127.0.0.1 is in use by another program: "
        "stop it, or choose another port with --port"
    ]
    assert not (tmp_path / "data" / "redis.sock").exists()


def test_api_token_is_the_data_directorys(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("ABTEST_API_TOKEN", raising=False)
    monkeypatch.delenv("ABTEST_SECRET_KEY")  # as `abtest serve` in development generates both
    data_dir = tmp_path / "elsewhere"
    monkeypatch.setenv("ABTEST_DATA_DIR", str(data_dir))
    printed = runner.invoke(main, ["api-token"])
    assert printed.exit_code == 0, printed.output
    token = (data_dir / "api_token").read_text().strip()
    assert printed.stdout == f"{token}\n" and len(token) >= 32
    assert runner.invoke(main, ["api-token"]).stdout == printed.stdout  # generated once
    assert runner.invoke(main, ["api-token", "--path"]).stdout == f"{data_dir / 'api_token'}\n"

    monkeypatch.setenv("ABTEST_API_TOKEN", "token-from-the-environment")
    assert runner.invoke(main, ["api-token"]).stdout == "token-from-the-environment\n"
    no_file = runner.invoke(main, ["api-token", "--path"])
    assert no_file.exit_code == 1 and "comes from ABTEST_API_TOKEN" in no_file.output

    monkeypatch.delenv("ABTEST_API_TOKEN")
    monkeypatch.setenv("ABTEST_SECRET_KEY", TEST_SECRET)
    without = runner.invoke(main, ["api-token"])
    assert without.exit_code == 1 and "set ABTEST_API_TOKEN" in without.output
    monkeypatch.setenv("ABTEST_ENV", "production")
    monkeypatch.setenv("ABTEST_SECRET_KEY", secrets.token_urlsafe(32))
    refused = runner.invoke(main, ["api-token"])
    assert refused.exit_code == 1, refused.output
    assert "in production set ABTEST_API_TOKEN" in refused.output


def warnings(lines: list[str]) -> list[str]:
    """Each warning in the output, its wrapped lines (at most 100 characters) joined."""
    found = []
    for line in lines:
        if line.startswith("Warning:"):
            found.append(line)
        elif found and line.startswith("  "):
            found[-1] += " " + line.strip()
        elif found:
            break  # the blank line after the warnings
        assert not found or len(line) <= 100, line
    return found


def test_stats_shows_every_count_and_what_the_verdict_counts(runner, service, redis_client):
    from abtest import keys

    # B's slot is seen by 31% of its readers, A's and C's by 52%.
    redis_client.hset(
        keys.counts(SLUG),
        mapping={
            "i:a": 2000, "s:a": 1040, "c:a": 60, "q:a": 24,
            "i:b": 2000, "s:b": 620, "c:b": 40, "q:b": 31,
            "i:c": 2000, "s:c": 1040, "c:c": 50, "q:c": 5,
        },
    )  # fmt: skip
    result = runner.invoke(main, ["stats", SLUG])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Counting clicks per reader served (reward=click, denominator=served)." in lines
    assert "Every count (rates per reader served):" in lines
    header = next(line for line in lines if line.lstrip().startswith("served"))
    assert header.split() == ["served", "seen", "seen", "share", "clicks", "quality"] + [
        "clicks",
        "click",
        "rate",
        "quality",
        "rate",
    ]
    row_b = lines[lines.index(header) + 2].split()
    # 40 / 2000 and 31 / 2000, per reader served.
    assert row_b == ["B", "2,000", "620", "31%", "40", "31", "2.00%", "1.55%"]
    (warning,) = warnings(lines)
    assert warning.startswith(
        "Warning: B's slot was seen by 31% of the readers it was served to, the other "
        "headlines' by 52%"
    )
    assert warning.endswith(
        f"consider counting per reader who saw it (abtest experiments settings {SLUG} "
        "--denominator seen)."
    )

    changed = runner.invoke(
        main, ["experiments", "settings", SLUG, "--reward", "quality", "--denominator", "seen"]
    )
    assert changed.exit_code == 0, changed.output
    assert changed.output.strip() == (
        f"{SLUG}: allocation=clicks, caring=0.02, reward=quality, denominator=seen"
    )
    result = runner.invoke(main, ["stats", SLUG])
    lines = result.output.splitlines()
    assert "Counting quality clicks per reader who saw it (reward=quality, denominator=seen)." in (
        lines
    )
    assert "Every count (rates per reader who saw it):" in lines
    header = next(line for line in lines if line.lstrip().startswith("impressions"))
    # The verdict's table counts quality clicks per reader who saw it: B's 31 of 620.
    assert lines[lines.index(header) + 2].split()[:4] == ["B", "620", "31", "5.00%"]
    row_b = next(line for line in lines if line.startswith("B ") and "2,000" in line).split()
    assert row_b[-2:] == ["6.45%", "5.00%"]  # 40 / 620 and 31 / 620
    document = json.loads(runner.invoke(main, ["stats", SLUG, "--json"]).output)
    assert (document["reward"], document["denominator"]) == ("quality", "seen")
    assert document["seen_check"]["flagged"] == ["b"]


def test_settings_of_what_counts_refuse_bad_values_clearly(runner, service):
    for arguments, message in (
        (["--reward", "likes"], "Invalid value for '--reward': 'likes' is not one of"),
        (["--denominator", "all"], "Invalid value for '--denominator': 'all' is not one of"),
        (["--reward", "click"], "nothing changed: the test has these settings already"),
    ):
        refused = runner.invoke(main, ["experiments", "settings", SLUG, *arguments])
        assert refused.exit_code != 0 and message in refused.output, refused.output
    experiment = service.store.get(SLUG)
    assert (experiment.reward, experiment.denominator) == ("click", "served")
    assert service.audit(SLUG) == []
    # Only what is given changes; the audit entry says from what to what.
    done = runner.invoke(main, ["experiments", "settings", SLUG, "--denominator", "seen"])
    assert done.exit_code == 0, done.output
    experiment = service.store.get(SLUG)
    assert (experiment.allocation, experiment.reward, experiment.denominator) == (
        "clicks",
        "click",
        "seen",
    )
    (entry,) = service.audit(SLUG)
    assert entry["settings_from"]["denominator"] == "served"
    assert entry["settings"]["denominator"] == "seen"


def test_stats_says_when_seen_counts_are_not_measured(runner, service):
    service.set_settings(SLUG, "clicks", 0.02, "ed", denominator="seen")
    result = runner.invoke(main, ["stats", SLUG])
    assert result.exit_code == 0, result.output
    (warning,) = warnings(result.output.splitlines())
    assert "pages with the snippet (/abtest.js) or abtest's own pages" in warning
    assert warning.endswith(f"(abtest experiments settings {SLUG} --denominator served).")


def test_experiments_create_with_what_counts(runner, redis_client, tmp_path):
    from abtest import keys

    story = {"slug": "quality-first", "title": "T", "headlines": ["A", "B"], "body": "x"}
    path = tmp_path / "story.json"
    path.write_text(json.dumps(story | {"reward": "quality", "denominator": "seen"}))
    created = runner.invoke(main, ["experiments", "create", str(path)])
    assert created.exit_code == 0, created.output
    assert "reward=quality, denominator=seen" in created.output
    meta = redis_client.hgetall(keys.meta("quality-first"))
    assert (meta["reward"], meta["denominator"]) == ("quality", "seen")
    # Created with them, in one step: one audit entry.
    assert redis_client.llen(keys.audit("quality-first")) == 1
    listed = runner.invoke(main, ["experiments", "list"]).output.splitlines()
    (row,) = [line.split() for line in listed if line.startswith("quality-first ")]
    assert row[7:9] == ["quality", "seen"]
    path.write_text(json.dumps(story | {"slug": "bad-one", "reward": "likes", "denominator": 1}))
    invalid = runner.invoke(main, ["experiments", "create", str(path)])
    assert invalid.exit_code != 0
    assert "reward: choose click or quality, not 'likes'" in invalid.output
    assert "denominator: choose served or seen, not 1" in invalid.output
    assert not redis_client.exists(keys.meta("bad-one"))
