"""An editor's day in a real headless Chromium: a draft previewed, edited and
started; a story scheduled that goes live by itself; a pause that readers see
as the dashboard says; a story archived and unarchived; the front page put in
the editor's order.

Needs Debian's ``chromium`` (as tests/test_dashboard_browser.py).  Saves
screenshots to tests/artifacts/lifecycle-*.png.  Every page is held to the
Content-Security-Policy: no violation, no script error.
"""

from __future__ import annotations

import dataclasses
import re
import time
import urllib.error

import pytest
from helpers import HEADLINES, SLUG, need_chromium, serving, teasers, totals
from test_dashboard_browser import (
    ARTIFACTS,
    Reader,
    browser,  # noqa: F401  (the fixture)
    watched_page,
)

from abtest import create_app, keys
from abtest.model import DECIDED, RUNNING, SCHEDULED, Definition

pytestmark = pytest.mark.browser

STORY = {
    "slug": "budget-vote",
    "title": "Council passes the budget",
    "headlines": "Council passes the budget\nBudget passes after a long nigth",
    "body": "The council voted 7 to 2 after a nine-hour meeting.\n\nTaxes stay as they were.",
}
FIXED = "Budget passes after a long night"


@pytest.fixture
def live(settings, redis_client):
    """The app (seed story loaded) served on a free port in this process."""
    need_chromium()
    app = create_app(dataclasses.replace(settings, refresh_interval=0.2), redis=redis_client)
    service = app.extensions["abtest"]["service"]
    try:
        with serving(app) as base:
            yield service, base
    finally:
        service.stop()


@pytest.fixture
def editor_page(live, browser):  # noqa: F811  (the imported fixture)
    """A signed-in editor's page, and the lists its errors and CSP violations land in."""
    _, base = live
    errors: list[str] = []
    violations: list[str] = []
    page = watched_page(browser, violations, errors)
    page.goto(f"{base}/dashboard/login")
    page.fill("#username", "editor")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")
    yield page
    # Pages readers may not reach answer 404 (and the reader site has no favicon).
    assert [e for e in errors if "status of 404" not in e] == []
    assert violations == []
    page.context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"lifecycle-{name}.png"), full_page=True)


def status(base: str, path: str) -> int:
    try:
        Reader(base).get(path)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


def front_headlines(base: str, reader: Reader | None = None) -> list[str]:
    return [headline for _, headline in teasers((reader or Reader(base)).get("/"))]


def utc_field(timestamp: float) -> str:
    """A moment as the form's start-time field takes it (UTC, to the minute)."""
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(timestamp))


def test_a_draft_is_previewed_edited_and_started(live, editor_page):
    from playwright.sync_api import expect

    service, base = live
    service.EDIT_QUIET = 0.0  # counting's wait after an edit: tests/test_lifecycle.py
    page = editor_page
    page.goto(f"{base}/dashboard/new")
    for field in ("slug", "title", "headlines", "body"):
        page.fill(f"#{field}", STORY[field])
    shot(page, "new")
    page.click("#create-draft")
    expect(page.locator("#status-badge")).to_have_text("Draft")
    expect(page.locator(".flash-success")).to_contain_text("Saved as a draft")
    expect(page.locator("#publishing-state")).to_contain_text("readers can't see it")
    expect(page.locator("#choose-winner")).to_have_count(0)
    shot(page, "draft")
    # Readers can't reach it.
    assert status(base, "/articles/budget-vote") == 404
    assert STORY["title"] not in front_headlines(base)

    # The preview: the reader's front page, with headline B first, then the story page.
    page.click("#preview-front-b")
    expect(page).to_have_title("Preview: headline B on the front page")
    expect(page.locator("#preview-note")).to_contain_text("Only editors can see this page")
    expect(page.locator("article.teaser h2").first).to_have_text("Budget passes after a long nigth")
    expect(page.locator("article.teaser h2").nth(1)).to_have_text(HEADLINES[0])
    shot(page, "preview-front")
    page.locator("article.teaser h2 a").first.click()
    expect(page.locator("article.story h1")).to_have_text("Budget passes after a long nigth")
    expect(page.locator("article.story")).to_contain_text("Taxes stay as they were.")
    shot(page, "preview-story")

    # A typo, caught before anyone read it: edit, and the preview has the new text.
    page.click("text=Back to the experiment")
    page.click("#edit")
    page.fill("#headlines", f"Council passes the budget\n{FIXED}")
    shot(page, "edit")
    page.click("#save-edit")
    expect(page.locator(".flash-success")).to_contain_text("Saved")
    expect(page.locator("#audit")).to_contain_text("Edited the text")
    expect(page.locator("#audit")).to_contain_text("changed headline B")
    page.click("#preview-story-b")
    expect(page.locator("article.story h1")).to_have_text(FIXED)
    page.go_back()

    # Start it: first on the front page, and readers are tested and counted.
    page.click("#start-now")
    expect(page.locator("#status-badge")).to_have_text("Running")
    expect(page.locator("#front-position")).to_have_text("1")
    reader = Reader(base)
    first = front_headlines(base, reader)[0]
    assert first in ("Council passes the budget", FIXED)
    assert sum(totals(service, "budget-vote")[0]) == 1
    # Once a reader is counted the text is fixed, and the page says why.
    page.reload()
    expect(page.locator("#edit")).to_have_count(0)
    expect(page.locator("#edit-note")).to_contain_text("readers have seen this test")
    shot(page, "started")


