"""The OpenAPI document at /api/v1/openapi.json: valid OpenAPI 3.1, every route the app
has described (and nothing else), and the service's real responses as it says."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from conftest import TEST_API_TOKEN
from helpers import BROWSER, SLUG, front
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from abtest import create_app
from abtest.web.shortcuts import COOKIE

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
BEARER = {"Authorization": f"Bearer {TEST_API_TOKEN}"}


@pytest.fixture
def document(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises, naming the fault


def _openapi_path(rule: str) -> str:
    """Flask's ``/c/<token>``, ``/static/<path:filename>`` as OpenAPI's ``/c/{token}``."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_route_is_described_and_nothing_else(app, document):
    routes = {
        (_openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    described = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert routes - described == set(), "describe these routes in abtest/web/openapi.py"
    assert described - routes == set(), "abtest/web/openapi.py describes routes the app lacks"
    for path, method in described:
        operation = document["paths"][path][method]
        assert operation["summary"] and operation["responses"], (path, method)


def test_each_path_parameter_is_described(document):
    for path, item in document["paths"].items():
        for method in METHODS & set(item):
            parameters = item.get("parameters", []) + item[method].get("parameters", [])
            named = {p["name"] for p in parameters if p["in"] == "path"}
            assert named == set(re.findall(r"{([^}]+)}", path)), (path, method)


def _check(document: dict, path: str, method: str, response) -> None:
    """``response`` has a status the document lists for this operation, and its JSON
    body matches the schema given for that status."""
    described = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in described, (path, method, status, response.data[:200])
    content = described[status].get("content", {})
    if "application/json" not in content or "schema" not in content["application/json"]:
        return
    assert response.mimetype == "application/json"
    schema = {**content["application/json"]["schema"], "components": document["components"]}
    OAS31Validator(schema).validate(response.get_json())


def test_the_api_answers_as_described(client, new_client, service, document):
    stats = "/api/v1/experiments/{slug}/stats"
    # A reader: an impression and a click, so every number in the document is defined.
    page = front(client)
    assert page.status_code == 200
    _check(document, "/", "get", page)
    reader = new_client()
    assigned = reader.get(f"/api/v1/experiments/{SLUG}/assignment", headers={"User-Agent": BROWSER})
    _check(document, "/api/v1/experiments/{slug}/assignment", "get", assigned)
    assert assigned.get_json()["click_url"].startswith("/c/")
    clicked = reader.get(assigned.get_json()["click_url"], headers={"User-Agent": BROWSER})
    _check(document, "/c/{token}", "get", clicked)
    assert service.fresh(SLUG).clicks != (0, 0, 0)

    _check(document, stats, "get", client.get(f"/api/v1/experiments/{SLUG}/stats", headers=BEARER))
    _check(document, stats, "get", client.get(f"/api/v1/experiments/{SLUG}/stats"))
    _check(document, stats, "get", client.get("/api/v1/experiments/nope/stats", headers=BEARER))
    _check(
        document,
        "/api/v1/experiments/{slug}/assignment",
        "get",
        client.get("/api/v1/experiments/nope/assignment", headers={"User-Agent": BROWSER}),
    )

    action = "/api/v1/experiments/{slug}/"
    for name, body, status in (
        ("pause", None, 200),
        ("pause", None, 409),
        ("resume", None, 200),
        ("decide", {"variant": "z"}, 400),
        ("decide", {"variant": "B"}, 200),
        ("reopen", None, 200),
    ):
        response = client.post(f"/api/v1/experiments/{SLUG}/{name}", json=body, headers=BEARER)
        assert response.status_code == status, (name, response.get_json())
        _check(document, action + name, "post", response)
        if name == "decide" and status == 200:
            decided = client.get(f"/api/v1/experiments/{SLUG}/stats", headers=BEARER)
            _check(document, stats, "get", decided)
            assert decided.get_json()["winner"] == "b"
    _check(document, action + "pause", "post", client.post(f"/api/v1/experiments/{SLUG}/pause"))
    _check(
        document,
        action + "pause",
        "post",
        client.post("/api/v1/experiments/nope/pause", headers=BEARER),
    )


def test_operations_answer_as_described(client, document):
    _check(document, "/healthz/live", "get", client.get("/healthz/live"))
    _check(document, "/healthz", "get", client.get("/healthz"))
    _check(document, "/healthz/ready", "get", client.get("/healthz/ready"))
    _check(document, "/metrics", "get", client.get("/metrics"))
    _check(document, "/metrics", "get", client.get("/metrics", headers=BEARER))


def test_actions_without_a_token_answer_as_described(settings, redis_client):
    app = create_app(dataclasses.replace(settings, api_token=None), redis=redis_client)
    try:
        client = app.test_client()
        document = client.get("/api/v1/openapi.json").get_json()
        refused = client.post(f"/api/v1/experiments/{SLUG}/pause", headers=BEARER)
        assert refused.status_code == 403
        _check(document, "/api/v1/experiments/{slug}/pause", "post", refused)
        _check(document, "/metrics", "get", client.get("/metrics"))  # off: 404
    finally:
        app.extensions["abtest"]["service"].stop()


def test_dashboard_pages_answer_as_described(client, document):
    # Not signed in: pages redirect, the dashboard's JSON answers 401.
    _check(document, "/dashboard/", "get", client.get("/dashboard/"))
    _check(document, "/dashboard/{slug}", "get", client.get(f"/dashboard/{SLUG}"))
    _check(
        document,
        "/dashboard/api/experiments/{slug}",
        "get",
        client.get(f"/dashboard/api/experiments/{SLUG}"),
    )
    _check(document, "/dashboard/login", "get", client.get("/dashboard/login"))


def test_cookies_and_tokens_are_named_as_the_app_sets_them(app, client, document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiToken"] == {**schemes["apiToken"], "type": "http", "scheme": "bearer"}
    session = schemes["editorSession"]
    assert (session["type"], session["in"]) == ("apiKey", "cookie")
    assert session["name"] == app.config["SESSION_COOKIE_NAME"]
    cookies = {
        p["name"] for p in document["paths"]["/"]["get"]["parameters"] if p["in"] == "cookie"
    }
    assert cookies == {COOKIE}
    set_cookie = front(client).headers["Set-Cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")


def test_the_public_url_is_the_server(settings, redis_client):
    app = create_app(
        dataclasses.replace(settings, public_url="https://news.example.com"), redis=redis_client
    )
    try:
        served = app.test_client().get("/api/v1/openapi.json").get_json()
        assert served["servers"] == [{"url": "https://news.example.com"}]
    finally:
        app.extensions["abtest"]["service"].stop()


def _beacon(browser, path: str, body):
    """What navigator.sendBeacon sends: a string, as text/plain."""
    return browser.post(
        path,
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="text/plain;charset=UTF-8",
        headers={"User-Agent": BROWSER},
    )


def test_the_reader_signals_answer_as_described(new_client, service, document):
    reader, stranger = new_client(), new_client()
    batch = reader.get(f"/api/v1/assignments?slugs={SLUG}", headers={"User-Agent": BROWSER})
    _check(document, "/api/v1/assignments", "get", batch)
    (one,) = batch.get_json()["assignments"]
    (theirs,) = stranger.get(
        f"/api/v1/assignments?slugs={SLUG}", headers={"User-Agent": BROWSER}
    ).get_json()["assignments"]
    seen = "/api/v1/seen"
    for browser, body, status in (
        (reader, {"tokens": [one["token"]]}, 204),
        (reader, "not json", 400),
        (reader, {"tokens": ["not-a-token"]}, 400),
        (reader, {"tokens": [theirs["token"]]}, 403),
    ):
        response = _beacon(browser, seen, body)
        assert response.status_code == status, (body, response.data)
        _check(document, seen, "post", response)
    assert service.store.get(SLUG).seen == tuple(int(v == one["variant"]) for v in "abc")

    # The click goes on to the slot's own page, or to abtest's story page.
    clicked = reader.get(one["click_url"] + "?to=/news/story?x=1", headers={"User-Agent": BROWSER})
    _check(document, "/c/{token}", "get", clicked)
    assert clicked.headers["Location"] == "/news/story?x=1"
    elsewhere = stranger.get(
        theirs["click_url"] + "?to=//evil.example/", headers={"User-Agent": BROWSER}
    )
    assert elsewhere.headers["Location"] == f"/articles/{SLUG}"

    engaged = "/api/v1/engaged"
    for body, status in (
        ({"experiment": SLUG, "seconds": 60}, 204),
        ({"experiment": SLUG, "seconds": -1}, 400),
        ({"experiment": "nope", "seconds": 60}, 404),
    ):
        response = _beacon(reader, engaged, body)
        assert response.status_code == status, (body, response.data)
        _check(document, engaged, "post", response)
    assert sum(service.store.get(SLUG).quality_clicks) == 1


def test_the_stats_document_with_seen_counts_is_as_described(
    client, service, redis_client, document
):
    from abtest import keys

    # B's slot is seen by far fewer of its readers: the seen check applies and flags it.
    redis_client.hset(
        keys.counts(SLUG),
        mapping={
            "i:a": 2000, "s:a": 1000, "c:a": 60, "q:a": 20,
            "i:b": 2000, "s:b": 600, "c:b": 50, "q:b": 30,
            "i:c": 2000, "s:c": 1000, "c:c": 40, "q:c": 10,
        },
    )  # fmt: skip
    service.fresh_all()
    response = client.get(f"/api/v1/experiments/{SLUG}/stats", headers=BEARER)
    _check(document, "/api/v1/experiments/{slug}/stats", "get", response)
    body = response.get_json()
    assert (body["reward"], body["denominator"]) == ("click", "served")
    assert body["seen_check"]["applies"] and body["seen_check"]["flagged"] == ["b"]
    b = body["variants"][1]
    assert (b["served"], b["seen"], b["all_clicks"], b["quality_clicks"]) == (2000, 600, 50, 30)
    assert b["seen_share"] == 0.3 and b["click_rate"] == 50 / 2000
