"""Who a request's reader is: bots and prefetches, private responses, the cookie set."""

from __future__ import annotations

import pytest
from helpers import BOT, BROWSER, HEADLINES, SLUG, front, teasers, totals


@pytest.mark.parametrize(
    "headers",
    [
        {"User-Agent": BOT},
        {"User-Agent": "facebookexternalhit/1.1"},
        {"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
        {"User-Agent": BROWSER, "Sec-Purpose": "prefetch"},
        {"User-Agent": BROWSER, "Sec-Purpose": "prefetch;prerender"},
        {"User-Agent": BROWSER, "Purpose": "prefetch"},
    ],
)
def test_bots_and_prefetches_are_served_but_not_counted(client, service, headers):
    for path in ("/", f"/articles/{SLUG}", f"/api/v1/experiments/{SLUG}/assignment"):
        response = client.get(path, headers=headers)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers
    ((link, headline),) = teasers(client.get("/", headers=headers).data)
    assert headline == HEADLINES[0]
    assert link == f"/articles/{SLUG}"
    assert totals(service) == ((0, 0, 0), (0, 0, 0))


def test_a_prefetched_click_counts_nothing(client, service):
    link, _ = teasers(front(client).data)[0]
    response = client.get(link, headers={"User-Agent": BROWSER, "Sec-Purpose": "prefetch"})
    assert response.status_code == 303
    assert totals(service)[1] == (0, 0, 0)


def test_reader_responses_are_private(client):
    link = teasers(front(client).data)[0][0]
    for path in ("/", f"/articles/{SLUG}", f"/api/v1/experiments/{SLUG}/assignment", link):
        response = client.get(path, headers={"User-Agent": BROWSER})
        assert response.status_code in (200, 303)
        assert response.headers["Cache-Control"] == "private, no-store"
        assert response.headers.getlist("Vary") == ["Cookie"]


def test_a_returning_readers_prefetch_shows_their_own_headline(client, service):
    ((_, headline),) = teasers(front(client).data)
    prefetched = client.get("/", headers={"User-Agent": BROWSER, "Sec-Purpose": "prefetch"})
    ((link, shown),) = teasers(prefetched.data)
    assert shown == headline and link == f"/articles/{SLUG}"
    assert sum(totals(service)[0]) == 1


def test_a_phone_named_cubot_is_a_reader_not_a_bot(client, service):
    cubot = (
        "Mozilla/5.0 (Linux; Android 11; CUBOT X19) AppleWebKit/537.36"
        " Chrome/96.0 Mobile Safari/537.36"
    )
    client.get("/", headers={"User-Agent": cubot})
    assert sum(totals(service)[0]) == 1


def test_the_cookie_forgets_decided_experiments(client, app, service):
    from abtest.model import Definition

    front(client)
    service.create(
        Definition(slug="second", title="Second", headlines=("One", "Two"), body=("Text.",))
    )
    service.decide(SLUG, "a", editor="ed")
    client.get("/articles/second", headers={"User-Agent": BROWSER})
    visitor = service.visitor_cookies.loads(client.get_cookie("abtest_visitor").value)
    assert set(visitor.assignments) == {"second"}
