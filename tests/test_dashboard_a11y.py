"""The dashboard and the reader pages for screen readers and keyboards, in a
real headless Chromium: axe-core finds nothing on any page (the copy that the
axe-playwright-python package ships, injected by the test: nothing from a
CDN), each "Choose…" link names its headline, a changed verdict is announced
once in a polite live region (and nothing is announced while it stays the
same), the front page has its level-one heading, "Reopen test…" asks first,
and the browser's "how long ago" words match the server's at every boundary.

Screenshot: tests/artifacts/reopen-confirm.png.  Uses Debian's Chromium as
tests/test_dashboard_browser.py does.
"""

from __future__ import annotations

import re

import pytest
import test_dashboard_browser as shared
from helpers import HEADLINES, SLUG, axe
from test_dashboard_browser import ARTIFACTS, _reader_traffic, watched_page
from test_editor_traps import AGO

from abtest.model import DRAFT, Definition

pytestmark = pytest.mark.browser

# The live server over a real Redis (with two hours of history) and Chromium.
live_server, browser = shared.live_server, shared.browser

API = f"/dashboard/api/experiments/{SLUG}"


def sign_in(page, base: str, then: str = "/dashboard/") -> None:
    page.goto(f"{base}/dashboard/login?next={then}")
    page.fill("#username", "editor")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(base + then.split("?")[0])))


def next_updates(page, count: int) -> None:
    """Wait for the live page's next ``count`` updates (each swapped in before the next)."""
    for _ in range(count):
        with page.expect_response(lambda response: API in response.url, timeout=10_000):
            pass


def page_for(browser, violations, errors, width: int = 1360):
    page = watched_page(browser, violations, errors)
    page.set_viewport_size({"width": width, "height": 900})
    return page


# -- axe-core -------------------------------------------------------------------------


def test_axe_finds_nothing_on_the_dashboard_or_the_reader_pages(live_server, browser):
    checker = axe()
    app, base = live_server
    service = app.extensions["abtest"]["service"]
    draft = Definition.from_mapping(
        {"slug": "a-draft", "title": "A draft", "headlines": ["One", "Two"], "body": "Words."}
    )
    assert service.store.create(draft, now=service.clock(), status=DRAFT)
    violations, errors = [], []
    found = {}
    reader = ["/", f"/articles/{SLUG}", "/dashboard/login"]
    running = [
        "/dashboard/",
        f"/dashboard/{SLUG}",
        f"/dashboard/{SLUG}/decide?variant=b",
        "/dashboard/new",
        "/dashboard/a-draft",
        "/dashboard/a-draft/edit",
        "/dashboard/a-draft/preview?variant=b",
        "/dashboard/archived",
        "/dashboard/front-page",
    ]
    decided = [f"/dashboard/{SLUG}", f"/dashboard/{SLUG}/reopen"]
    # Every page on a desktop screen; on a phone, those whose layout changes most.
    for width, phone_only in ((1360, False), (390, True)):
        page = page_for(browser, violations, errors, width)
        for path in reader[:1] if phone_only else reader:
            page.goto(base + path)
            found[(width, path)] = checker.run(page).response["violations"]
        sign_in(page, base)
        for path in running[:2] if phone_only else running:
            page.goto(base + path)
            found[(width, path)] = checker.run(page).response["violations"]
        service.decide(SLUG, "b", "editor")
        for path in decided:
            page.goto(base + path)
            found[(width, path + " (decided)")] = checker.run(page).response["violations"]
        service.reopen(SLUG, "editor")
        page.context.close()
    report = {
        where: [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in found_here]
        for where, found_here in found.items()
        if found_here
    }
    assert report == {}
    assert violations == []


# -- names, headings and announcements ------------------------------------------------------


def test_each_choose_link_names_its_headline(live_server, browser):
    from playwright.sync_api import expect

    _, base = live_server
    violations, errors = [], []
    page = page_for(browser, violations, errors)
    sign_in(page, base, f"/dashboard/{SLUG}")
    names = []
    for index, variant in enumerate("abc"):
        link = page.locator(f"#choose-{variant}")
        name = f"Choose headline {variant.upper()}: {HEADLINES[index]}"
        expect(link).to_have_accessible_name(name)
        names.append(name)
        # Found by that name alone, as a screen reader's list of links offers it.
        expect(page.get_by_role("link", name=name, exact=True)).to_have_count(1)
    assert len(set(names)) == 3
    page.get_by_role("link", name=names[1], exact=True).click()
    expect(page.locator("h1")).to_have_text("Choose B as the winner?")
    assert violations == [] and errors == []
    page.context.close()


def test_the_front_page_has_one_level_one_heading(live_server, browser):
    from playwright.sync_api import expect

    _, base = live_server
    violations, errors = [], []
    page = page_for(browser, violations, errors)
    page.goto(base + "/")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_count(1)
    expect(heading).to_be_visible()
    expect(heading).to_have_text("Top stories")
    # It comes before the stories' own headings.
    order = page.evaluate(
        "Array.from(document.querySelectorAll('h1, h2')).map(h => h.tagName).join(' ')"
    )
    assert order.startswith("H1 H2")
    assert violations == []
    page.context.close()


