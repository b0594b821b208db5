"""Behind trusted proxies (ABTEST_PROXY_HOPS): the client's address is the one
the proxies saw, and with no hops configured X-Forwarded-For is ignored.

Seen through the sign-in lockout, which is keyed on the client's address:
behind a TLS proxy every request arrives from the proxy's address, so
without ProxyFix an attacker's guesses would lock out the editor too.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from abtest import create_app

PASSWORD = "correct horse"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PROXY = "10.0.0.2"  # the socket's address: the proxy
ATTACKER = "203.0.113.66"
OFFICE = "198.51.100.7"


@pytest.fixture
def behind(settings, redis_client):
    """An app built with ``hops`` trusted proxies in front."""
    made = []

    def build(hops: int):
        app = create_app(dataclasses.replace(settings, proxy_hops=hops), redis=redis_client)
        app.config["TESTING"] = True
        made.append(app)
        return app

    yield build
    for app in made:
        app.extensions["abtest"]["service"].stop()


def attempt(app, password: str, forwarded_for: str, **headers):
    client = app.test_client()
    environ = {"REMOTE_ADDR": PROXY}
    headers = {"X-Forwarded-For": forwarded_for, **headers}
    page = client.get("/dashboard/login", environ_base=environ, headers=headers)
    token = TOKEN.search(page.text).group(1)
    return client.post(
        "/dashboard/login",
        data={"username": "editor", "password": password, "csrf_token": token},
        environ_base=environ,
        headers=headers,
    )


def lock_out(app, forwarded_for: str) -> None:
    for _ in range(10):
        assert attempt(app, "guess", forwarded_for).status_code == 401
    assert attempt(app, PASSWORD, forwarded_for).status_code == 429


def test_behind_one_proxy_each_client_has_its_own_address(behind):
    app = behind(1)
    lock_out(app, ATTACKER)
    assert attempt(app, PASSWORD, OFFICE).status_code == 303


def test_a_client_cannot_pick_its_address_by_forging_the_header(behind):
    app = behind(1)
    lock_out(app, ATTACKER)
    # The proxy appends the address it saw; only that last entry is trusted.
    assert attempt(app, PASSWORD, f"{OFFICE}, {ATTACKER}").status_code == 429


def test_with_no_proxy_configured_the_header_is_ignored(behind):
    app = behind(0)
    lock_out(app, ATTACKER)
    # Everyone here is the socket's address: the header changes nothing.
    assert attempt(app, PASSWORD, OFFICE).status_code == 429


def test_the_proxy_scheme_is_trusted_and_its_host_is_not(behind):
    # Over HTTPS (as the proxy says), Flask-WTF also wants a same-origin
    # Referer on forms, compared with the Host header: a forwarded host
    # (which ProxyFix is not told to trust) does not change which host that is.
    app = behind(1)
    https = {"X-Forwarded-Proto": "https"}
    refused = attempt(app, PASSWORD, OFFICE, **https)
    assert refused.status_code == 400  # no Referer: the check ran, so the scheme was https
    signed_in = attempt(
        app,
        PASSWORD,
        OFFICE,
        **https,
        **{"X-Forwarded-Host": "evil.example", "Referer": "https://localhost/dashboard/login"},
    )
    assert signed_in.status_code == 303
