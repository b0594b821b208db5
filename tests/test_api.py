"""The JSON API: assignment for other pages, stats for editors."""

from __future__ import annotations

import flask
from helpers import BROWSER, HEADLINES, SLUG, front, teasers, totals


def test_assignment_api(app, client, service):
    response = client.get(f"/api/v1/experiments/{SLUG}/assignment", headers={"User-Agent": BROWSER})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    with app.app_context():  # byte for byte what jsonify sends
        assert response.data == flask.jsonify(body).data
    assert set(body) == {"experiment", "variant", "headline", "click_url"}
    assert body["experiment"] == SLUG
    assert body["headline"] == HEADLINES["abc".index(body["variant"])]
    assert "/c/" in body["click_url"]
    again = client.get(f"/api/v1/experiments/{SLUG}/assignment").get_json()
    assert again["variant"] == body["variant"]
    assert sum(totals(service)[0]) == 1
    # The front page shows the same headline, uncounted again.
    assert teasers(front(client).data)[0][1] == body["headline"]
    assert sum(totals(service)[0]) == 1


def test_stats_api_needs_the_token(client, service):
    url = f"/api/v1/experiments/{SLUG}/stats"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    link, headline = teasers(front(client).data)[0]
    client.get(link)
    response = client.get(url, headers={"Authorization": "Bearer test-api-token"})
    assert response.status_code == 200
    document = response.get_json()
    assert document["experiment"] == SLUG
    # Served in SPEC's order (identity first, then variants and tests), not sorted.
    assert response.text.index('"experiment"') < response.text.index('"alpha"')
    assert document["status"] == "running" and document["winner"] is None
    variants = document["variants"]
    assert [v["id"] for v in variants] == ["a", "b", "c"]
    assert [v["headline"] for v in variants] == list(HEADLINES)
    shown = variants[HEADLINES.index(headline)]
    assert (shown["impressions"], shown["clicks"], shown["ctr"], shown["allocation"]) == (
        1,
        1,
        1.0,
        1.0,
    )
    assert (
        client.get(
            "/api/v1/experiments/nope/stats", headers={"Authorization": "Bearer test-api-token"}
        ).status_code
        == 404
    )


# -- click_url and the Host header ---------------------------------------------

AUTH = {"Authorization": "Bearer test-api-token"}
FORGED = "evil.example"


def test_click_url_is_root_relative_without_a_public_url(client):
    body = client.get(
        f"/api/v1/experiments/{SLUG}/assignment", headers={"User-Agent": BROWSER}
    ).get_json()
    assert body["click_url"].startswith("/c/")


def test_click_url_starts_with_the_public_url(settings, redis_client):
    from dataclasses import replace

    from abtest import create_app

    app = create_app(replace(settings, public_url="https://news.example/site"), redis=redis_client)
    try:
        client = app.test_client()
        counted = client.get(
            f"/api/v1/experiments/{SLUG}/assignment",
            headers={"User-Agent": BROWSER, "Host": FORGED},
        ).get_json()
        assert counted["click_url"].startswith("https://news.example/site/c/")
        # A crawler is served uncounted: its link leads to the story, from the same base.
        uncounted = client.get(
            f"/api/v1/experiments/{SLUG}/assignment", headers={"User-Agent": "curl/8.0"}
        ).get_json()
        assert uncounted["click_url"] == f"https://news.example/site/articles/{SLUG}"
    finally:
        app.extensions["abtest"]["service"].stop()


def _answers(client, headers):
    """Every kind of answer the JSON API gives: successes, refusals and errors."""
    base = f"/api/v1/experiments/{SLUG}"
    yield client.get(f"{base}/assignment", headers={"User-Agent": BROWSER, **headers})
    yield client.get(f"{base}/assignment", headers={"User-Agent": "curl/8.0", **headers})
    yield client.get("/api/v1/experiments/nope/assignment", headers=headers)
    yield client.get(f"{base}/stats", headers={**AUTH, **headers})
    yield client.get(f"{base}/stats", headers=headers)
    yield client.post(f"{base}/assignment", headers=headers)
    yield client.post(f"{base}/pause", headers={**AUTH, **headers})
    yield client.post(f"{base}/pause", headers={**AUTH, **headers})
    yield client.post(f"{base}/resume", headers=headers)
    yield client.post(f"{base}/decide", data="{", headers={**AUTH, **headers})
    yield client.post(f"{base}/decide", json={"variant": "z"}, headers={**AUTH, **headers})
    yield client.post(f"{base}/decide", json={"variant": "b"}, headers={**AUTH, **headers})
    yield client.post(f"{base}/reopen", headers={**AUTH, **headers})
    yield client.get("/api/v1/nothing-here", headers=headers)


