"""The reader path: counting semantics of /, /articles, /c and the assignment API."""

from __future__ import annotations

import string

import flask
import pytest
from flask import url_for
from helpers import HEADLINES, SLUG, story_headline, teasers, totals
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from werkzeug.http import dump_cookie, parse_cookie

from abtest import create_app
from abtest.store import connect
from abtest.tokens import ClickToken, visitor_ref
from abtest.web.context import COOKIE, CookieHeader, visitor_cookie
from abtest.web.pages import RenderedPages, slot

BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"


def front(client, **headers):
    response = client.get("/", headers={"User-Agent": BROWSER, **headers})
    assert response.status_code == 200
    return response


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


def test_a_link_from_before_visitor_refs_leads_to_the_story_uncounted(client, service):
    # Links made before click tokens named a visitor ref carry the id itself:
    # genuine, so the reader gets the story, but never counted.
    front(client)
    visitor_id = client.get_cookie(COOKIE).value.split(":")[0]
    old = service.click_tokens._signer.sign(f"{SLUG}:a:{visitor_id}").decode()
    response = client.get(f"/c/{old}", headers={"User-Agent": BROWSER})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/articles/{SLUG}")
    assert totals(service)[1] == (0, 0, 0)


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
    visitor = app.extensions["abtest"]["visitor_cookies"].loads(
        client.get_cookie("abtest_visitor").value
    )
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


def test_wrong_method_is_405(client, service):
    assert client.post("/").status_code == 405
    assert client.delete(f"/articles/{SLUG}").status_code == 405
    assert sum(totals(service)[0]) == 0


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


@pytest.mark.parametrize("root", ["", "/news"])
def test_api_click_urls_are_the_routes_url_for_builds(app, root):
    client = app.test_client()
    base_url = f"http://localhost{root}"
    body = client.get(
        f"/api/v1/experiments/{SLUG}/assignment",
        headers={"User-Agent": BROWSER},
        base_url=base_url,
    ).get_json()
    token = body["click_url"].rsplit("/", 1)[1]
    with app.test_request_context(base_url=base_url):
        assert body["click_url"] == url_for("reader.click", token=token, _external=True)
    # Uncounted (a bot): the story's address instead.
    bot = client.get(
        f"/api/v1/experiments/{SLUG}/assignment",
        headers={"User-Agent": "Googlebot/2.1"},
        base_url=base_url,
    ).get_json()
    with app.test_request_context(base_url=base_url):
        assert bot["click_url"] == url_for("reader.article", slug=SLUG, _external=True)


def test_the_cookie_header_is_werkzeugs(settings):
    header = CookieHeader(settings)
    value = "visitor_1:colombia-china=b.c2lnbmF0dXJl"
    for now in (1_700_000_000, 1_700_000_000.9, 1_700_000_001):
        expected = dump_cookie(
            COOKIE,
            value,
            max_age=settings.visitor_days * 86_400,
            expires=int(now) + settings.visitor_days * 86_400,
            path="/",
            httponly=True,
            secure=settings.cookie_secure,
            samesite="Lax",
        )
        assert header(value, now=now) == expected


_COOKIE_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-_.:=", max_size=40)
_OTHER_NAME = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=16)


@settings_(max_examples=300, deadline=None)
@given(
    others=st.lists(st.tuples(_OTHER_NAME, _COOKIE_TEXT), max_size=4),
    ours=st.lists(_COOKIE_TEXT, max_size=2),
    position=st.integers(0, 4),
    spacing=st.sampled_from(["; ", ";", ";  ", " ; "]),
)
def test_the_visitor_cookie_is_read_as_werkzeug_parses_it(others, ours, position, spacing):
    pairs = [f"{name}={value}" for name, value in others]
    for value in ours:
        pairs.insert(min(position, len(pairs)), f"{COOKIE}={value}")
    header = spacing.join(pairs)
    environ = {"HTTP_COOKIE": header} if header else {}
    assert visitor_cookie(environ) == (parse_cookie(header).get(COOKIE) or None)


@pytest.mark.parametrize(
    "header",
    [
        f"my_{COOKIE}=theirs; {COOKIE}=ours",
        f"{COOKIE}x=theirs; {COOKIE}=ours",
        f"{COOKIE}=ours; {COOKIE}=second",
        f"a=1;{COOKIE}= ours ;b=2",
        f"{COOKIE}=",
        f"a={COOKIE}=theirs",
        f'{COOKIE}="quoted"; other=1',
        f'a="x;{COOKIE}=inside"; {COOKIE}=ours',
        f"{COOKIE} =spaced",
        "",
    ],
)
def test_the_visitor_cookie_among_lookalikes(header):
    assert visitor_cookie({"HTTP_COOKIE": header}) == (parse_cookie(header).get(COOKIE) or None)


