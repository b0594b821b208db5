"""The request body limit (ABTEST_MAX_BODY): a larger body gets 413 before
any of it is read, signed in or not; a body within the limit is read as
usual.  In-process with a body that counts what is read of it, and against
a real ``abtest serve`` with a raw socket that announces 100 MB and sends a
few bytes: the 413 comes back without the server waiting for the rest.
"""

from __future__ import annotations

import dataclasses
import io
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import TEST_SECRET, free_port, subprocess_env
from helpers import BROWSER

from abtest import create_app

PASSWORD = "correct horse"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
HUNDRED_MB = 100 * 1024 * 1024
FORM = "application/x-www-form-urlencoded"


class EndlessBody(io.RawIOBase):
    """A request body that never ends and counts the bytes read from it."""

    def __init__(self):
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        buffer[:] = b"a" * len(buffer)
        self.read_bytes += len(buffer)
        return len(buffer)


def csrf_token(client, path: str = "/dashboard/login") -> str:
    return TOKEN.search(client.get(path).text).group(1)


def post_unread(client, path: str, declared: int = HUNDRED_MB, content_type: str = FORM):
    body = EndlessBody()
    environ = {"wsgi.input": body, "CONTENT_LENGTH": str(declared), "CONTENT_TYPE": content_type}
    response = client.post(path, environ_overrides=environ)
    return response, body.read_bytes


@pytest.mark.parametrize("content_type", [FORM, "multipart/form-data; boundary=b"])
@pytest.mark.parametrize("path", ["/dashboard/login", "/dashboard/new", "/dashboard/logout"])
def test_an_oversized_form_gets_413_unread(client, path, content_type):
    client.get("/dashboard/login")  # a browser with a session cookie, as an attacker's would be
    response, read = post_unread(client, path, content_type=content_type)
    assert response.status_code == 413
    assert read == 0
    assert "larger than the 1,000,000 bytes" in response.text
    assert "Traceback" not in response.text


def test_a_signed_in_editors_oversized_form_gets_413_and_changes_nothing(client, service):
    token = csrf_token(client)
    client.post(
        "/dashboard/login", data={"username": "editor", "password": PASSWORD, "csrf_token": token}
    )
    assert client.get("/dashboard/").status_code == 200
    token = csrf_token(client, "/dashboard/new")
    fields = {"csrf_token": token, "slug": "huge", "title": "Huge", "headlines": "One\nTwo"}
    response = client.post("/dashboard/new", data={**fields, "body": "x" * 1_000_001})
    assert response.status_code == 413
    assert service.store.get("huge") is None


def test_a_body_within_the_limit_is_read(settings, redis_client):
    app = create_app(dataclasses.replace(settings, max_body=4096), redis=redis_client)
    app.config["TESTING"] = True
    try:
        client = app.test_client()
        token = csrf_token(client)
        fields = {"username": "editor", "password": "wrong", "csrf_token": token}
        size = len("&".join(f"{k}={v}" for k, v in fields.items()))
        padding = "p" * (4096 - size - len("&padding="))
        response = client.post("/dashboard/login", data={**fields, "padding": padding})
        assert response.request.content_length == 4096
        assert response.status_code == 401  # read, checked, refused: not 413
        response = client.post("/dashboard/login", data={**fields, "padding": padding + "p"})
        assert response.status_code == 413
        assert "larger than the 4,096 bytes" in response.text
    finally:
        app.extensions["abtest"]["service"].stop()


def test_an_oversized_api_body_gets_a_json_413(client):
    response, read = post_unread(client, "/api/v1/experiments/colombia-china/pause")
    assert read == 0
    # Refused as too large or as not allowed, but never read and never a page.
    assert response.status_code in (401, 405, 413) and response.is_json


# -- a real server -------------------------------------------------------------------------------


def raw_request(port: int, head: str, body: bytes = b"") -> tuple[str, bytes]:
    """Send ``head`` and ``body`` on a new connection; the status line and the response body.

    Reads the response by its Content-Length: a server that waited for the
    rest of an announced body would never answer, and the socket's timeout
    would fail the test.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head.encode("latin-1") + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            assert chunk, f"connection closed without a response: {received!r}"
            received += chunk
        head_part, _, rest = received.partition(b"\r\n\r\n")
        status, *lines = head_part.decode("latin-1").split("\r\n")
        # Names in any case (granian sends them in lower case, gunicorn capitalized).
        headers = {name.lower(): v for name, v in (line.split(": ", 1) for line in lines)}
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = connection.recv(65536)
            assert chunk, "connection closed mid-response"
            rest += chunk
    return status, rest


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["granian", "gunicorn"])
def test_a_real_server_answers_413_without_reading_100_mb(redis_url, redis_client, tmp_path, kind):
    port = free_port()
    env = subprocess_env(
        REDIS_URL=redis_url, ABTEST_DATA_DIR=str(tmp_path / "data"), ABTEST_SECRET_KEY=TEST_SECRET
    )
    command = [sys.executable, "-m", "abtest.cli", "serve", "--port", str(port), "--workers", "1"]
    command += ["--server", kind]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz/live", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        head = (
            "POST /dashboard/login HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUser-Agent: {BROWSER}\r\n"
            f"Content-Type: {FORM}\r\nContent-Length: {HUNDRED_MB}\r\n\r\n"
        )
        status, body = raw_request(port, head, b"username=editor&password=")
        assert status.startswith("HTTP/1.1 413"), status
        assert b"larger than the 1,000,000 bytes" in body
        # The worker is free for the next reader.
        status, _ = raw_request(port, f"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: {BROWSER}\r\n\r\n")
        assert status.startswith("HTTP/1.1 200"), status
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0, output