def test_a_forged_host_is_never_reflected(client):
    headers = {"Host": FORGED, "X-Forwarded-Host": FORGED, "Forwarded": f"host={FORGED}"}
    statuses = set()
    for response in _answers(client, headers):
        statuses.add(response.status_code)
        assert FORGED not in response.get_data(as_text=True)
        for name, value in response.headers.items():
            assert FORGED not in value, (name, value)
    assert {200, 400, 401, 404, 405, 409} <= statuses  # every kind of answer was seen


# -- actions ---------------------------------------------------------------------


def _post(client, action, slug=SLUG, **kwargs):
    headers = kwargs.pop("headers", AUTH)
    return client.post(f"/api/v1/experiments/{slug}/{action}", headers=headers, **kwargs)


def test_actions_change_the_state_and_are_audited_as_the_api(client, service):
    paused = _post(client, "pause")
    assert paused.status_code == 200
    assert paused.get_json() == {"experiment": SLUG, "status": "paused", "winner": None}
    assert service.fresh(SLUG).status == "paused"
    assert _post(client, "resume").get_json()["status"] == "running"
    decided = _post(client, "decide", json={"variant": "B"})
    assert decided.get_json() == {"experiment": SLUG, "status": "decided", "winner": "b"}
    assert (service.fresh(SLUG).status, service.fresh(SLUG).winner) == ("decided", "b")
    assert _post(client, "reopen").get_json() == {
        "experiment": SLUG,
        "status": "running",
        "winner": None,
    }
    audit = service.audit(SLUG)
    assert [(e["action"], e["editor"]) for e in reversed(audit)] == [
        ("pause", "api"),
        ("resume", "api"),
        ("decide", "api"),
        ("reopen", "api"),
    ]
    assert audit[1]["winner"] == "b"


def test_actions_need_the_token(client, service):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-api-token"}):
        refused = _post(client, "pause", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "error" in refused.get_json()
    # An editor's session is not enough: actions take the token only.
    with client.session_transaction() as session:
        session["editor"] = "editor"
    assert _post(client, "pause", headers={}).status_code == 401
    # Refused before the slug is looked at: no way to probe for slugs.
    assert _post(client, "pause", slug="nope", headers={}).status_code == 401
    assert service.fresh(SLUG).status == "running"
    assert service.audit(SLUG) == []


def test_actions_are_off_without_an_api_token(settings, redis_client):
    from dataclasses import replace

    from abtest import create_app

    app = create_app(replace(settings, api_token=None, env="development"), redis=redis_client)
    # Development would generate a token into the data dir; take it away again.
    app.extensions["abtest"]["settings"] = replace(
        app.extensions["abtest"]["settings"], api_token=None
    )
    try:
        refused = _post(app.test_client(), "pause", headers={"Authorization": "Bearer "})
        assert refused.status_code == 403
        assert "ABTEST_API_TOKEN" in refused.get_json()["error"]
        assert app.extensions["abtest"]["service"].fresh(SLUG).status == "running"
    finally:
        app.extensions["abtest"]["service"].stop()


def test_actions_refuse_clearly_and_count_nothing(client, service):
    before = totals(service)
    unknown = _post(client, "pause", slug="nope")
    assert unknown.status_code == 404 and "nope" in unknown.get_json()["error"]
    assert _post(client, "decide", slug="nope", json={"variant": "a"}).status_code == 404
    for body in ("{", "[]", '{"variant": 2}', '{"variant": ""}', "{}", ""):
        malformed = _post(client, "decide", data=body, content_type="application/json")
        assert malformed.status_code == 400, body
        assert '{"variant"' in malformed.get_json()["error"]
    bad_variant = _post(client, "decide", json={"variant": "z"})
    assert bad_variant.status_code == 400
    assert "a, b, c" in bad_variant.get_json()["error"]
    for action in ("resume", "reopen"):  # only for a paused / decided test
        not_now = _post(client, action)
        assert not_now.status_code == 409, action
        assert "only a" in not_now.get_json()["error"]
    assert _post(client, "decide", json={"variant": "a"}).status_code == 200
    again = _post(client, "decide", json={"variant": "b"})
    assert again.status_code == 409 and "reopen" in again.get_json()["error"]
    assert _post(client, "pause").status_code == 409
    wrong_method = client.get(f"/api/v1/experiments/{SLUG}/pause", headers=AUTH)
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["Allow"]
    assert service.fresh(SLUG).winner == "a"
    assert [e["action"] for e in service.audit(SLUG)] == ["decide"]
    assert totals(service) == before
