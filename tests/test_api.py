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
