"""`abtest editors add|remove|list`: the users file, read by a running service without a restart."""

from __future__ import annotations

import http.cookiejar
import re
import stat
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import subprocess_env
from serving import BROWSER, Serve, wait_until
from werkzeug.security import check_password_hash, generate_password_hash

from abtest.cli import NO_EDITOR, main
from abtest.users import users_file

PASSWORD = "copy desk 2024"
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def cheap_hash(password: str) -> str:
    return generate_password_hash(password, method="pbkdf2:sha256:1000")


def sign_in(client, name: str, password: str):
    token = TOKEN.search(client.get("/dashboard/login").text).group(1)
    return client.post(
        "/dashboard/login", data={"username": name, "password": password, "csrf_token": token}
    )


def signed_in_as(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("editor")


@pytest.fixture
def cli(runner, tmp_path, monkeypatch):
    """The runner, with no editor in the environment and the data directory of its own."""
    for name in ("ABTEST_EDITOR_USER", "ABTEST_EDITOR_PASSWORD_HASH", "ABTEST_USERS_FILE"):
        monkeypatch.delenv(name, raising=False)
    return runner


def test_add_writes_the_users_file_in_the_data_directory(cli, tmp_path):
    added = cli.invoke(main, ["editors", "add", "alice"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.exit_code == 0, added.output
    path = tmp_path / "cli-data" / "users"
    assert f"added editor alice in {path}" in added.stdout
    assert PASSWORD not in added.output
    (line,) = path.read_text().splitlines()
    name, _, password_hash = line.partition(":")
    assert name == "alice" and check_password_hash(password_hash, PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # hashes: the service's user only

    listed = cli.invoke(main, ["editors", "list"])
    assert listed.exit_code == 0 and listed.stdout == f"alice\t({path})\n"


def test_add_again_changes_the_password_and_keeps_every_other_line(cli, tmp_path):
    path = tmp_path / "cli-data" / "users"
    path.parent.mkdir()
    path.write_text(f"# the newsroom\nbob:{cheap_hash('bobs password')}\n\nalice:old$x$y\n")
    path.chmod(0o640)
    changed = cli.invoke(main, ["editors", "add", "alice", "--password-hash", cheap_hash("new")])
    assert changed.exit_code == 0, changed.output
    assert "changed the password of editor alice" in changed.stdout
    lines = path.read_text().splitlines()
    assert lines[:3] == ["# the newsroom", f"bob:{lines[1].partition(':')[2]}", ""]
    assert lines[3].startswith("alice:") and check_password_hash(lines[3][6:], "new")
    assert len(lines) == 4
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # kept as the operator set it

    removed = cli.invoke(main, ["editors", "remove", "alice"])
    assert removed.exit_code == 0 and f"removed editor alice from {path}" in removed.stdout
    assert path.read_text() == f"# the newsroom\n{lines[1]}\n\n"


def test_users_file_setting_is_the_file_written(cli, tmp_path, monkeypatch):
    named = tmp_path / "etc" / "abtest-editors"
    monkeypatch.setenv("ABTEST_USERS_FILE", str(named))
    added = cli.invoke(main, ["editors", "add", "carol", "--password-hash", cheap_hash("x" * 8)])
    assert added.exit_code == 0, added.output
    assert named.read_text().startswith("carol:")
    assert not (tmp_path / "cli-data" / "users").exists()


def test_the_environments_editor_is_listed_and_not_removable_here(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("ABTEST_EDITOR_USER", "chief")
    monkeypatch.setenv("ABTEST_EDITOR_PASSWORD_HASH", cheap_hash("chief's password"))
    listed = cli.invoke(main, ["editors", "list"])
    assert listed.stdout == "chief\t(ABTEST_EDITOR_USER)\n"
    refused = cli.invoke(main, ["editors", "remove", "chief"])
    assert refused.exit_code == 1
    assert "chief is ABTEST_EDITOR_USER: unset it in the service's environment" in refused.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["remove", "nobody"], "no editor 'nobody' in "),
        (["add", "two words", "--password-hash", "a$b$c"], "without spaces or colons"),
        (["add", "a:b", "--password-hash", "a$b$c"], "without spaces or colons"),
        (["add", "#x", "--password-hash", "a$b$c"], "not starting with #"),
        (["add", "x" * 65, "--password-hash", "a$b$c"], "1 to 64 characters"),
        (["add", "dana", "--password-hash", "hunter2"], "make one with `abtest hash-password`"),
    ],
)
def test_bad_input_is_refused_clearly(cli, tmp_path, arguments, message):
    result = cli.invoke(main, ["editors", *arguments])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "cli-data" / "users").exists()


def test_a_short_password_is_refused(cli, tmp_path):
    result = cli.invoke(main, ["editors", "add", "erin"], input="short\nshort\n")
    assert result.exit_code == 1 and "at least 8 characters" in result.output
    assert not (tmp_path / "cli-data" / "users").exists()


def test_no_editors_says_how_to_add_one(cli):
    listed = cli.invoke(main, ["editors", "list"])
    assert listed.exit_code == 0
    assert "no editors yet: add one with `abtest editors add NAME`" in listed.stdout


def test_a_running_app_reads_the_default_users_file_without_a_restart(
    cli, app, settings, monkeypatch
):
    """The app's settings name no users file: it reads <data dir>/users, as the CLI writes it."""
    assert settings.users_file is None
    assert users_file(settings) == settings.data_dir / "users"
    monkeypatch.setenv("ABTEST_DATA_DIR", str(settings.data_dir))
    client = app.test_client()
    assert sign_in(client, "frank", PASSWORD).status_code == 401

    added = cli.invoke(main, ["editors", "add", "frank", "--password-hash", cheap_hash(PASSWORD)])
    assert added.exit_code == 0, added.output
    assert sign_in(client, "frank", PASSWORD).status_code == 303
    assert signed_in_as(client) == "frank"
    assert client.get("/dashboard/").status_code == 200

    # A new password at once: the file is replaced by a rename, noticed whatever its size.
    cli.invoke(main, ["editors", "add", "frank", "--password-hash", cheap_hash("second pw")])
    assert sign_in(app.test_client(), "frank", PASSWORD).status_code == 401
    assert sign_in(app.test_client(), "frank", "second pw").status_code == 303

    removed = cli.invoke(main, ["editors", "remove", "frank"])
    assert removed.exit_code == 0, removed.output
    assert client.get("/dashboard/").status_code == 302  # the open session has ended


# -- a real abtest serve -------------------------------------------------------------


def _sign_in_over_http(port: int, name: str, password: str) -> int:
    """Sign in as a browser would (cookie, CSRF token): 200 once on the dashboard, else the
    status of the refusal."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", BROWSER)]
    base = f"http://127.0.0.1:{port}"
    with opener.open(f"{base}/dashboard/login", timeout=30) as page:
        token = TOKEN.search(page.read().decode()).group(1)
    form = urllib.parse.urlencode({"username": name, "password": password, "csrf_token": token})
    try:
        with opener.open(f"{base}/dashboard/login", data=form.encode(), timeout=30) as landed:
            assert landed.url == f"{base}/dashboard/", landed.url
            return landed.status
    except urllib.error.HTTPError as refused:
        return refused.code


@pytest.mark.slow
def test_serve_warns_without_editors_and_takes_one_added_while_it_runs(tmp_path):
    data_dir = tmp_path / "data"
    with Serve(data_dir, workers=2) as server:
        wait_until(lambda: NO_EDITOR in server.output(), 30, "the no-editor warning")
        assert _sign_in_over_http(server.port, "grace", PASSWORD) == 401
        added = subprocess.run(
            [sys.executable, "-m", "abtest.cli", "editors", "add", "grace"]
            + ["--password-hash", cheap_hash(PASSWORD)],
            env=subprocess_env(ABTEST_DATA_DIR=str(data_dir)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        # Both workers, whichever answers: no restart.
        for _ in range(4):
            assert _sign_in_over_http(server.port, "grace", PASSWORD) == 200
    assert server.process.returncode == 0, server.output()


@pytest.mark.slow
def test_serve_with_an_editor_does_not_warn(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "users").write_text(f"heidi:{cheap_hash(PASSWORD)}\n")
    with Serve(data_dir, workers=1) as server:
        assert _sign_in_over_http(server.port, "heidi", PASSWORD) == 200
    assert "serving on" in server.output()
    assert NO_EDITOR not in server.output()
