"""Fixtures: one real Redis server for the session (the embedded redis-server),
a clean database per test, and the app, client and runner over it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from abtest import create_app
from abtest.config import Settings
from abtest.embedded import EmbeddedRedis
from abtest.store import connect

TEST_SECRET = "test-secret-key-0123456789abcdef"
TEST_API_TOKEN = "test-api-token"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> EmbeddedRedis:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def redis_client(redis_server):
    client = connect(redis_server.url, timeout=5)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(tmp_path, redis_url) -> Settings:
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        secret_key=TEST_SECRET,
        api_token=TEST_API_TOKEN,
        editor_user="editor",
        editor_password_hash=_password_hash("correct horse"),
    )


def _password_hash(password: str) -> str:
    from werkzeug.security import generate_password_hash

    # A cheap hash keeps the suite fast; production hashes use the default cost.
    return generate_password_hash(password, method="pbkdf2:sha256:1000")


@pytest.fixture
def app(settings, redis_client):
    app = create_app(settings, redis=redis_client)
    app.config["TESTING"] = True
    yield app
    app.extensions["abtest"]["service"].stop()


@pytest.fixture
def service(app):
    return app.extensions["abtest"]["service"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def new_client(app):
    """A factory of fresh browsers (each with its own cookie jar)."""
    return app.test_client


@pytest.fixture
def runner(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ABTEST_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("ABTEST_SECRET_KEY", TEST_SECRET)
    return CliRunner()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a real ``abtest`` child process: no inherited abtest settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABTEST_") and k != "REDIS_URL"}
    env.update(extra)
    return env


REPO = Path(__file__).resolve().parent.parent