def test_a_readers_request_parses_no_cookies_and_sets_no_session(app):
    parsed = []

    @app.after_request
    def _look(response):
        # werkzeug keeps request.cookies in the request's __dict__ once parsed.
        parsed.append("cookies" in flask.request.__dict__)
        return response

    reader = app.test_client()
    reader.set_cookie("consent", "yes")
    front(reader)  # no session cookie: nothing parses the cookies
    assert parsed == [False]
    # A forged session cookie is parsed (to find it), but no session is set.
    forger = app.test_client()
    forger.set_cookie(app.config["SESSION_COOKIE_NAME"], "forged")
    response = front(forger)
    assert parsed == [False, True]
    assert response.headers.getlist("Vary") == ["Cookie"]
    assert app.config["SESSION_COOKIE_NAME"] not in response.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_a_cached_page_gets_each_readers_tokens_in_its_slots(count):
    pages = RenderedPages()
    # Braces in the page are text, and a slot may appear more than once.
    link = "<a href='/c/{}'>{{{}}}</a><a href='/c/{}'>more</a>"
    template = "<p>" + "".join(link.format(slot(i), i, slot(i)) for i in range(count)) + "</p>"
    for reader in ("one", "two"):
        tokens = [f"{reader}{i}" for i in range(count)]
        links = "".join(link.format(f"{reader}{i}", i, f"{reader}{i}") for i in range(count))
        assert pages.page(("front", count), tokens, lambda: template) == f"<p>{links}</p>"


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "redis": "ok"}


def test_healthz_reports_unreachable_redis(settings, tmp_path):
    dead = connect(f"unix://{tmp_path}/nothing-here.sock", timeout=0.2)
    app = create_app(settings, redis=dead)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["redis"].startswith("redis:")


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


def test_paused_serves_variant_a_and_counts_nothing(client, new_client, service):
    link, _ = teasers(front(client).data)[0]
    service.pause(SLUG, editor="ed")
    for browser in (client, new_client()):
        response = browser.get("/", headers={"User-Agent": BROWSER})
        assert teasers(response.data) == []  # paused stories leave the front page
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


def test_error_pages_never_show_a_traceback(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Traceback" not in response.text and "Not Found" in response.text


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


def test_click_deduplication_outlives_the_visitors_headline(client, service):
    from abtest import keys

    link, _ = teasers(front(client).data)[0]
    client.get(link, headers={"User-Agent": BROWSER})
    visitor = next(iter(service.store.redis.scan_iter(match=keys.clicked(SLUG, "*"))))
    # The marker lasts as long as the cookie's assignment plus a token's lifetime,
    # so a reader back next week with a fresh link is not counted twice.
    assert service.store.redis.ttl(visitor) > 30 * 86_400


def test_the_cookie_forgets_decided_experiments(client, app, service):
    from abtest.model import Definition

    front(client)
    service.create(
        Definition(slug="second", title="Second", headlines=("One", "Two"), body=("Text.",))
    )
    service.decide(SLUG, "a", editor="ed")
    client.get("/articles/second", headers={"User-Agent": BROWSER})
    visitor = app.extensions["abtest"]["visitor_cookies"].loads(
        client.get_cookie("abtest_visitor").value
    )
    assert set(visitor.assignments) == {"second"}


def test_reader_responses_send_the_headers_werkzeug_would(client, monkeypatch):
    # ReaderResponse sends its headers as they are; werkzeug's own pass
    # (get_wsgi_headers) must have nothing to change on any of them.
    from werkzeug.wrappers import Response

    from abtest.web.context import ReaderResponse

    sent = []
    as_is = ReaderResponse.get_wsgi_headers

    def both(self, environ):
        ours = as_is(self, environ)
        stock = Response.get_wsgi_headers(self, environ)
        sent.append((self.status_code, ours is self.headers, ours.to_wsgi_list(), stock))
        return ours

    monkeypatch.setattr(ReaderResponse, "get_wsgi_headers", both)
    link = teasers(front(client).data)[0][0]  # a new visitor: Set-Cookie too
    front(client)  # returning
    client.get(f"/articles/{SLUG}", headers={"User-Agent": BROWSER})
    client.get(f"/api/v1/experiments/{SLUG}/assignment", headers={"User-Agent": BROWSER})
    assert client.get(link, headers={"User-Agent": BROWSER}).status_code == 303
    client.get(link, headers={"User-Agent": BOT})  # a bot's click: to the story, uncounted
    # Under a prefix with a non-ASCII letter the Location needs quoting: werkzeug's path.
    # (WSGI carries the path's UTF-8 bytes as latin-1 text.)
    prefix = "/zé".encode().decode("latin-1")
    moved = client.get(
        link, headers={"User-Agent": BROWSER}, environ_overrides={"SCRIPT_NAME": prefix}
    )
    assert moved.headers["Location"] == "/z%C3%A9/articles/" + SLUG
    # ...and so does one with a character a URL must quote.
    spaced = client.get(
        link, headers={"User-Agent": BROWSER}, environ_overrides={"SCRIPT_NAME": "/a b"}
    )
    assert spaced.headers["Location"] == "/a%20b/articles/" + SLUG

    assert [status for status, *_ in sent] == [200, 200, 200, 200, 303, 303, 303, 303]
    assert [as_sent for _, as_sent, *_ in sent] == [True] * 6 + [False, False]
    for _, _, ours, stock in sent:
        assert ours == stock.to_wsgi_list()
