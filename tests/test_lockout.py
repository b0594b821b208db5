"""The sign-in lockout: ten attempts for one user name from one address per
15 minutes, held in Redis so that every worker and every app server counts
the same attempts, exact under concurrent guesses, and keyed on the address
too, so a name locked out from one address still signs in from another.

A second app on the same Redis stands for a second server; a real
``abtest serve`` with several workers replays what the issue saw.
"""

from __future__ import annotations

import dataclasses
import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from serving import with_editor

from abtest import create_app
from abtest.sessions import SignInThrottle

PASSWORD = "correct horse"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
OFFICE = "198.51.100.7"
ATTACKER = "203.0.113.66"


def attempt(client, password: str, username: str = "editor", address: str = "127.0.0.1"):
    """One sign-in from ``address`` (the socket's), with a genuine CSRF token."""
    environ = {"REMOTE_ADDR": address}
    page = client.get("/dashboard/login", environ_base=environ)
    token = TOKEN.search(page.text).group(1)
    return client.post(
        "/dashboard/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base=environ,
    )


@pytest.fixture
def second_app(settings, redis_client):
    app = create_app(dataclasses.replace(settings, load_seed=False), redis=redis_client)
    app.config["TESTING"] = True
    yield app
    app.extensions["abtest"]["service"].stop()


def test_failures_on_every_server_count_towards_one_lock(app, second_app):
    for server in (app, second_app):
        for _ in range(5):
            assert attempt(server.test_client(), "guess", address=ATTACKER).status_code == 401
    for server in (app, second_app):
        locked = attempt(server.test_client(), PASSWORD, address=ATTACKER)
        assert locked.status_code == 429  # even the right password, on either server


def test_concurrent_guesses_get_exactly_ten_password_checks(app, second_app):
    def guess(number: int) -> int:
        server = (app, second_app)[number % 2]
        return attempt(server.test_client(), f"guess {number}", address=ATTACKER).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(guess, range(40)))
    assert statuses.count(401) == 10  # checked, and wrong
    assert statuses.count(429) == 30  # refused unchecked
    for _ in range(6):
        assert attempt(app.test_client(), PASSWORD, address=ATTACKER).status_code == 429


def test_a_name_locked_out_from_one_address_signs_in_from_another(app):
    for _ in range(10):
        assert attempt(app.test_client(), "guess", address=ATTACKER).status_code == 401
    assert attempt(app.test_client(), PASSWORD, address=ATTACKER).status_code == 429
    # The editor in the office is not locked out by someone guessing elsewhere.
    assert attempt(app.test_client(), PASSWORD, address=OFFICE).status_code == 303


def test_the_lock_page_says_when_to_try_again(app):
    for _ in range(10):
        attempt(app.test_client(), "guess", address=ATTACKER)
    before = time.time()
    locked = attempt(app.test_client(), "guess", address=ATTACKER)
    after = time.time()
    assert locked.status_code == 429
    wait = int(locked.headers["Retry-After"])  # whole seconds, rounded up
    assert 840 < wait <= 900
    assert "Try again in 15 minutes" in locked.text
    # The clock time it lifts, as the server saw its clock during the request.
    times = {time.strftime("%H:%M UTC", time.gmtime(t)) for t in (before + wait - 1, after + wait)}
    assert any(f"(after {clock})" in locked.text for clock in times), locked.text


def test_signing_in_forgets_the_failures(app):
    for _ in range(9):
        assert attempt(app.test_client(), "guess", address=OFFICE).status_code == 401
    assert attempt(app.test_client(), PASSWORD, address=OFFICE).status_code == 303
    for _ in range(9):  # nine more, and still not locked out
        assert attempt(app.test_client(), "guess", address=OFFICE).status_code == 401
    assert attempt(app.test_client(), PASSWORD, address=OFFICE).status_code == 303


def test_the_lock_lifts_after_its_window(redis_client):
    now = [1_000_000.0]
    throttle = SignInThrottle(redis_client, failures=2, window=60, clock=lambda: now[0])
    assert throttle.attempt("192.0.2.1", "ed") == 0
    now[0] += 10
    assert throttle.attempt("192.0.2.1", "Ed") == 0  # one name, however it is capitalised
    assert throttle.attempt("192.0.2.1", "ed") == pytest.approx(50)  # the first leaves at 60
    assert throttle.attempt("192.0.2.2", "ed") == 0  # another address
    assert throttle.attempt("192.0.2.1", "someone else") == 0  # another name
    now[0] += 50
    assert throttle.attempt("192.0.2.1", "ed") == 0  # the first attempt has left the window
    assert throttle.attempt("192.0.2.1", "ed") == pytest.approx(10)
    throttle.succeeded("192.0.2.1", "ed")
    assert throttle.attempt("192.0.2.1", "ed") == 0


# -- a real server with several workers ------------------------------------------------------


class Browser:
    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            _NoRedirect,
        )

    def sign_in(self, password: str) -> int:
        with self.opener.open(self.base + "/dashboard/login", timeout=20) as response:
            token = TOKEN.search(response.read().decode()).group(1)
        body = urllib.parse.urlencode(
            {"username": "editor", "password": password, "csrf_token": token}
        ).encode()
        try:
            with self.opener.open(self.base + "/dashboard/login", body, timeout=20) as response:
                return response.status
        except urllib.error.HTTPError as error:
            error.close()
            return error.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.slow
def test_forty_guesses_at_a_server_with_three_workers(redis_url, redis_client, tmp_path):
    serve = with_editor(tmp_path / "data", redis_url, PASSWORD)
    with serve:
        base = f"http://127.0.0.1:{serve.port}"
        statuses = [Browser(base).sign_in(f"guess {n}") for n in range(40)]
        assert statuses.count(401) == 10 and statuses.count(429) == 30, statuses
        assert statuses[:10] == [401] * 10  # the first ten, whichever worker took them
        assert [Browser(base).sign_in(PASSWORD) for _ in range(6)] == [429] * 6
    assert serve.process.returncode == 0, serve.output()