def test_a_changed_verdict_is_announced_once(live_server, browser):
    """Polls that bring new counts but the same verdict announce nothing; the
    verdict changing (another editor chooses the winner) is announced once."""
    from playwright.sync_api import expect

    app, base = live_server
    service = app.extensions["abtest"]["service"]
    violations, errors = [], []
    page = page_for(browser, violations, errors)
    sign_in(page, base, f"/dashboard/{SLUG}?every=0.5")
    announcer = page.locator("#verdict-announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    expect(announcer).to_have_text("")
    page.evaluate(
        """() => {
          window.announcements = [];
          new MutationObserver(() => {
            window.announcements.push(document.getElementById("verdict-announcer").textContent);
          }).observe(document.getElementById("verdict-announcer"),
                     {childList: true, characterData: true, subtree: true});
        }"""
    )
    claim = page.locator("#verdict-claim").inner_text()

    # New readers: the counts change and the fragments are swapped in, the verdict stays.
    before = page.locator("#served-total").inner_text()
    _reader_traffic(base, visitors=6, click_every=2)
    expect(page.locator("#served-total")).not_to_have_text(before)
    next_updates(page, 3)
    assert page.locator("#verdict-claim").inner_text() == claim
    assert page.evaluate("window.announcements") == []
    expect(announcer).to_have_text("")

    # Another editor chooses the winner: said once, in words.
    service.decide(SLUG, "b", "someone-else")
    expect(page.locator("#status-badge")).to_have_text("Decided")
    expect(announcer).to_have_text(re.compile(r"^The verdict changed: "))
    said = announcer.inner_text()
    assert page.locator("#verdict-claim").inner_text() in said
    next_updates(page, 3)
    assert page.evaluate("window.announcements") == [said]
    assert violations == [] and errors == []
    page.context.close()


# -- reopening asks first -------------------------------------------------------------------


def test_reopen_asks_first_and_cancel_changes_nothing(live_server, browser):
    from playwright.sync_api import expect

    app, base = live_server
    service = app.extensions["abtest"]["service"]
    service.decide(SLUG, "b", "editor")
    violations, errors = [], []
    page = page_for(browser, violations, errors)
    sign_in(page, base, f"/dashboard/{SLUG}")

    page.click("#reopen")
    expect(page).to_have_url(re.compile(rf"/dashboard/{SLUG}/reopen$"))
    expect(page.locator("h1")).to_have_text("Reopen the test?")
    expect(page.locator("#reopen-words")).to_contain_text(
        "Reopening puts the headlines that lost back in front of readers."
    )
    for losing in (HEADLINES[0], HEADLINES[2]):
        expect(page.locator("#reopen-words")).to_contain_text(losing)
    assert service.store.get(SLUG).status == "decided"  # looking is not reopening
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reopen-confirm.png"), full_page=True)

    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/{SLUG}$"))
    expect(page.locator("#status-badge")).to_have_text("Decided")
    assert service.store.get(SLUG).status == "decided"

    # By keyboard: to the confirmation, then the button.
    page.focus("#reopen")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Reopen the test?")
    page.focus("#confirm-reopen")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/dashboard/{SLUG}$"))
    expect(page.locator("#status-badge")).to_have_text("Running")
    expect(page.locator(".flash-success")).to_contain_text("Reopened.")
    assert service.store.get(SLUG).status == "running"
    assert [entry["action"] for entry in service.audit(SLUG)][:2] == ["reopen", "decide"]

    # A headline the test doesn't have is a 404, never the leader's confirmation.
    response = page.goto(f"{base}/dashboard/{SLUG}/decide?variant=z")
    assert response.status == 404
    expect(page.locator("#confirm-decide")).to_have_count(0)
    assert page.goto(f"{base}/dashboard/{SLUG}/decide?variant=b!").status == 400
    assert violations == []
    assert [e for e in errors if "status of 40" not in e] == []
    page.context.close()


# -- how long ago, in the browser ---------------------------------------------------------------


def test_the_browsers_ago_words_match_the_servers(live_server, browser):
    _, base = live_server
    violations, errors = [], []
    page = page_for(browser, violations, errors)
    sign_in(page, base, f"/dashboard/{SLUG}?every=300")  # no update during the test
    said = page.evaluate(
        "cases => cases.map(s => window.abtestDashboard.ago(s))", [s for s, _ in AGO]
    )
    assert said == [words for _, words in AGO]
    assert page.evaluate("[NaN, Infinity].map(s => window.abtestDashboard.ago(s))") == [
        "just now",
        "just now",
    ]

    # Between updates the page's own ages keep counting, in the server's clock.
    page.evaluate(
        """() => {
          const now = parseFloat(document.querySelector("[data-updated-at]").dataset.now);
          document.querySelector("[data-ago]").setAttribute("data-ago", String(now - 7300));
          window.abtestDashboard.refreshAges();
        }"""
    )
    assert page.locator("[data-ago]").first.inner_text() == "2 hours ago"
    assert "ago ago" not in page.locator("main").inner_text()
    assert violations == [] and errors == []
    page.context.close()
