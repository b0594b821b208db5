"""The dashboard's publishing views, through the test client against a real
Redis: drafts and schedules from the new-experiment form, previews with the
reader templates, the edit form, archive and the front page's order.

CSRF protection stays on: tokens come from the rendered forms.
"""

from __future__ import annotations

import html
import re
import time

import pytest
from helpers import BROWSER, HEADLINES, SLUG, front, teasers, totals
from test_dashboard import csrf_token, sign_in

from abtest.model import DECIDED, DRAFT, PAUSED, RUNNING, SCHEDULED

HEADERS = {"User-Agent": BROWSER}
NEW = {
    "slug": "budget-vote",
    "title": "Budget vote",
    "headlines": "Council passes the budget\nBudget passes after a long night",
    "body": "The council voted 7 to 2.\n\nTaxes stay as they were.",
}


@pytest.fixture
def editor(client):
    assert sign_in(client).status_code == 303
    return client


def utc_field(timestamp: float) -> str:
    """A moment as the form's start-time field sends it (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(timestamp))


def create(editor, then: str, **fields):
    token = csrf_token(editor, "/dashboard/new")
    return editor.post("/dashboard/new", data={"csrf_token": token, **NEW, "then": then, **fields})


def post(editor, slug: str, action: str, page: str | None = None, **data):
    token = csrf_token(editor, page or f"/dashboard/{slug}")
    return editor.post(f"/dashboard/{slug}/{action}", data={"csrf_token": token, **data})


def flashed(editor, response) -> str:
    """The page a 303 leads to, as text (entities decoded)."""
    assert response.status_code == 303, response.text[:500]
    return html.unescape(editor.get(response.headers["Location"]).text)


def words(page: str) -> str:
    """A page's text, without tags and entities, one space between words."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


# -- drafts and previews -------------------------------------------------------------------


def test_a_draft_from_the_form_is_hidden_from_readers_and_previewed_for_editors(
    editor, new_client, service
):
    page = flashed(editor, create(editor, "draft"))
    assert "Saved as a draft: readers can't see it" in page
    assert 'id="status-badge">Draft<' in page and 'id="start-now"' in page
    assert 'id="choose-winner"' not in page  # no winner to choose before anyone has read it
    assert service.fresh("budget-vote").status == DRAFT
    reader = new_client()
    assert reader.get("/articles/budget-vote", headers=HEADERS).status_code == 404
    assert all("Council" not in h for _, h in teasers(front(reader).data))

    # The front-page preview: the reader's own template, headline B first (it will go
    # live at the top), the live stories below; every link stays in the dashboard.
    preview = editor.get("/dashboard/budget-vote/preview?variant=b")
    assert preview.status_code == 200
    assert '<header class="masthead">' in preview.text and "site.css" in preview.text
    shown = teasers(preview.data)
    assert shown[0] == (
        "/dashboard/budget-vote/preview?variant=b&page=story",
        "Budget passes after a long night",
    )
    assert shown[1][1] == HEADLINES[0] and shown[1][0].startswith("/dashboard/")
    assert "Only editors can see this page" in preview.text
    assert preview.headers["Cache-Control"] == "no-store"
    story = editor.get("/dashboard/budget-vote/preview?variant=b&page=story")
    assert "<h1>Budget passes after a long night</h1>" in story.text
    assert "Taxes stay as they were." in story.text
    # Previews count nothing and tell readers nothing.
    assert totals(service, "budget-vote") == ((0, 0), (0, 0))
    assert reader.get("/dashboard/budget-vote/preview?variant=b").status_code == 302


@pytest.mark.parametrize(
    ("query", "status"),
    [("variant=z", 404), ("variant=B", 200), ("variant=1", 400), ("page=rss", 400)],
)
def test_a_preview_of_a_headline_the_story_lacks_is_refused(editor, query, status):
    assert editor.get(f"/dashboard/{SLUG}/preview?{query}").status_code == status


# -- schedules -------------------------------------------------------------------------------


