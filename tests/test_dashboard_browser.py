"""End to end in a real headless Chromium: an editor signs in, watches reader
traffic arrive without reloading, chooses the winner through the confirmation,
and the next fresh reader gets the winning headline.

Needs Debian's ``chromium`` at /usr/bin/chromium.  CI installs it, and under
CI (``CI`` set) a missing browser fails the test; on a developer's machine
without it the test is skipped with the reason shown.  Saves screenshots of the experiment page
with its verdict (tests/artifacts/experiment-page.png) and of the confirmation
(tests/artifacts/choose-winner.png).  Every page is also held to the
Content-Security-Policy the service sends: no violation is reported.
"""

from __future__ import annotations

import dataclasses
import http.cookiejar
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import CHROMIUM, HEADLINES, SLUG, need_chromium, serving, teasers, totals

from abtest import create_app
from abtest.bandit import Posterior
from abtest.model import seed_definition

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0 Safari/537.36"
)
# Clears the "just changed" flash on updated counts, so the screenshot shows the page at rest.
UNFLASH = "document.querySelectorAll('.changed').forEach(cell => cell.classList.remove('changed'))"
TRUE_CTR = (0.030, 0.052, 0.036)  # B is really better: what the history below simulates


def _backfill_history(service, hours: float = 2.0, seed: int = 7) -> None:
    """Two hours of bandit traffic written through the store, timestamped in the past.

    Only so the charts in the screenshot have a history to show; the live part
    of the test goes through the real reader endpoints.
    """
    rng = np.random.default_rng(seed)
    now = service.clock()
    start = now - hours * 3600
    assert service.store.create(seed_definition(), now=start)
    definition = seed_definition()
    ids = definition.variant_ids
    impressions, clicks = [0] * len(ids), [0] * len(ids)
    visitor = 0
    for minute in range(int(hours * 60)):
        at = start + 60 * minute + 30
        shown = []
        for _ in range(rng.poisson(22)):
            index = Posterior(impressions, clicks).choose(rng)
            impressions[index] += 1
            shown.append(index)
        if not shown:
            continue
        service.store.record_impressions([(SLUG, ids[i]) for i in shown], now=at)
        for index in shown:
            visitor += 1
            if rng.random() < TRUE_CTR[index]:
                result = service.store.record_click(
                    SLUG, ids[index], f"past-{visitor}", 3600, now=at
                )
                assert result.counted
                clicks[index] += 1
    service.fresh_all()


@pytest.fixture
def live_server(settings, redis_client):
    need_chromium()
    app = create_app(dataclasses.replace(settings, load_seed=False), redis=redis_client)
    service = app.extensions["abtest"]["service"]
    _backfill_history(service)
    try:
        with serving(app) as base:
            yield app, base
    finally:
        service.stop()


class Reader:
    """A new browser on the front page, talking HTTP to the live server."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> str:
        request = urllib.request.Request(self.base + path, headers={"User-Agent": BROWSER_UA})
        with self.opener.open(request, timeout=10) as response:
            return response.read().decode()

    def front_page(self) -> tuple[str, str]:
        ((link, headline),) = teasers(self.get("/"))
        return link, headline


def _reader_traffic(base: str, visitors: int, click_every: int) -> None:
    for number in range(visitors):
        reader = Reader(base)
        link, _ = reader.front_page()
        if number % click_every == 0:
            reader.get(link)  # /c/<token>, then the story


# Reports every Content-Security-Policy violation to the test, from every page.
REPORT_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const line = `${event.violatedDirective} ${event.blockedURI} on ${location.pathname}`;
  window.cspViolations.push(line);
  window.reportViolation(line);
});
"""


