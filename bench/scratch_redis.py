"""A throwaway redis-server for benchmarks: no persistence, in a scratch directory."""

from __future__ import annotations

import contextlib
import socket as sockets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running(prefix: str) -> Iterator[tuple[str, Path]]:
    """A scratch redis-server on a free TCP port, stopped on exit: ``(url, work dir)``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    server = subprocess.Popen(
        command(work, port=port), stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_ready(redis.Redis.from_url(url))
        yield url, work
    finally:
        server.terminate()
        server.wait()
