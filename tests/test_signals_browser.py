"""Seen impressions and quality clicks end to end, in a real headless Chromium.

The site of tests/test_snippet_browser.py: a plain static page with three
slots from two experiments, the second story's slot below the fold, and the
site's own story pages, marked for engaged time; abtest mounted under
/abtest.  The page's clock is Playwright's (``page.clock``): time moves only
when a test says so, so "one second in view" and "fifteen seconds of
reading" are exact, however busy the machine.  Scrolling and intersection
are the browser's own.

Headless Chromium never hides a page (it has no tab strip to put one
behind), so the background-tab test gives the story page what a browser
gives a tab sent to the background: ``document.visibilityState`` "hidden" and
a ``visibilitychange`` event.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time

import pytest
from helpers import SLUG
from test_dashboard_browser import browser  # noqa: F401 (a fixture)
from test_snippet_browser import SECOND, serve_site

pytestmark = pytest.mark.browser

#: The quality-click threshold here: short, since the clock is the test's anyway.
QUALITY = 3

# A fresh observer's first report of an element's visible share: the browser's
# intersection step has run, so the snippet's own observer has heard of the
# same state too (observers are notified together, in creation order).
VISIBLE_SHARE = """(selector) => new Promise((resolve) => {
  const observer = new IntersectionObserver((entries) => {
    observer.disconnect();
    resolve(entries[entries.length - 1].intersectionRatio);
  }, { threshold: [0, 0.5, 1] });
  observer.observe(document.querySelector(selector));
})"""

# What a browser does to a tab it sends to the background, and back.
HIDE = """() => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = """() => {
  delete document.visibilityState;
  delete document.hidden;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.fixture
def site(settings, redis_client):
    short = dataclasses.replace(settings, quality_seconds=QUALITY)
    with serve_site(short, redis_client) as found:
        yield found


def _opened(browser, url: str):  # noqa: F811
    """A page on Playwright's clock at ``url``, and the list of beacons it sends."""
    beacons: list = []
    page = _page(browser, beacons)
    page.goto(url)
    return page, beacons


def _page(browser, beacons: list):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.clock.install()
    page.on(
        "request",
        lambda request: (
            beacons.append(request)
            if "/api/v1/seen" in request.url or ("/api/v1/engaged" in request.url)
            else None
        ),
    )
    return page


def _eventually(read, want, seconds: float = 20.0):
    """Poll ``read()`` until it returns ``want`` (a beacon is on its way)."""
    deadline = time.monotonic() + seconds
    while True:
        found = read()
        if found == want or time.monotonic() > deadline:
            assert found == want
            return
        time.sleep(0.05)


def _seen(service, slug: str = SLUG) -> int:
    return sum(service.store.get(slug).seen)


def _tokens(request) -> list[str]:
    return json.loads(request.post_data)["tokens"]


def _wait_for_slots(page) -> tuple[str, str]:
    from playwright.sync_api import expect

    for slot in ("#top", "#other"):
        expect(page.locator(slot)).to_have_attribute("data-abtest-token", re.compile("."))
    return (
        page.locator("#top").get_attribute("data-abtest-token"),
        page.locator("#other").get_attribute("data-abtest-token"),
    )


def _scroll_to(page, selector: str, share) -> None:
    page.evaluate(f"document.querySelector({selector!r}).scrollIntoView({{block: 'center'}})")
    assert share(page.evaluate(VISIBLE_SHARE, selector))


