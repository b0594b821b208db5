"""Security headers on every response: reader pages, redirects, the JSON API,
health checks, metrics, static files, error pages and the dashboard, each
header exactly once; HSTS in production only; and no page or template that
the Content-Security-Policy would break (no inline script or style).

tests/test_dashboard_browser.py shows the pages working in Chromium under
the policy with no violation reported.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from pathlib import Path

import pytest
from conftest import REPO, TEST_API_TOKEN
from helpers import BOT, BROWSER, SLUG, teasers

from abtest import create_app
from abtest.store import connect

# Written out here, not imported: loosening the policy must fail this test.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
EXPECTED = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
HSTS = "Strict-Transport-Security"
PASSWORD = "correct horse"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def assert_secured(response, hsts: bool = False) -> None:
    where = f"{response.request.method} {response.request.path} -> {response.status_code}"
    for name, value in EXPECTED.items():
        assert response.headers.getlist(name) == [value], (where, name)
    if hsts:
        assert response.headers.getlist(HSTS) == ["max-age=31536000"], where
    else:
        assert HSTS not in response.headers, where


def sign_in(client) -> None:
    token = TOKEN.search(client.get("/dashboard/login").text).group(1)
    response = client.post(
        "/dashboard/login",
        data={"username": "editor", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 303


def example_path(rule) -> str:
    """A path that a route's rule matches."""
    values = {"slug": SLUG, "token": "not-a-token"}
    static = "dashboard.css" if rule.endpoint.startswith("dashboard.") else "site.css"

    def value(match: re.Match) -> str:
        name = match.group(1).rpartition(":")[2]
        return static if name == "filename" else values[name]

    return re.sub(r"<([^>]+)>", value, rule.rule)


@pytest.mark.parametrize("who", ["reader", "editor", "api token"])
def test_every_route_sends_the_headers_once(app, client, who):
    """Whatever the route answers (page, redirect, JSON, 401, 404), for anyone."""
    headers = {"User-Agent": BROWSER}
    if who == "editor":
        sign_in(client)
    elif who == "api token":
        headers["Authorization"] = f"Bearer {TEST_API_TOKEN}"
    rules = [rule for rule in app.url_map.iter_rules() if "GET" in rule.methods]
    assert {"reader.front", "static", "dashboard.static", "dashboard.experiment"} <= {
        rule.endpoint for rule in rules
    }
    for rule in rules:
        for method in ("GET", "HEAD"):
            with client.open(example_path(rule), method=method, headers=headers) as response:
                assert_secured(response)


def test_reader_responses_send_the_headers_once(client, new_client):
    assert_secured(client.get("/", headers={"User-Agent": BROWSER}))  # a new visitor
    page = client.get("/", headers={"User-Agent": BROWSER})  # the same visitor again
    assert_secured(page)
    assert_secured(new_client().get("/", headers={"User-Agent": BOT}))
    ((link, _),) = teasers(client.get("/", headers={"User-Agent": BROWSER}).data)
    click = client.get(link, headers={"User-Agent": BROWSER})
    assert click.status_code == 303
    assert_secured(click)
    assert_secured(client.get(click.headers["Location"], headers={"User-Agent": BROWSER}))
    assert_secured(client.get("/articles/no-such-story"))  # 404
    assert_secured(client.get("/c/forged.token"))  # 400
    assert_secured(client.post("/"))  # 405
    assignment = client.get(
        f"/api/v1/experiments/{SLUG}/assignment", headers={"User-Agent": BROWSER}
    )
    assert assignment.status_code == 200 and assignment.is_json
    assert_secured(assignment)


def test_redirects_and_dashboard_responses_send_the_headers_once(client):
    assert_secured(client.get("/dashboard"))  # werkzeug's slash redirect
    assert_secured(client.get("/dashboard/"))  # to the sign-in page
    assert_secured(client.post("/dashboard/logout"))  # CSRF refusal
    sign_in(client)
    page = client.get(f"/dashboard/{SLUG}")
    assert page.status_code == 200
    assert_secured(page)
    assert page.headers["Cache-Control"] == "no-store"
    assert_secured(client.get(f"/dashboard/{SLUG}/counts.csv"))


