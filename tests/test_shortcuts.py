"""The reader path's shortcuts past Flask and werkzeug, held to what the stock libraries do."""

from __future__ import annotations

import string

import flask
import pytest
from flask import url_for
from helpers import BOT, BROWSER, SLUG, front, teasers
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from werkzeug.http import dump_cookie, parse_cookie

from abtest.web.shortcuts import COOKIE, CookieHeader, visitor_cookie


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
        # Root-relative (no ABTEST_PUBLIC_URL): never from the request's Host.
        assert body["click_url"] == url_for("reader.click", token=token)
    # Uncounted (a bot): the story's address instead.
    bot = client.get(
        f"/api/v1/experiments/{SLUG}/assignment",
        headers={"User-Agent": "Googlebot/2.1"},
        base_url=base_url,
    ).get_json()
    with app.test_request_context(base_url=base_url):
        assert bot["click_url"] == url_for("reader.article", slug=SLUG)


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
