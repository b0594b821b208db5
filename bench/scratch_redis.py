"""A throwaway redis-server for benchmarks: no persistence, in a scratch directory."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from abtest.embedded import redis_server_executable  # noqa: E402


def command(work: Path, port: int = 0, socket: Path | None = None) -> list[str]:
    """The redis-server command line: TCP on ``port`` (0: none) and/or a Unix ``socket``."""
    args = [redis_server_executable(), "--port", str(port), "--bind", "127.0.0.1"]
    if socket is not None:
        args += ["--unixsocket", str(socket)]
    return args + ["--save", "", "--appendonly", "no", "--dir", str(work)]


def wait_ready(client: redis.Redis, timeout: float = 10.0) -> None:
    """Block until the server answers PING."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.ConnectionError, FileNotFoundError):
            client.ping()
            return
        if time.monotonic() > deadline:
            raise TimeoutError("redis-server did not start")
        time.sleep(0.05)
