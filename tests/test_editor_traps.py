"""The editor's traps, against a real Redis: reopening asks first and says what
it does, the winner's confirmation names only a headline the experiment has,
times read "2 hours ago" (never "just now ago"), and a refused API caller is
told what to send.

CSRF protection stays on: tokens are read from the rendered forms.
"""

from __future__ import annotations

import html
import re

import pytest
from helpers import HEADLINES, SLUG

from abtest.dashboard import present
from abtest.model import Definition

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
MINUTE, HOUR, DAY = 60, 3600, 86400

#: How long ago, in words, at the edges of each wording.  The browser's copy
#: (dashboard.js) is held to the same table in tests/test_dashboard_a11y.py.
AGO = [
    (-30, "just now"),  # another server's clock a little ahead
    (0, "just now"),
    (59, "just now"),
    (59.9, "just now"),
    (60, "1 minute ago"),
    (119, "1 minute ago"),
    (120, "2 minutes ago"),
    (HOUR - 1, "59 minutes ago"),
    (HOUR, "1 hour ago"),
    (2 * HOUR - 1, "1 hour ago"),
    (2 * HOUR, "2 hours ago"),
    (DAY - 1, "23 hours ago"),
    (DAY, "yesterday"),
    (2 * DAY - 1, "yesterday"),
    (2 * DAY, "2 days ago"),
    (7 * DAY - 1, "6 days ago"),
    (7 * DAY, "1 week ago"),
    (14 * DAY - 1, "1 week ago"),
    (14 * DAY, "2 weeks ago"),
    (60 * DAY - 1, "8 weeks ago"),
    (60 * DAY, "2 months ago"),
    (365 * DAY - 1, "12 months ago"),
    (365 * DAY, "1 year ago"),
    (2 * 365 * DAY, "2 years ago"),
]


@pytest.fixture
def editor(client):
    token = TOKEN.search(client.get("/dashboard/login").text).group(1)
    response = client.post(
        "/dashboard/login",
        data={"username": "editor", "password": "correct horse", "csrf_token": token},
    )
    assert response.status_code == 303
    return client


def form_token(page: str) -> str:
    return TOKEN.findall(page)[-1]


def decide(client, variant: str) -> None:
    page = client.get(f"/dashboard/{SLUG}/decide?variant={variant}").text
    response = client.post(
        f"/dashboard/{SLUG}/decide", data={"csrf_token": form_token(page), "variant": variant}
    )
    assert response.status_code == 303


def status_of(service) -> tuple[str, str | None]:
    experiment = service.store.get(SLUG)
    return experiment.status, experiment.winner


def text_of(page: str) -> str:
    """The page's words, tags dropped and space collapsed (none inside brackets)."""
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    return words.replace("( ", "(").replace(" )", ")")


# -- reopening asks first ------------------------------------------------------------


def test_reopen_is_a_confirmation_that_says_the_losers_come_back(editor, service):
    decide(editor, "b")
    page = editor.get(f"/dashboard/{SLUG}").text
    # The experiment page links to the confirmation; it holds no form that reopens.
    assert f'href="/dashboard/{SLUG}/reopen"' in page
    assert f'action="/dashboard/{SLUG}/reopen"' not in page

    confirm = editor.get(f"/dashboard/{SLUG}/reopen")
    assert confirm.status_code == 200
    assert status_of(service) == ("decided", "b")  # looking is not reopening
    words = text_of(confirm.text)
    assert "Reopen the test?" in words
    assert "Now every reader gets headline B" in words
    assert "Reopening puts the headlines that lost back in front of readers." in words
    for losing in (HEADLINES[0], HEADLINES[2]):
        assert losing in words
    assert "counting resumes" in words and "audit log" in words
    assert 'id="confirm-reopen"' in confirm.text

    response = editor.post(
        f"/dashboard/{SLUG}/reopen", data={"csrf_token": form_token(confirm.text)}
    )
    assert response.status_code == 303
    assert status_of(service) == ("running", None)
    assert [entry["action"] for entry in service.audit(SLUG)] == ["reopen", "decide"]
    assert "Reopened." in editor.get(response.headers["Location"]).text


def test_the_decided_tests_winner_page_leads_to_the_reopen_confirmation(editor, service):
    decide(editor, "b")
    page = editor.get(f"/dashboard/{SLUG}/decide?variant=a").text
    assert "A winner is chosen already (B)." in page
    assert f'href="/dashboard/{SLUG}/reopen"' in page and 'id="confirm-decide"' not in page


def test_reopen_without_the_forms_token_changes_nothing(editor, service):
    decide(editor, "c")
    for data in ({}, {"csrf_token": "forged"}):
        assert editor.post(f"/dashboard/{SLUG}/reopen", data=data).status_code == 400
    assert status_of(service) == ("decided", "c")