def test_a_scheduled_story_goes_live_by_itself(live, editor_page):
    from playwright.sync_api import expect

    service, base = live
    page = editor_page
    page.goto(f"{base}/dashboard/new")
    for field in ("slug", "title", "headlines", "body"):
        page.fill(f"#{field}", STORY[field])
    page.fill("#starts_at", utc_field(service.clock() + 3600))
    page.click("#create-schedule")
    expect(page.locator("#status-badge")).to_have_text("Scheduled")
    expect(page.locator("#publishing-state")).to_contain_text("Scheduled for")
    expect(page.locator("#publishing-state")).to_contain_text("UTC")
    expect(page.locator("#publishing-state")).to_contain_text(re.compile(r"in \d+ minutes"))
    shot(page, "scheduled")
    assert service.fresh("budget-vote").status == SCHEDULED
    assert status(base, "/articles/budget-vote") == 404

    # The hour passes (its start time written into the past, as an hour would make
    # it): the open page finds it live, and readers get it, without anyone acting.
    page.goto(f"{base}/dashboard/budget-vote?every=0.5")
    service.store.redis.hset(keys.meta("budget-vote"), "starts_at", repr(service.clock() - 1))
    expect(page.locator("#publishing-state")).to_contain_text("On the front page at number 1")
    assert service.fresh("budget-vote").status == RUNNING
    assert status(base, "/articles/budget-vote") == 200
    starts = [e for e in service.audit("budget-vote") if e["action"] == "start"]
    assert [e["editor"] for e in starts] == ["schedule"]
    page.reload()
    expect(page.locator("#audit")).to_contain_text("went live at its start time")
    shot(page, "went-live")


def test_pause_gives_every_reader_headline_a_and_counts_nothing(live, editor_page, browser):  # noqa: F811
    from playwright.sync_api import expect

    service, base = live
    page = editor_page
    # A reader (their own browser) whose headline is not A.
    for _ in range(40):
        context = browser.new_context(viewport={"width": 900, "height": 700})
        reader = context.new_page()
        reader.goto(f"{base}/")
        if reader.locator("article.teaser h2").first.inner_text() != HEADLINES[0]:
            break
        context.close()
    else:
        pytest.fail("no reader was given headline B or C in 40 tries")
    theirs = reader.locator("article.teaser h2").first.inner_text()

    page.goto(f"{base}/dashboard/{SLUG}")
    page.click("#pause")
    expect(page.locator(".flash-success")).to_contain_text("Paused. Every reader gets headline A")
    expect(page.locator("#status-badge")).to_have_text("Paused")
    shot(page, "paused")
    counted = totals(service)

    # What the dashboard says is what readers get: the story stays, with A.
    reader.reload()
    expect(reader.locator("article.teaser h2")).to_have_text([HEADLINES[0]])
    shot(reader, "paused-front")
    reader.locator("article.teaser h2 a").click()
    expect(reader.locator("article.story h1")).to_have_text(HEADLINES[0])
    newcomer = browser.new_context().new_page()
    newcomer.goto(f"{base}/")
    expect(newcomer.locator("article.teaser h2")).to_have_text([HEADLINES[0]])
    newcomer.context.close()
    assert totals(service) == counted  # nothing counted while paused

    page.click("#resume")
    expect(page.locator("#status-badge")).to_have_text("Running")
    reader.goto(f"{base}/")
    expect(reader.locator("article.teaser h2")).to_have_text([theirs])  # their own, back
    reader.context.close()


