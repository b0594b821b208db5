"""The reader pages: counting semantics of /, /articles and /c."""

from __future__ import annotations

import time

import pytest
from conftest import TEST_SECRET
from helpers import BROWSER, HEADLINES, SLUG, front, story_headline, teasers, totals

from abtest.signing import TimestampSigner
from abtest.store import connect
from abtest.tokens import ClickToken, visitor_ref
from abtest.web.shortcuts import COOKIE


def test_front_page_shows_one_seed_headline_and_counts_one_impression(client, service):
    response = front(client)
    ((link, headline),) = teasers(response.data)
    assert headline in HEADLINES
    assert link.startswith("/c/")
    assert "abtest_visitor" in response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in response.headers["Set-Cookie"]
    assert "Max-Age=2592000" in response.headers["Set-Cookie"]  # 30 days
    impressions, clicks = totals(service)
    assert sum(impressions) == 1
    assert impressions[HEADLINES.index(headline)] == 1
    assert clicks == (0, 0, 0)
    assert "Colombia’s President Gustavo Petro is in Beijing" in response.text


def test_assignment_is_sticky_and_counted_once(client, service):
    first = teasers(front(client).data)[0][1]
    for _ in range(10):
        response = front(client)
        assert teasers(response.data)[0][1] == first
        assert "Set-Cookie" not in response.headers
    article = client.get(f"/articles/{SLUG}", headers={"User-Agent": BROWSER})
    assert story_headline(article.data) == first
    assert sum(totals(service)[0]) == 1


def test_article_counts_a_new_visitor(client, service):
    response = client.get(f"/articles/{SLUG}", headers={"User-Agent": BROWSER})
    assert response.status_code == 200
    assert story_headline(response.data) in HEADLINES
    assert "Leave a Reply" not in response.text and "Video Poster" not in response.text
    assert sum(totals(service)[0]) == 1


def test_click_is_counted_once_for_the_shown_variant(client, service):
    link, headline = teasers(front(client).data)[0]
    response = client.get(link, headers={"User-Agent": BROWSER})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/articles/{SLUG}")
    again = client.get(link, headers={"User-Agent": BROWSER})
    assert again.status_code == 303
    impressions, clicks = totals(service)
    index = HEADLINES.index(headline)
    assert clicks[index] == 1 and sum(clicks) == 1
    assert sum(impressions) == 1
    story = client.get(response.headers["Location"], headers={"User-Agent": BROWSER})
    assert story_headline(story.data) == headline
    assert sum(totals(service)[0]) == 1


def test_click_without_impression_is_refused(client, new_client, service):
    link, _ = teasers(front(client).data)[0]
    stranger = new_client()  # no cookie: never shown this headline
    response = stranger.get(link, headers={"User-Agent": BROWSER})
    assert response.status_code == 403
    assert "Traceback" not in response.text
    assert totals(service)[1] == (0, 0, 0)


def test_a_link_counts_only_in_the_browser_it_was_made_for(client, new_client, service):
    link, headline = teasers(front(client).data)[0]
    # Another reader, shown the same story (perhaps the same headline), follows
    # this reader's link (shared, say): their own cookie is not the one it names.
    other = new_client()
    front(other)
    assert other.get(link, headers={"User-Agent": BROWSER}).status_code == 403
    assert totals(service)[1] == (0, 0, 0)
    # The link names no visitor id: only a hash of it.
    ours = client.get_cookie(COOKIE).value
    assert ours.split(":")[0] not in link
    # Listing the variant shown does not do, with another id...
    shown = "abc"[HEADLINES.index(headline)]
    theirs = other.get_cookie(COOKIE).value
    signature = ours.rsplit(".", 1)[1]
    other.set_cookie(COOKIE, f"{theirs.split(':')[0]}:{SLUG}={shown}.{signature}")
    assert other.get(link, headers={"User-Agent": BROWSER}).status_code == 403
    # ...nor does the id alone: the cookie must list the variant shown.
    other.set_cookie(COOKIE, f"{ours.split(':')[0]}:other-story={shown}.{signature}")
    assert other.get(link, headers={"User-Agent": BROWSER}).status_code == 403
    # What counts is holding this reader's id: from a copy of the cookie, it does.
    other.set_cookie(COOKIE, ours)
    assert other.get(link, headers={"User-Agent": BROWSER}).status_code == 303
    assert sum(totals(service)[1]) == 1
    assert client.get(link, headers={"User-Agent": BROWSER}).status_code == 303  # once only
    assert sum(totals(service)[1]) == 1


def test_an_expired_link_leads_to_the_story_uncounted(client, service):
    # A genuine link left open too long: the reader gets the story, uncounted.
    link, _ = teasers(front(client).data)[0]
    shown = service.click_tokens.loads(link.removeprefix("/c/"))
    long_ago = TimestampSigner(TEST_SECRET, salt="abtest.click")
    long_ago.get_timestamp = lambda: int(time.time()) - service.click_tokens.max_age - 60
    expired = long_ago.sign(":".join(shown)).decode()
    response = client.get(f"/c/{expired}", headers={"User-Agent": BROWSER})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/articles/{SLUG}")
    assert totals(service)[1] == (0, 0, 0)
    assert client.get(link, headers={"User-Agent": BROWSER}).status_code == 303  # the fresh one
    assert sum(totals(service)[1]) == 1


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"),
        lambda t: "not-a-token",
        lambda t: t + "x",
    ],
)
def test_forged_or_malformed_token_is_refused(client, service, mangle):
    link, _ = teasers(front(client).data)[0]
    token = link.removeprefix("/c/")
    response = client.get("/c/" + mangle(token), headers={"User-Agent": BROWSER})
    assert response.status_code == 400
    assert "not valid" in response.text
    assert totals(service)[1] == (0, 0, 0)