def test_a_slot_is_seen_after_a_second_in_view_and_a_quick_scroll_counts_nothing(
    site,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    service, base = site
    page, beacons = _opened(browser, f"{base}/")
    top_token, other_token = _wait_for_slots(page)
    assert page.evaluate(VISIBLE_SHARE, "#top") == 1.0
    assert page.evaluate(VISIBLE_SHARE, "#other") == 0.0  # below the fold

    # Scrolled past: the second story's slot in view, then gone, within the second.
    _scroll_to(page, "#other", lambda share: share >= 0.5)
    page.clock.run_for(600)
    page.evaluate("window.scrollTo(0, 0)")
    assert page.evaluate(VISIBLE_SHARE, "#other") == 0.0
    assert page.evaluate(VISIBLE_SHARE, "#top") == 1.0

    # The top slot, back in view, needs its whole second again.
    page.clock.run_for(999)
    assert beacons == [] and _seen(service) == 0
    with page.expect_request("**/api/v1/seen") as sent:
        page.clock.run_for(1 + 1000)  # its second; then the batch goes
    # The beacon carries the top slot's token alone: the one scrolled past was never seen.
    assert _tokens(sent.value) == [top_token]
    _eventually(lambda: _seen(service), 1)
    assert _seen(service, SECOND) == 0

    # Left in view for a second, the slot below the fold is seen too.
    _scroll_to(page, "#other", lambda share: share == 1.0)
    with page.expect_request("**/api/v1/seen") as sent:
        page.clock.run_for(2000)
    assert _tokens(sent.value) == [other_token]
    _eventually(lambda: _seen(service, SECOND), 1)

    # Reloaded: the same visitor, whose cookie now says both were seen: no more beacons.
    page.reload()
    for slot in ("#top", "#other"):
        expect(page.locator(slot)).to_have_attribute("data-abtest-variant", re.compile("."))
        assert page.locator(slot).get_attribute("data-abtest-token") is None
    sent_before = len(beacons)
    page.clock.run_for(3000)
    page.evaluate(HIDE)  # a page going away sends what it holds
    page.evaluate("window.scrollTo(0, 0)")
    page.clock.run_for(3000)
    assert len(beacons) == sent_before
    assert (_seen(service), _seen(service, SECOND)) == (1, 1)
    page.context.close()


def test_forged_or_replayed_beacons_count_nothing(site, browser):  # noqa: F811
    service, base = site
    page, beacons = _opened(browser, f"{base}/")
    top_token, _ = _wait_for_slots(page)
    with page.expect_request("**/api/v1/seen"):
        page.clock.run_for(2000)
    _eventually(lambda: _seen(service), 1)
    post = """([url, tokens]) => fetch(url, {method: "POST", body: JSON.stringify({tokens}),
        credentials: "include"}).then((response) => response.status)"""
    seen_url = f"{base}/abtest/api/v1/seen"
    slug, variant, rest = top_token.split(":", 2)
    other_variant = "b" if variant == "a" else "a"
    assert page.evaluate(post, [seen_url, [f"{slug}:{other_variant}:{rest}"]]) == 400
    assert page.evaluate(post, [seen_url, [top_token[:-3] + "xyz"]]) == 400
    assert page.evaluate(post, [seen_url, [top_token, top_token]]) == 204  # replayed
    # The same token from another browser (another visitor's cookie): refused.
    other = browser.new_context().new_page()
    other.goto(f"{base}/site.css")
    assert other.evaluate(post, [seen_url, [top_token]]) == 403
    other.context.close()
    assert _seen(service) == 1
    page.context.close()


def test_a_click_counts_once_and_becomes_a_quality_click_after_engaged_reading(
    site,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    service, base = site
    page, beacons = _opened(browser, f"{base}/")
    _wait_for_slots(page)
    variant = page.locator("#top").get_attribute("data-abtest-variant")
    page.locator("#top").click()
    expect(page).to_have_url(f"{base}/story/colombia")
    clicked = tuple(int(v == variant) for v in "abc")
    assert service.store.get(SLUG).all_clicks == clicked

    # A background tab: its time is not reading, however long and whatever happens.
    page.evaluate(HIDE)
    page.clock.run_for(10_000)
    assert [b for b in beacons if "/engaged" in b.url] == []
    page.evaluate(SHOW)
    # Visible but idle since the click: not reading either.
    page.clock.run_for(10_000)
    assert [b for b in beacons if "/engaged" in b.url] == []
    assert service.store.get(SLUG).quality_clicks == (0, 0, 0)

    # Reading: the reader moves; a second counts while they were active in the last five.
    with page.expect_request("**/api/v1/engaged") as sent:
        for _ in range(QUALITY):
            page.mouse.move(100, 100 + _)
            page.clock.run_for(1000)
    assert json.loads(sent.value.post_data) == {"experiment": SLUG, "seconds": QUALITY}
    _eventually(lambda: service.store.get(SLUG).quality_clicks, clicked)

    # Back on the front page and through the other slot of the same story: still one.
    page.go_back()
    expect(page.locator("#side")).to_have_attribute("data-abtest-variant", variant)
    page.locator("#side").click()
    expect(page).to_have_url(f"{base}/story/colombia")
    with page.expect_request("**/api/v1/engaged"):
        for _ in range(QUALITY):
            page.mouse.move(200, 100 + _)
            page.clock.run_for(1000)
    experiment = service.store.get(SLUG)
    assert (experiment.all_clicks, experiment.quality_clicks) == (clicked, clicked)
    page.context.close()


def test_abtests_own_pages_report_seen_teasers_and_quality_clicks(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    service, base = site
    beacons: list = []
    page = _page(browser, beacons)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text))
    page.goto(f"{base}/abtest/")
    # Two stories on the front page, both in view: one beacon for both after their second.
    teasers = page.locator("article.teaser[data-abtest-token]")
    expect(teasers).to_have_count(2)
    tokens = [teasers.nth(i).get_attribute("data-abtest-token") for i in range(2)]
    (token,) = [t for t in tokens if t.startswith(f"{SLUG}:")]
    teaser = page.locator(f'article.teaser[data-abtest-token="{token}"]')
    assert page.evaluate(VISIBLE_SHARE, f'article[data-abtest-token="{token}"]') == 1.0
    page.clock.run_for(999)
    assert beacons == []
    with page.expect_request("**/abtest/api/v1/seen") as sent:
        page.clock.run_for(1 + 1000)
    assert sorted(_tokens(sent.value)) == sorted(tokens)
    _eventually(lambda: (_seen(service), _seen(service, SECOND)), (1, 1))

    # Its story page measures the reading that follows the click.
    teaser.locator("h2 a").click()
    expect(page).to_have_url(f"{base}/abtest/articles/{SLUG}")
    expect(page.locator(f'article[data-abtest-story="{SLUG}"]')).to_be_visible()
    with page.expect_request("**/abtest/api/v1/engaged") as sent:
        for step in range(QUALITY):
            page.mouse.move(50, 50 + step)
            page.clock.run_for(1000)
    assert json.loads(sent.value.post_data) == {"experiment": SLUG, "seconds": QUALITY}
    variant = token.split(":")[1]
    _eventually(
        lambda: service.store.get(SLUG).quality_clicks, tuple(int(v == variant) for v in "abc")
    )
    # Under abtest's own Content-Security-Policy, with nothing logged.
    assert errors == []
    page.context.close()