def test_schedule_from_the_form_then_reschedule_unschedule_and_start(editor, new_client, service):
    soon = service.clock() + 7200
    page = flashed(editor, create(editor, "schedule", starts_at=utc_field(soon)))
    assert "Scheduled: it goes live by itself at" in page
    assert 'id="status-badge">Scheduled<' in page and "UTC" in words(page)
    experiment = service.fresh("budget-vote")
    assert experiment.status == SCHEDULED
    assert experiment.starts_at == pytest.approx(soon // 60 * 60)  # the form has minutes
    reader = new_client()
    assert reader.get("/articles/budget-vote", headers=HEADERS).status_code == 404

    later = utc_field(soon + 3600)
    page = flashed(editor, post(editor, "budget-vote", "schedule", starts_at=later))
    assert "Scheduled for" in page and 'id="schedule">Reschedule<' in page
    page = flashed(editor, post(editor, "budget-vote", "unschedule"))
    assert "The story is a draft again" in page
    assert service.fresh("budget-vote").status == DRAFT
    page = flashed(editor, post(editor, "budget-vote", "start"))
    assert "first on the front page" in page
    assert service.fresh("budget-vote").status == RUNNING
    assert reader.get("/articles/budget-vote", headers=HEADERS).status_code == 200
    audit = words(editor.get("/dashboard/budget-vote").text)
    for said in ("Created", "created as scheduled", "Unscheduled", "Started", "draft → running"):
        assert said in audit


def test_a_start_time_that_has_passed_or_is_missing_is_refused_in_words(editor, service):
    response = create(editor, "schedule", starts_at=utc_field(service.clock() - 3600))
    assert response.status_code == 422
    assert "That start time has passed" in response.text
    assert service.store.get("budget-vote") is None
    response = create(editor, "schedule", starts_at="")
    assert response.status_code == 422
    assert "Give the start time as a date and a time (UTC)" in response.text
    assert create(editor, "publish").status_code == 400
    assert service.store.get("budget-vote") is None
    # On the story's page: a running test can't be scheduled, a bad time is a 400.
    page = flashed(editor, post(editor, SLUG, "schedule", starts_at=utc_field(time.time() + 60)))
    assert "Nothing changed: only a draft can be scheduled; this test is running already." in page
    assert post(editor, SLUG, "schedule", starts_at="tomorrow").status_code == 400


# -- edits -------------------------------------------------------------------------------


def test_the_edit_form_changes_the_text_until_a_reader_is_counted(editor, new_client, service):
    flashed(editor, create(editor, "start"))
    form = editor.get("/dashboard/budget-vote/edit")
    assert form.status_code == 200 and "Budget passes after a long night" in form.text
    edited = {
        "title": "Budget vote",
        "headlines": "Council passes the budget\nBudget passes at 2 am",
        "body": NEW["body"],
    }
    page = flashed(
        editor, post(editor, "budget-vote", "edit", "/dashboard/budget-vote/edit", **edited)
    )
    assert "Saved. Readers get the new text" in page
    assert "Edited the text" in page and "changed headline B" in words(page)
    assert service.fresh("budget-vote").definition.headlines[1] == "Budget passes at 2 am"

    service.store.redis.hdel("abtest:{budget-vote}:meta", "quiet_until")  # done waiting
    reader = new_client()
    assert reader.get("/articles/budget-vote", headers=HEADERS).status_code == 200
    assert sum(totals(service, "budget-vote")[0]) == 1
    refused = editor.get("/dashboard/budget-vote/edit")
    assert refused.status_code == 409
    assert "readers have seen this test (1 impression counted)" in refused.text
    assert 'id="title"' not in refused.text  # no form to fill in for nothing
    # Sent anyway (a form opened before the reader came): refused, the text kept on screen.
    token = csrf_token(editor, "/dashboard/new")
    again = editor.post(
        "/dashboard/budget-vote/edit", data={"csrf_token": token, **edited, "title": "Other"}
    )
    assert again.status_code == 409 and 'value="Other"' in again.text
    assert service.fresh("budget-vote").definition.title == "Budget vote"
    page = editor.get("/dashboard/budget-vote").text
    assert 'id="edit"' not in page and "The text can't be edited: readers have seen" in page


def test_an_edit_with_bad_fields_says_which(editor, service):
    service.create(service.store.get(SLUG).definition.__class__("d", "T", ("A", "B"), ("x",)))
    token = csrf_token(editor, "/dashboard/new")
    response = editor.post(
        "/dashboard/d/edit",
        data={"csrf_token": token, "title": "", "headlines": "Only one", "body": "x"},
    )
    assert response.status_code == 422
    assert "Give the story a title." in response.text and "Give 2 to 26 headlines" in response.text


# -- pause, archive ------------------------------------------------------------------------


def test_the_pause_message_and_the_reader_pages_agree(editor, new_client, service):
    page = flashed(editor, post(editor, SLUG, "pause"))
    assert "Paused. Every reader gets headline A" in page
    before = totals(service)
    for _ in range(3):
        reader = new_client()
        assert teasers(front(reader).data) == [(f"/articles/{SLUG}", HEADLINES[0])]
    assert totals(service) == before


def test_archive_from_the_page_and_unarchive_from_the_archived_list(editor, new_client, service):
    page = flashed(editor, post(editor, SLUG, "archive"))
    assert "Nothing changed: only a decided or paused test can be archived" in page
    post(editor, SLUG, "decide", variant="c")
    page = flashed(editor, post(editor, SLUG, "archive"))
    assert (
        f"Archived. The story is off the front page; its address still serves “{HEADLINES[2]}”"
        in page
    )
    assert 'id="archived-note"' in page and 'id="unarchive"' in page
    assert 'id="reopen"' not in page and 'id="choose-winner"' not in page
    reader = new_client()
    assert teasers(front(reader).data) == []
    assert HEADLINES[2] in reader.get(f"/articles/{SLUG}", headers=HEADERS).text
    listing = editor.get("/dashboard/")
    assert f"/dashboard/{SLUG}" not in listing.text.split('id="archived-list"')[0]
    assert "Archived (1)" in listing.text
    archived = editor.get("/dashboard/archived").text
    assert f'id="archived-{SLUG}"' in archived and HEADLINES[2] in archived
    assert editor.get("/dashboard/api/experiments").json["experiments"] == []
    page = flashed(editor, post(editor, SLUG, "unarchive", "/dashboard/archived"))
    assert "Unarchived" in page
    assert service.fresh(SLUG).status == DECIDED and not service.fresh(SLUG).archived
    assert teasers(front(reader).data)[0][1] == HEADLINES[2]
    audit = words(editor.get(f"/dashboard/{SLUG}").text)
    assert "Archived decided, off the front page" in audit
    assert "Unarchived decided, back on the front page" in audit


def test_a_paused_story_is_archived_and_serves_headline_a(editor, new_client, service):
    post(editor, SLUG, "pause")
    flashed(editor, post(editor, SLUG, "archive"))
    assert service.fresh(SLUG).status == PAUSED and service.fresh(SLUG).archived
    page = editor.get(f"/dashboard/{SLUG}").text
    assert 'id="resume"' not in page
    reader = new_client()
    assert HEADLINES[0] in reader.get(f"/articles/{SLUG}", headers=HEADERS).text


# -- the front page's order ------------------------------------------------------------------


def _two_more(service) -> None:
    from abtest.model import Definition

    now = service.clock()
    service.store.create(Definition("second", "Second", ("S1", "S2"), ("Two.",)), now=now + 1)
    service.store.create(Definition("third", "Third", ("T1", "T2"), ("Three.",)), now=now + 2)
    service.fresh_all()


def order_on(page: str) -> list[str]:
    return re.findall(r'<tr id="order-([a-z0-9-]+)"', page)


def test_the_front_page_order_page_moves_stories(editor, new_client, service):
    _two_more(service)
    page = editor.get("/dashboard/front-page").text
    assert order_on(page) == ["third", "second", SLUG]
    token = csrf_token(editor, "/dashboard/front-page")
    moved = editor.post(
        f"/dashboard/{SLUG}/move",
        data={"csrf_token": token, "direction": "up", "back": "front-page"},
    )
    assert moved.headers["Location"] == "/dashboard/front-page"
    page = editor.get("/dashboard/front-page").text
    assert order_on(page) == ["third", SLUG, "second"]
    assert "Moved: “Colombia" in page and "is number 2 on the front page" in page
    editor.post("/dashboard/third/move", data={"csrf_token": token, "position": "3"})
    assert order_on(editor.get("/dashboard/front-page").text) == [SLUG, "second", "third"]
    reader = new_client()
    shown = [headline for _, headline in teasers(front(reader).data)]
    assert shown[0] in HEADLINES and shown[1] in ("S1", "S2") and shown[2] in ("T1", "T2")
    assert 'id="front-position">1<' in editor.get(f"/dashboard/{SLUG}").text
    assert "Moved on the front page number 1 → 3" in words(editor.get("/dashboard/third").text)


@pytest.mark.parametrize(
    ("data", "status"),
    [({"direction": "sideways"}, 400), ({"position": "0"}, 400), ({"position": "first"}, 400)],
)
def test_a_move_that_makes_no_sense_is_a_400(editor, service, data, status):
    token = csrf_token(editor, "/dashboard/front-page")
    response = editor.post(f"/dashboard/{SLUG}/move", data={"csrf_token": token, **data})
    assert response.status_code == status
    assert "Nothing changed" in response.text


def test_moving_the_top_story_up_or_a_draft_is_refused_in_words(editor, service):
    page = flashed(editor, post(editor, SLUG, "move", direction="up"))
    assert "Nothing changed: the story is at the top already." in page
    flashed(editor, create(editor, "draft"))
    page = flashed(editor, post(editor, "budget-vote", "move", direction="top"))
    assert (
        "Nothing changed: only a story on the front page can be moved; this one is draft." in page
    )


# -- CSRF on every new action ----------------------------------------------------------------

NEW_ACTIONS = ["start", "schedule", "unschedule", "archive", "unarchive", "move", "edit"]


@pytest.mark.parametrize("action", NEW_ACTIONS)
def test_the_publishing_actions_need_a_csrf_token(editor, service, action):
    service.pause(SLUG, editor="ed")
    before = (service.fresh(SLUG), service.audit(SLUG))
    data = {"direction": "up", "position": "1", "starts_at": "2099-01-01T00:00", "title": "X"}
    response = editor.post(f"/dashboard/{SLUG}/{action}", data=data)
    assert response.status_code == 400 and "Nothing was changed" in response.text
    assert (service.fresh(SLUG), service.audit(SLUG)) == before
