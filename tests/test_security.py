"""A real ``abtest serve`` in production refuses weak secrets: it exits non-zero
with a message naming the setting, before it starts a Redis or a worker.
"""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest
from conftest import free_port, subprocess_env

STRONG = secrets.token_urlsafe(32)


def serve_in_production(tmp_path, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "abtest.cli", "serve", "--port", str(free_port())],
        env=subprocess_env(ABTEST_ENV="production", ABTEST_DATA_DIR=str(tmp_path), **settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"ABTEST_SECRET_KEY": "a" * 16}, "ABTEST_SECRET_KEY"),
        ({"ABTEST_SECRET_KEY": "a" * 64}, "ABTEST_SECRET_KEY"),  # long, not random
        ({"ABTEST_SECRET_KEY": secrets.token_hex(8)}, "ABTEST_SECRET_KEY"),  # random, short
        ({"ABTEST_SECRET_KEY": STRONG, "ABTEST_API_TOKEN": "x"}, "ABTEST_API_TOKEN"),
        ({"ABTEST_SECRET_KEY": STRONG, "ABTEST_METRICS_TOKEN": "metrics"}, "ABTEST_METRICS_TOKEN"),
    ],
)
def test_production_refuses_weak_secrets(tmp_path, settings, named):
    result = serve_in_production(tmp_path, **settings)
    assert result.returncode != 0
    assert named in result.stderr and "production" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "redis.sock").exists()  # nothing was started
