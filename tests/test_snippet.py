"""The batch assignment endpoint and the /abtest.js snippet, without a browser.

The counting rules are the front page's: a new visitor's slots are counted
once in one Redis round trip, a returning visitor's not again, bots and HEAD
requests never.
"""

from __future__ import annotations

import dataclasses
import gzip
import threading

import pytest
from helpers import BOT, BROWSER, HEADLINES, SLUG, totals
from test_roundtrips import CountingConnection, counted_app  # noqa: F401 (a fixture)

from abtest.model import Definition
from abtest.web.api import MAX_BATCH, snippet_text

SECOND = "second"
SECOND_HEADLINES = ("One", "Two")


@pytest.fixture
def second(service):
    definition = Definition(slug=SECOND, title="Second", headlines=SECOND_HEADLINES, body=("T.",))
    assert service.create(definition)
    return definition


def batch(client, query: str, user_agent: str = BROWSER):
    return client.get(f"/api/v1/assignments?{query}", headers={"User-Agent": user_agent})


def test_the_snippet_is_at_most_5_kb_gzipped(client):
    served = client.get("/abtest.js").data
    assert len(gzip.compress(served, compresslevel=9)) <= 5120


def test_the_snippet_is_served_as_cacheable_javascript(client, settings):
    with client.get("/abtest.js") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/javascript"
        assert response.get_data(True) == snippet_text(settings.quality_seconds)
        assert response.cache_control.public
        assert response.cache_control.max_age == 300
        assert "Set-Cookie" not in response.headers
        etag = response.headers["ETag"]
    again = client.get("/abtest.js", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_the_snippet_carries_the_quality_threshold(settings, redis_client):
    from abtest import create_app

    assert "var QUALITY_SECONDS = 15;" in snippet_text(15.0)
    app = create_app(dataclasses.replace(settings, quality_seconds=2.5), redis=redis_client)
    served = app.test_client().get("/abtest.js").get_data(True)
    assert "var QUALITY_SECONDS = 2.5;" in served
    assert "QUALITY_SECONDS = 15" not in served
    app.extensions["abtest"]["service"].stop()


def test_the_snippet_is_served_under_a_mount_path(client):
    with client.get("/abtest.js", environ_overrides={"SCRIPT_NAME": "/abtest"}) as response:
        assert response.status_code == 200


def test_a_batch_counts_each_slot_once_and_sets_the_cookie(new_client, service, second):
    browser = new_client()
    response = batch(browser, f"slugs={SLUG},{SECOND},{SLUG}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "Set-Cookie" in response.headers
    body = response.get_json()
    assert body["unknown"] == []
    first, other = body["assignments"]
    assert first["experiment"] == SLUG
    assert first["headline"] == HEADLINES["abc".index(first["variant"])]
    assert other["experiment"] == SECOND
    assert other["headline"] == SECOND_HEADLINES["ab".index(other["variant"])]
    assert first["click_url"].startswith("/c/") and other["click_url"].startswith("/c/")
    assert sum(totals(service)[0]) == 1
    assert sum(totals(service, SECOND)[0]) == 1
    # Returning: the same headlines, counted no more, no new cookie.
    again = batch(browser, f"slugs={SECOND},{SLUG}")
    assert [a["headline"] for a in again.get_json()["assignments"]] == [
        other["headline"],
        first["headline"],
    ]
    assert "Set-Cookie" not in again.headers
    assert sum(totals(service)[0]) == 1
    assert sum(totals(service, SECOND)[0]) == 1


def test_the_front_page_and_the_batch_share_one_visitor(new_client, service):
    browser = new_client()
    browser.get("/", headers={"User-Agent": BROWSER})
    (one,) = batch(browser, f"slugs={SLUG}").get_json()["assignments"]
    assert sum(totals(service)[0]) == 1
    page = browser.get(f"/articles/{SLUG}", headers={"User-Agent": BROWSER}).get_data(True)
    assert one["headline"] in page


def test_unknown_slugs_are_listed_and_the_rest_served(new_client, service):
    body = batch(new_client(), f"slugs=nope,{SLUG},gone-too").get_json()
    assert body["unknown"] == ["nope", "gone-too"]
    assert [a["experiment"] for a in body["assignments"]] == [SLUG]
    assert sum(totals(service)[0]) == 1
    only_unknown = batch(new_client(), "slugs=nope")
    assert only_unknown.status_code == 200
    assert only_unknown.get_json() == {"assignments": [], "unknown": ["nope"]}
    assert "Set-Cookie" not in only_unknown.headers


def test_bots_and_head_requests_are_served_uncounted(new_client, service):
    response = batch(new_client(), f"slugs={SLUG}", user_agent=BOT)
    (one,) = response.get_json()["assignments"]
    assert one["click_url"] == f"/articles/{SLUG}"
    head = new_client().head(f"/api/v1/assignments?slugs={SLUG}", headers={"User-Agent": BROWSER})
    assert head.status_code == 200
    assert "Set-Cookie" not in head.headers
    assert sum(totals(service)[0]) == 0
    # The bot is tallied as excluded (kept in memory, then added to Redis); HEAD is not.
    service.store.flush_excluded()
    assert service.store.excluded([SLUG])[SLUG] == {"i:bot:a": 1}


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("", "send ?slugs="),
        ("slugs=", "send ?slugs="),
        ("slugs=a,,b", "is not a slug"),
        ("slugs=Upper", "is not a slug"),
        ("slugs=a%20b", "is not a slug"),
        ("slugs=" + ",".join(f"s{i}" for i in range(MAX_BATCH + 1)), f"at most {MAX_BATCH}"),
    ],
)
def test_malformed_requests_get_a_clear_400(client, service, query, words):
    response = batch(client, query)
    assert response.status_code == 400
    assert words in response.get_json()["error"]
    assert "Set-Cookie" not in response.headers
    assert sum(totals(service)[0]) == 0


def test_twenty_slugs_are_allowed(client):
    response = batch(client, "slugs=" + ",".join(f"s{i}" for i in range(MAX_BATCH)))
    assert response.status_code == 200
    assert len(response.get_json()["unknown"]) == MAX_BATCH


def test_a_new_visitor_batch_costs_one_round_trip(counted_app):  # noqa: F811
    service = counted_app.extensions["abtest"]["service"]
    definition = Definition(slug=SECOND, title="Second", headlines=SECOND_HEADLINES, body=("T.",))
    assert service.create(definition)
    service.fresh_all()
    query = f"/api/v1/assignments?slugs={SLUG},{SECOND}"
    me = threading.get_ident()
    counted_app.test_client().get(query, headers={"User-Agent": BROWSER})  # reads the snapshot
    for _ in range(3):
        browser = counted_app.test_client()
        before = CountingConnection.sends[me]
        browser.get(query, headers={"User-Agent": BROWSER})
        assert CountingConnection.sends[me] - before == 1
        before = CountingConnection.sends[me]
        browser.get(query, headers={"User-Agent": BROWSER})
        assert CountingConnection.sends[me] - before == 0
    before = CountingConnection.sends[me]
    counted_app.test_client().get(query, headers={"User-Agent": BOT})
    assert CountingConnection.sends[me] == before
    assert sum(service.store.get(SECOND).impressions) == 4


def test_the_batch_answers_as_the_openapi_document_describes(new_client, second):
    from test_openapi import _check

    from abtest.web.openapi import document

    described = document()
    for query in (f"slugs={SLUG},{SECOND},nope", "slugs=Bad", ""):
        _check(described, "/api/v1/assignments", "get", batch(new_client(), query))
    with new_client().get("/abtest.js") as script:
        _check(described, "/abtest.js", "get", script)