def test_archive_and_the_front_page_order(live, editor_page):
    from playwright.sync_api import expect

    service, base = live
    page = editor_page
    now = service.clock()
    for offset, (slug, title) in enumerate(
        (("harbour-fire", "Harbour fire"), ("school-prize", "School prize")), start=1
    ):
        definition = Definition(slug, title, (f"{title}: A", f"{title}: B"), (f"{title} story.",))
        service.store.create(definition, now=now + offset)
    service.fresh_all()
    assert [slug for slug, _ in _front_slugs(base)] == ["school-prize", "harbour-fire", SLUG]

    # The editor's order: the seed story up to the top, by the order page.
    page.click("#front-page-order")
    expect(page.locator("#front-order tbody tr")).to_have_count(3)
    page.click(f"#position-{SLUG}")
    page.fill(f"#position-{SLUG}", "1")
    page.click(f"#to-{SLUG}")
    expect(page.locator(".flash-success")).to_contain_text("is number 1 on the front page")
    page.click("#down-school-prize")
    rows = page.locator("#front-order tbody tr td.story a")
    expect(rows).to_have_text(
        [service.fresh(SLUG).definition.title, "Harbour fire", "School prize"]
    )
    shot(page, "front-order")
    order = [slug for slug, _ in _front_slugs(base)]
    assert order == [SLUG, "harbour-fire", "school-prize"]

    # Archive a decided story: off the front page, its link still serves the winner.
    service.decide("harbour-fire", "b", editor="ed")
    page.goto(f"{base}/dashboard/harbour-fire")
    page.click("#archive")
    expect(page.locator(".flash-success")).to_contain_text("Archived")
    expect(page.locator("#archived-note")).to_be_visible()
    expect(page.locator("#reopen")).to_have_count(0)
    shot(page, "archived")
    assert [slug for slug, _ in _front_slugs(base)] == [SLUG, "school-prize"]
    assert "Harbour fire: B" in Reader(base).get("/articles/harbour-fire")
    page.goto(f"{base}/dashboard/")
    expect(page.locator("table.list")).not_to_contain_text("Harbour fire")
    page.click("#archived-list")
    expect(page.locator("#archived-harbour-fire")).to_contain_text("Harbour fire: B")
    shot(page, "archived-list")
    page.click("#unarchive-harbour-fire")
    expect(page.locator(".flash-success")).to_contain_text("Unarchived")
    assert service.fresh("harbour-fire").status == DECIDED
    assert [slug for slug, _ in _front_slugs(base)] == [SLUG, "harbour-fire", "school-prize"]


def _front_slugs(base: str) -> list[tuple[str, str]]:
    """(slug, headline) per teaser on a new reader's front page, top first."""
    page = Reader(base).get("/")
    found = []
    for teaser in page.split('<article class="teaser"')[1:]:
        headline = re.search(r"<h2><a [^>]*>([^<]+)</a></h2>", teaser).group(1)
        slug = {"Harbour": "harbour-fire", "School": "school-prize"}.get(headline.split()[0], SLUG)
        found.append((slug, headline))
    return found


def test_the_publishing_pages_fit_a_phone(live, browser):  # noqa: F811
    """At 390 px the pages added for publishing are as wide as the screen; only
    tables scroll, inside their wrappers."""
    from test_phone_browser import ESCAPES, PAGE_WIDTH, phone

    service, base = live
    service.create(
        Definition("budget-vote", STORY["title"], tuple(STORY["headlines"].splitlines()), ("x",)),
        status=SCHEDULED,
        starts_at=service.clock() + 3600,
    )
    service.decide(SLUG, "b", editor="ed")
    service.archive(SLUG, editor="ed")
    page = phone(browser)
    page.goto(f"{base}/dashboard/login")
    page.fill("#username", "editor")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")
    for path in (
        "/dashboard/new",
        "/dashboard/budget-vote",
        "/dashboard/budget-vote/edit",
        "/dashboard/budget-vote/preview?variant=b",
        "/dashboard/budget-vote/preview?variant=b&page=story",
        "/dashboard/front-page",
        "/dashboard/archived",
    ):
        page.goto(base + path)
        width, screen = page.evaluate(PAGE_WIDTH)
        assert (width, screen) == (390, 390), path
        assert page.evaluate(ESCAPES) == [], path
    # A live story's page: its publishing block (the rest is tests/test_phone_browser.py's).
    page.goto(f"{base}/dashboard/{SLUG}")
    assert page.evaluate(PAGE_WIDTH) == [390, 390]
    block = "Array.from(document.querySelectorAll('#publishing, #publishing *'))"
    rights = page.evaluate(f"{block}.map(el => el.getBoundingClientRect().right)")
    assert rights and max(rights) <= 390
    page.goto(f"{base}/dashboard/budget-vote")
    shot(page, "phone-scheduled")
    page.context.close()