def test_token_for_another_variant_is_refused(client, app, service):
    link, headline = teasers(front(client).data)[0]
    shown = "abc"[HEADLINES.index(headline)]
    visitor = service.visitor_cookies.loads(client.get_cookie("abtest_visitor").value)
    other = next(v for v in "abc" if v != shown)
    forged = service.click_tokens.dumps(ClickToken(SLUG, other, visitor_ref(visitor.id)))
    response = client.get(f"/c/{forged}", headers={"User-Agent": BROWSER})
    assert response.status_code == 403
    assert totals(service)[1] == (0, 0, 0)
    # ...and the genuine link still counts afterwards.
    assert client.get(link, headers={"User-Agent": BROWSER}).status_code == 303
    assert sum(totals(service)[1]) == 1


def test_unknown_slug_is_404_and_counts_nothing(client, service):
    assert client.get("/articles/no-such-story").status_code == 404
    api = client.get("/api/v1/experiments/no-such-story/assignment")
    assert api.status_code == 404 and "error" in api.get_json()
    token = service.click_tokens.dumps(ClickToken("no-such-story", "a", visitor_ref("someone")))
    assert client.get(f"/c/{token}").status_code == 404
    assert sum(totals(service)[0]) == 0


def test_reader_gets_a_page_while_redis_is_away(client, app, service, settings, tmp_path):
    front(client)  # warms this worker's snapshot
    service.store.redis = connect(f"unix://{tmp_path}/nothing-here.sock", timeout=0.2)
    stranger = app.test_client()
    response = front(stranger)
    ((link, headline),) = teasers(response.data)
    assert headline in HEADLINES
    assert link == f"/articles/{SLUG}"  # uncounted: no click token
    assert "Set-Cookie" not in response.headers
    assert "Traceback" not in response.text


def test_paused_serves_variant_a_and_counts_nothing(client, new_client, service):
    link, _ = teasers(front(client).data)[0]
    service.pause(SLUG, editor="ed")
    for browser in (client, new_client()):
        response = browser.get("/", headers={"User-Agent": BROWSER})
        # The story stays on the front page, with headline A and no click token.
        assert teasers(response.data) == [(f"/articles/{SLUG}", HEADLINES[0])]
        story = browser.get(f"/articles/{SLUG}", headers={"User-Agent": BROWSER})
        assert story_headline(story.data) == HEADLINES[0]
    assert client.get(link).status_code == 303
    impressions, clicks = totals(service)
    assert sum(impressions) == 1 and sum(clicks) == 0


def test_decided_serves_the_winner_to_everyone(client, new_client, service):
    link, _ = teasers(front(client).data)[0]
    service.decide(SLUG, "c", editor="ed")
    before = totals(service)
    for browser in (client, new_client(), new_client()):
        ((url, headline),) = teasers(front(browser).data)
        assert headline == HEADLINES[2]
        assert url == f"/articles/{SLUG}"
    assert client.get(link).status_code == 303  # an old link still reaches the story
    assert totals(service) == before
    assert service.audit(SLUG)[0]["action"] == "decide"


def test_headlines_are_escaped(client, service):
    from abtest.model import Definition

    service.create(
        Definition(
            slug="escape",
            title="Escaping",
            headlines=("<script>alert(1)</script>", "Tom & Jerry <b>bold</b>"),
            body=("<img src=x onerror=alert(1)>",),
        )
    )
    response = client.get("/articles/escape", headers={"User-Agent": BROWSER})
    assert "<script>alert(1)</script>" not in response.text
    assert "<img src=x" not in response.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in response.text


def test_seed_loading_is_idempotent_and_keeps_counts(client, service):
    link, _ = teasers(front(client).data)[0]
    client.get(link)
    before = totals(service)
    assert service.ensure_seed() is False
    assert totals(service) == before


def test_readers_shown_the_same_headline_get_their_own_click_links(new_client, service):
    seen = {}
    for _ in range(12):
        browser = new_client()
        ((link, headline),) = teasers(front(browser).data)
        if headline in seen:
            other_browser, other_link = seen[headline]
            assert link != other_link
            assert browser.get(other_link, headers={"User-Agent": BROWSER}).status_code == 403
            assert browser.get(link, headers={"User-Agent": BROWSER}).status_code == 303
            assert sum(totals(service)[1]) == 1
            return
        seen[headline] = (browser, link)
    pytest.fail("twelve readers never shared a headline")


def test_click_deduplication_outlives_the_visitors_headline(client, service):
    from abtest import keys

    link, _ = teasers(front(client).data)[0]
    client.get(link, headers={"User-Agent": BROWSER})
    # One hash of markers per experiment, its field the link's visitor ref (no visitor id).
    token = service.click_tokens.loads(link.rsplit("/", 1)[1])
    markers = service.store.redis.hgetall(keys.clicked(SLUG))
    assert markers == {token.visitor_ref: token.variant}
    # The marker lasts as long as the cookie's assignment plus a token's lifetime,
    # so a reader back next week with a fresh link is not counted twice.
    if service.store.field_ttl:  # Redis 7.4 and later: the marker's own field
        command = ("HTTL", keys.clicked(SLUG), "FIELDS", 1, token.visitor_ref)
        (ttl,) = service.store.redis.execute_command(*command)
    else:
        ttl = service.store.redis.ttl(keys.clicked(SLUG))
    assert ttl > 30 * 86_400