def watched_page(browser, violations: list[str], errors: list[str]):
    """A new page whose CSP violations and console errors land in the two lists."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
    context.expose_function("reportViolation", lambda line: violations.append(line))
    context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    return page


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


def test_editor_watches_live_numbers_and_chooses_the_winner(live_server, browser):
    from playwright.sync_api import expect

    app, base = live_server
    service = app.extensions["abtest"]["service"]
    errors: list[str] = []
    violations: list[str] = []
    page = watched_page(browser, violations, errors)

    # Signed out: the experiment page sends us to sign in, and back afterwards.
    page.goto(f"{base}/dashboard/{SLUG}?every=0.5")
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))
    page.fill("#username", "editor")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/dashboard/{SLUG}?every=0.5")
    expect(page.locator("h1")).to_have_text(seed_definition().title)
    expect(page.locator("svg#chart-ctr")).to_be_visible()

    impressions = page.locator("#served-total")
    before = impressions.inner_text()
    stamp_before = page.locator("[data-updated-at]").inner_text()
    page.evaluate("window.__sameDocument = true")

    # Readers arrive through the real reader endpoints; the page updates by itself.
    _reader_traffic(base, visitors=24, click_every=3)
    shown, clicked = totals(service)
    expect(impressions).to_have_text(f"{sum(shown):,}")
    expect(page.locator("#clicks-total")).to_have_text(f"{sum(clicked):,}")
    assert impressions.inner_text() != before
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    expect(page.locator("[data-live-state]")).to_have_attribute("data-live-state", "live")
    expect(page.locator("[data-updated-at]")).not_to_have_text(stamp_before)
    # One verdict: the claim from the proven call, the stop advice from the decision.
    claim = page.locator("#verdict-claim")
    expect(claim).to_contain_text(
        re.compile(r"is proven better than|leads so far|perform about the same")
    )
    expect(page.locator("#verdict-advice")).to_contain_text(
        re.compile(r"^(Safe to stop|Keep the test running)")
    )
    assert "p =" not in page.locator("#verdict").inner_text()

    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate(UNFLASH)
    page.screenshot(path=str(ARTIFACTS / "experiment-page.png"), full_page=True)

    # Choose B through the confirmation, which states the current verdict.
    page.click("#choose-b")
    expect(page).to_have_url(re.compile(r"/decide\?variant=b"))
    expect(page.locator("h1")).to_have_text("Choose B as the winner?")
    expect(page.locator(".verdict-main")).to_contain_text("Current verdict:")
    expect(page.locator("#choice-words")).to_contain_text("chance that B is the best headline")
    page.screenshot(path=str(ARTIFACTS / "choose-winner.png"), full_page=True)
    page.click("#confirm-decide")
    expect(page).to_have_url(re.compile(rf"/dashboard/{SLUG}(\?|$)"))
    expect(page.locator("#status-badge")).to_have_text("Decided")
    expect(page.locator(".flash-success")).to_contain_text("B is the winner")
    expect(page.locator("#audit")).to_contain_text("Chose B as the winner")
    expect(page.locator("#audit")).to_contain_text("editor")

    # A fresh reader now gets B, and nothing more is counted.
    counted = totals(service)
    for _ in range(3):
        _, headline = Reader(base).front_page()
        assert headline == HEADLINES[1]
    assert totals(service) == counted
    assert errors == []
    assert violations == []
    page.context.close()


def test_every_page_keeps_to_the_content_security_policy(live_server, browser):
    """Reader pages, error pages, sign-in, sign-out and each dashboard page,
    live updates included, under the policy the service sends, with no violation."""
    from playwright.sync_api import expect

    _, base = live_server
    errors: list[str] = []
    violations: list[str] = []
    page = watched_page(browser, violations, errors)

    page.goto(f"{base}/")
    headline = page.locator("h2 a")
    expect(headline).to_be_visible()
    headline.click()  # the click link, then the story
    expect(page).to_have_url(re.compile(rf"/articles/{SLUG}$"))
    assert page.goto(f"{base}/articles/no-such-story").status == 404

    page.goto(f"{base}/dashboard/login")
    page.fill("#username", "editor")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/dashboard/")
    page.goto(f"{base}/dashboard/{SLUG}?every=0.5")
    stamp = page.locator("[data-updated-at]").inner_text()
    _reader_traffic(base, visitors=3, click_every=1)  # a live update swaps fragments in
    expect(page.locator("[data-updated-at]")).not_to_have_text(stamp)
    expect(page.locator("[data-live-state]")).to_have_attribute("data-live-state", "live")
    page.goto(f"{base}/dashboard/{SLUG}/decide?variant=b")
    expect(page.locator("#confirm-decide")).to_be_visible()
    page.goto(f"{base}/dashboard/new")
    page.click("button[name=everywhere]")
    expect(page).to_have_url(f"{base}/dashboard/login")
    expect(page.locator(".flash-info")).to_contain_text("signed out everywhere")
    # The story that isn't there, and the reader site's missing /favicon.ico, are 404s.
    assert [e for e in errors if "status of 404" not in e] == []
    assert violations == []

    # The policy is enforced and every violation would have been seen: an
    # inline script and an inline style, added here, are blocked and reported.
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.inlineRan = true";
          document.body.appendChild(script);
          document.body.setAttribute("style", "background: red");
        }"""
    )
    page.wait_for_function("window.cspViolations.length >= 2")
    assert page.evaluate("window.inlineRan === undefined")
    expect(page.locator("body")).not_to_have_css("background-color", "rgb(255, 0, 0)")
    blocked = page.evaluate("window.cspViolations")
    assert any(line.startswith("script-src") for line in blocked), blocked
    assert any(line.startswith("style-src") for line in blocked), blocked
    page.context.close()