def test_reopen_confirmation_of_an_undecided_test_offers_nothing(editor, service):
    page = editor.get(f"/dashboard/{SLUG}/reopen")
    assert page.status_code == 200
    assert "Only a decided test can be reopened" in page.text
    assert 'id="confirm-reopen"' not in page.text
    assert editor.get("/dashboard/no-such-story/reopen").status_code == 404


def test_reopen_confirmation_needs_a_signed_in_editor(client):
    response = client.get(f"/dashboard/{SLUG}/reopen")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/login")


# -- the winner's confirmation names a real headline ------------------------------------


@pytest.mark.parametrize(("variant", "shown"), [("b", "B"), ("C", "C"), (" a ", "A")])
def test_decide_confirms_the_headline_asked_for(editor, variant, shown):
    page = editor.get(f"/dashboard/{SLUG}/decide", query_string={"variant": variant})
    assert page.status_code == 200
    assert f"Choose {shown} as the winner?" in page.text


def test_decide_without_a_variant_confirms_the_leader(editor):
    page = editor.get(f"/dashboard/{SLUG}/decide")
    assert page.status_code == 200 and "as the winner?" in page.text


@pytest.mark.parametrize("variant", ["d", "z", "Z"])
def test_decide_for_a_headline_the_experiment_lacks_is_a_404(editor, service, variant):
    page = editor.get(f"/dashboard/{SLUG}/decide", query_string={"variant": variant})
    assert page.status_code == 404
    assert "as the winner?" not in page.text and 'id="confirm-decide"' not in page.text
    assert f"no headline {variant.upper()}" in page.text and "A, B, C" in page.text
    assert status_of(service) == ("running", None)


@pytest.mark.parametrize("variant", ["", " ", "ab", "1", "b;", "é", "<b>", "x" * 500])
def test_decide_for_a_malformed_variant_is_a_400(editor, variant):
    page = editor.get(f"/dashboard/{SLUG}/decide", query_string={"variant": variant})
    assert page.status_code == 400
    assert "as the winner?" not in page.text
    assert "not a headline&#39;s letter" in page.text
    assert "<b>" not in page.text.split("</header>", 1)[1]  # echoed, escaped
    assert len(page.text) < 20_000


# -- how long ago ------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "words"), AGO)
def test_ago_words_at_each_boundary(seconds, words):
    assert present.ago(seconds) == words


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), float("-inf")])
def test_ago_of_an_unreadable_time_is_just_now(seconds):
    assert present.ago(seconds) == "just now"


def test_a_new_experiment_reads_started_just_now(editor, service):
    definition = Definition.from_mapping(
        {"slug": "fresh-story", "title": "A fresh story", "headlines": ["1", "2"], "body": "W."}
    )
    assert service.store.create(definition, now=service.clock())
    words = text_of(editor.get("/dashboard/fresh-story").text)
    assert "(just now)" in words
    assert "just now ago" not in words and "ago ago" not in words
    listing = text_of(editor.get("/dashboard/").text)
    assert "just now" in listing and "just now ago" not in listing


def test_pages_say_how_long_ago_each_experiment_started(editor, service):
    now = service.clock()
    service.clock = lambda: now
    ages = {"started-now": 5, "started-hours": 2 * HOUR + 30, "started-yesterday": DAY + 60}
    for slug, age in ages.items():
        definition = Definition.from_mapping(
            {"slug": slug, "title": slug, "headlines": ["One", "Two"], "body": "Words."}
        )
        assert service.store.create(definition, now=now - age)
    listing = text_of(editor.get("/dashboard/").text)
    for slug, words in zip(ages, ["just now", "2 hours ago", "yesterday"], strict=True):
        assert re.search(rf"{slug} · 2 headlines .*? {words} ", listing), (slug, words)
        page = text_of(editor.get(f"/dashboard/{slug}").text)
        assert f"({words})" in page
    live = editor.get("/dashboard/api/experiments/started-hours").json
    assert "(2 hours ago)" in text_of(live["fragments"]["summary"])
    assert " ago ago" not in listing and "just now ago" not in listing


# -- the API says what to send --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", f"/api/v1/experiments/{SLUG}/stats"), ("post", f"/api/v1/experiments/{SLUG}/pause")],
)
def test_a_refused_api_caller_is_told_what_to_send(client, method, path):
    response = getattr(client, method)(path, headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    message = response.json["error"]
    # Words, not an <placeholder> that vanishes wherever the message is shown as HTML.
    assert "<" not in message and ">" not in message
    assert "Authorization: Bearer followed by a space and the API token" in message
    assert "ABTEST_API_TOKEN" in message
    assert text_of(message) == message  # nothing lost when read as HTML