def test_an_unexpected_error_page_sends_the_headers(settings, redis_client):
    app = create_app(settings, redis=redis_client)  # not TESTING: errors are handled

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    try:
        response = app.test_client().get("/boom")
        assert response.status_code == 500 and "boom" not in response.text
        assert_secured(response)
    finally:
        app.extensions["abtest"]["service"].stop()


def test_the_503_page_sends_the_headers(settings, tmp_path):
    url = f"unix://{tmp_path}/no-redis.sock"
    dead = connect(url, timeout=0.2)
    app = create_app(dataclasses.replace(settings, redis_url=url, load_seed=False), redis=dead)
    try:
        client = app.test_client()
        token = TOKEN.search(client.get("/dashboard/login").text).group(1)
        response = client.post(
            "/dashboard/login", data={"username": "editor", "password": "x", "csrf_token": token}
        )
        assert response.status_code == 503
        assert_secured(response)
    finally:
        app.extensions["abtest"]["service"].stop()
        dead.close()


# -- HSTS ---------------------------------------------------------------------------------


def production(settings, **changes):
    return dataclasses.replace(
        settings, env="production", secret_key=secrets.token_urlsafe(32), api_token=None, **changes
    )


def test_hsts_in_production_only(settings, redis_client):
    app = create_app(production(settings, cookie_secure=True), redis=redis_client)
    try:
        client = app.test_client()
        for path in ("/", "/static/site.css", "/healthz/live", "/dashboard/login", "/nowhere"):
            with client.get(path, headers={"User-Agent": BROWSER}) as response:  # closes files
                assert_secured(response, hsts=True)
    finally:
        app.extensions["abtest"]["service"].stop()


def test_no_hsts_in_production_over_plain_http(settings, redis_client):
    # ABTEST_COOKIE_SECURE=false is how the stack is tried without TLS.
    app = create_app(production(settings, cookie_secure=False), redis=redis_client)
    try:
        assert_secured(app.test_client().get("/", headers={"User-Agent": BROWSER}), hsts=False)
    finally:
        app.extensions["abtest"]["service"].stop()


# -- nothing inline that the policy would block ------------------------------------------------

INLINE = {
    "inline script": re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    "style element": re.compile(r"<style\b", re.IGNORECASE),
    "style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


def inline_parts(html: str) -> list[str]:
    return [name for name, pattern in INLINE.items() if pattern.search(html)]


def test_the_checks_find_what_the_policy_blocks():
    assert inline_parts("<script>alert(1)</script>") == ["inline script"]
    assert inline_parts('<p style="color:red">') == ["style attribute"]
    assert inline_parts('<img src=x onerror="go()">') == ["event handler attribute"]
    assert inline_parts('<script src="/static/x.js" defer></script>') == []


@pytest.mark.parametrize(
    "template",
    sorted(
        str(path.relative_to(REPO))
        for folder in ("abtest/web/templates", "dashboard/templates")
        for path in (REPO / folder).glob("*.html")
    ),
)
def test_no_template_has_inline_script_or_style(template):
    assert inline_parts(Path(REPO / template).read_text()) == []


def test_no_rendered_page_has_inline_script_or_style(client, new_client):
    reader = new_client()
    pages = [reader.get("/", headers={"User-Agent": BROWSER})]
    ((link, _),) = teasers(pages[0].data)
    pages.append(reader.get(link, headers={"User-Agent": BROWSER}, follow_redirects=True))
    pages.append(reader.get("/articles/no-such-story"))
    pages.append(client.get("/dashboard/login"))
    sign_in(client)
    for path in (
        "/dashboard/",
        f"/dashboard/{SLUG}",
        f"/dashboard/{SLUG}/decide",
        "/dashboard/new",
    ):
        pages.append(client.get(path))
    live = client.get(f"/dashboard/api/experiments/{SLUG}").json["fragments"]
    for page in pages:
        assert page.status_code in (200, 404), page.request.path
        assert inline_parts(page.text) == [], page.request.path
    for name, fragment in live.items():
        assert inline_parts(fragment) == [], name
