"""A real ``abtest serve`` in a child process, and a small HTTP client for it.

For the tests that need real processes (tests/test_supervision.py, tests/test_server.py,
tests/test_stall.py): every wait polls for a condition with a generous
deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conftest import TEST_SECRET, free_port, subprocess_env
from helpers import teasers

from abtest.embedded import redis_server_executable
from abtest.store import connect

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"
COOKIE = "abtest_visitor"


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it returns something true; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


class Response:
    __slots__ = ("status", "body", "cookie", "seconds")

    def __init__(self, status: int, body: bytes, cookie: str | None, seconds: float):
        self.status = status
        self.body = body
        #: The visitor cookie this response set, or None.
        self.cookie = cookie
        self.seconds = seconds

    def json(self):
        return json.loads(self.body)


class Client:
    """One keep-alive connection, as one browser (its visitor cookie, if any)."""

    def __init__(self, port: int, cookie: str | None = None, timeout: float = 10.0):
        self.port = port
        self.cookie = cookie
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def get(self, path: str, keep_cookie: bool = True, **headers: str) -> Response:
        headers = {"User-Agent": BROWSER, **headers}
        if self.cookie:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        started = time.perf_counter()
        try:
            if self._connection is None:
                self._connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            self._connection.request("GET", path, headers=headers)
            reply = self._connection.getresponse()
            body = reply.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        seconds = time.perf_counter() - started
        cookie = None
        for name, value in reply.getheaders():
            if name.lower() == "set-cookie" and value.startswith(COOKIE + "="):
                cookie = value.split(";", 1)[0].split("=", 1)[1]
        if cookie and keep_cookie:
            self.cookie = cookie
        if reply.getheader("Connection", "").lower() == "close":
            self.close()
        return Response(reply.status, body, cookie, seconds)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def answers(port: int, path: str, status: int = 200) -> bool:
    client = Client(port, timeout=5)
    try:
        return client.get(path).status == status
    except (OSError, http.client.HTTPException):
        return False
    finally:
        client.close()


class Serve:
    """``abtest serve`` on a free port; ``with Serve(...) as server:`` stops it (SIGTERM) after."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        workers: int = 2,
        threads: int | None = None,
        server: str | None = None,
        own_group: bool = False,
        **env: str,
    ):
        """``threads``, ``server`` None: ``abtest serve``'s defaults.  ``own_group``:
        in a process group of its own, as a command run from a terminal."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.workers = workers
        self.threads = threads
        self.server = server
        self.own_group = own_group
        self.env = subprocess_env(
            ABTEST_DATA_DIR=str(data_dir),
            ABTEST_SECRET_KEY=TEST_SECRET,
            # Every test reader comes from 127.0.0.1: no per-address budget.
            ABTEST_BUDGET_IMPRESSIONS="0",
            ABTEST_BUDGET_CLICKS="0",
            **env,
        )
        self.process: subprocess.Popen | None = None
        self.log = data_dir.parent / f"serve-{self.port}.log"

    def start(self, ready: str = "/healthz/ready", timeout: float = 60.0) -> Serve:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "abtest.cli", "serve", "--port", str(self.port)]
                + ["--workers", str(self.workers)]
                + ([] if self.threads is None else ["--threads", str(self.threads)])
                + ([] if self.server is None else ["--server", self.server]),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_group,
            )
        wait_until(
            lambda: self.process.poll() is not None or answers(self.port, ready),
            timeout,
            f"abtest serve answers {ready}",
        )
        assert self.process.poll() is None, self.output()
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def workers_running(self) -> list[int]:
        """The pids of this server's worker processes: its children but the embedded Redis."""
        return [pid for pid in children(self.process.pid) if "redis-server" not in _command(pid)]

    def client(self, cookie: str | None = None) -> Client:
        return Client(self.port, cookie)

    def __enter__(self) -> Serve:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def with_editor(data_dir: Path, redis_url: str, password: str, workers: int = 3) -> Serve:
    """``abtest serve`` over ``redis_url`` with one editor, ``editor``, whose password
    is ``password`` (hashed cheaply: the suite signs in often)."""
    from werkzeug.security import generate_password_hash

    return Serve(
        data_dir,
        workers=workers,
        REDIS_URL=redis_url,
        ABTEST_EDITOR_USER="editor",
        ABTEST_EDITOR_PASSWORD_HASH=generate_password_hash(password, "pbkdf2:sha256:1000"),
    )


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    """The running child processes of ``pid`` (Linux ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, parent = stat.rpartition(")")[2].split()[:2]
        if int(parent) == pid and state != "Z":
            found.append(int(entry.name))
    return sorted(found)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class OwnRedis:
    """A redis-server of the test's own, without persistence, on a Unix socket.

    ``start()`` again after a kill brings up an empty one on the same socket.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.socket = directory / "own-redis.sock"
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None

    def start(self) -> OwnRedis:
        self.process = subprocess.Popen(
            [redis_server_executable(), "--port", "0", "--unixsocket", str(self.socket)]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self.answers, 15, "the test's redis-server answers")
        return self

    def answers(self) -> bool:
        client = connect(self.url, timeout=1)
        try:
            return bool(client.ping())
        except Exception:
            return False
        finally:
            client.close()

    def client(self):
        return connect(self.url, timeout=5)

    def kill(self) -> None:
        """SIGKILL, after SIGCONT in case it was stopped."""
        if self.process is not None:
            kill(self.process.pid, signal.SIGCONT)
            kill(self.process.pid)
            self.process.wait()


class Stream(threading.Thread):
    """New readers of one server's front page, one after another, while ``gate`` is set;
    records when each was sent and answered, its status, and the headlines counted."""

    def __init__(self, server: Serve, gate: threading.Event, stop: threading.Event):
        super().__init__(daemon=True)
        self.browser = server.client()
        self.gate, self.stop = gate, stop
        self.records: list[tuple[float, float, int, list[str]]] = []
        self.errors: list[str] = []
        #: Set while the gate holds this stream (no request of its in flight).
        self.idle = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.gate.is_set():
                self.idle.set()
                self.gate.wait()
                self.idle.clear()
            sent = time.monotonic()
            try:
                page = self.browser.get("/", keep_cookie=False)
            except OSError as error:
                self.errors.append(repr(error))
                continue
            counted = [h for link, h in teasers(page.body) if link.startswith("/c/")]
            self.records.append((sent, time.monotonic(), page.status, counted))
            time.sleep(0.005)
        self.browser.close()
