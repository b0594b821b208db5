"""Seen impressions and quality clicks on the experiment page, in a real headless
Chromium: the new counts arrive live as readers' beacons come in, the editor
changes what the verdict counts through the settings form, the seen
check's warning appears live, fits a phone's screen and passes axe-core, and
on a phone the new-experiment form offers what counts, refuses a forged
choice next to its group and creates the test with the editor's choice.

Readers talk HTTP to the live server (the batch assignment, the seen and
engaged-time beacons as navigator.sendBeacon sends them, the click).
Screenshots: tests/artifacts/experiment-signals.png,
phone-seen-warning.png and phone-new-experiment.png.  Uses Debian's Chromium as
tests/test_dashboard_browser.py does.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.request

import pytest
import test_dashboard_browser as shared
from helpers import SLUG, axe
from test_dashboard_browser import ARTIFACTS, BROWSER_UA, UNFLASH, watched_page
from test_phone_browser import assert_fits_the_screen

from abtest import keys

pytestmark = pytest.mark.browser

# The live server over a real Redis (with two hours of history) and Chromium.
live_server, browser = shared.live_server, shared.browser


class Reader:
    """A new browser on a page with the snippet: served, then its beacons and click."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def _send(self, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"User-Agent": BROWSER_UA}
        if data is not None:
            headers["Content-Type"] = "text/plain;charset=UTF-8"
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        with self.opener.open(request, timeout=10) as response:
            return response.status, response.read()

    def served(self) -> dict:
        _, body = self._send(f"/api/v1/assignments?slugs={SLUG}")
        (one,) = json.loads(body)["assignments"]
        self.assignment = one
        return one

    def sees(self) -> None:
        assert self._send("/api/v1/seen", {"tokens": [self.assignment["token"]]})[0] == 204

    def clicks_and_reads(self, seconds: float = 20) -> None:
        assert self._send(self.assignment["click_url"])[0] == 200  # the story, after the 303
        assert self._send("/api/v1/engaged", {"experiment": SLUG, "seconds": seconds})[0] == 204


def sign_in(page, base: str, then: str) -> None:
    page.goto(f"{base}/dashboard/login?next={then}")
    page.fill("#username", "editor")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(base + then.split("?")[0])))


def test_seen_and_quality_counts_arrive_live_and_the_editor_changes_what_counts(
    live_server, browser
):
    from playwright.sync_api import expect

    app, base = live_server
    service = app.extensions["abtest"]["service"]
    violations, errors = [], []
    page = watched_page(browser, violations, errors)
    sign_in(page, base, f"/dashboard/{SLUG}?every=0.5")
    expect(page.locator("#measures")).to_have_text("Counting clicks per reader served (change).")
    page.evaluate("window.__sameDocument = true")

    # A reader is served, sees the slot, clicks and reads: the page updates by itself.
    reader = Reader(base)
    variant = reader.served()["variant"]
    reader.sees()
    reader.clicks_and_reads()
    counted = service.store.get(SLUG)
    index = "abc".index(variant)
    assert counted.quality_clicks[index] == 1
    expect(page.locator(f"#quality-{variant}")).to_have_text("1")
    expect(page.locator(f"#served-{variant}")).to_have_text(f"{counted.served[index]:,}")
    expect(page.locator(f"#seen-{variant}")).to_contain_text(f"{counted.seen[index]:,}")
    expect(page.locator(f"#clicks-{variant}")).to_have_text(f"{counted.all_clicks[index]:,}")
    expect(page.locator("#quality-total")).to_have_text("1")
    # Both rates side by side, per reader served; the click rate is the verdict's.
    quality_rate = f"{100 * 1 / counted.served[index]:.2f}%"
    expect(page.locator(f"#quality-rate-{variant}")).to_have_text(quality_rate)
    expect(page.locator("#rate-head-click")).to_contain_text("the verdict's")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"

    # The editor counts quality clicks per reader who saw the headline.
    page.check("#settings-reward-quality")
    page.check("#settings-denominator-seen")
    page.click("#change-settings")
    expect(page.locator(".flash-success")).to_have_text(
        "Settings changed: counting quality clicks per reader who saw it (was: clicks per "
        "reader served). Every count was kept, so the statistics and the verdict now read the "
        "whole test this way."
    )
    expect(page.locator("#measures")).to_have_text(
        "Counting quality clicks per reader who saw it (change)."
    )
    expect(page.locator("#settings-reward-quality")).to_be_checked()
    expect(page.locator("#rate-head-quality")).to_contain_text("the verdict's")
    experiment = service.store.get(SLUG)
    assert (experiment.reward, experiment.denominator) == ("quality", "seen")
    # The history's readers were never reported seen (only its clickers were):
    # the page says seen impressions are not measured, and what they need.
    expect(page.locator("#seen-unmeasured")).to_contain_text(
        "pages with the snippet (/abtest.js) or abtest's own pages"
    )
    page.evaluate(UNFLASH)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "experiment-signals.png"), full_page=True)
    assert violations == [] and errors == []
    page.context.close()


def test_the_seen_warning_appears_live_fits_a_phone_and_passes_axe(
    live_server, browser, redis_client
):
    from playwright.sync_api import expect

    _, base = live_server
    violations, errors = [], []
    page = watched_page(browser, violations, errors)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, base, f"/dashboard/{SLUG}?every=0.5")
    expect(page.locator("[data-live-state]")).to_have_attribute("data-live-state", "live")
    expect(page.locator("#seen-warning-b")).to_have_count(0)

    # Beacons report B's slot seen by 31% of its readers, A's and C's by 52%.
    redis_client.hset(
        keys.counts(SLUG),
        mapping={
            "i:a": 2000, "s:a": 1040, "c:a": 60,
            "i:b": 2000, "s:b": 620, "c:b": 40,
            "i:c": 2000, "s:c": 1040, "c:c": 50,
        },
    )  # fmt: skip
    warning = page.locator("#seen-warning-b")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(
        "B's slot was seen by 31% of the readers it was served to, the other headlines' by 52%"
    )
    expect(warning).to_contain_text("consider counting per reader who saw it")
    expect(page.locator("#seen-share-b")).to_contain_text("31%")
    expect(page.locator("#seen-warning-a")).to_have_count(0)
    assert_fits_the_screen(page, 390)
    page.evaluate(UNFLASH)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "phone-seen-warning.png"), full_page=True)

    checker = axe()
    found = {}
    for width in (390, 1360):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{base}/dashboard/{SLUG}?every=300")
        expect(page.locator("#seen-warning-b")).to_be_visible()
        found[width] = [
            (v["id"], [n["target"] for n in v["nodes"]][:3])
            for v in checker.run(page).response["violations"]
        ]
    assert found == {390: [], 1360: []}
    assert violations == [] and errors == []
    page.context.close()


def test_the_new_experiment_form_offers_what_counts_and_the_choice_lands(live_server, browser):
    from playwright.sync_api import expect

    app, base = live_server
    service = app.extensions["abtest"]["service"]
    violations, errors = [], []
    page = watched_page(browser, violations, errors)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, base, "/dashboard/new")
    reward = page.get_by_role("group", name="A response is")
    denominator = page.get_by_role("group", name="Rates are per")
    expect(reward.get_by_role("radio")).to_have_count(2)
    expect(denominator.get_by_role("radio")).to_have_count(2)
    expect(reward.get_by_role("radio", name="Every click")).to_be_checked()
    expect(denominator.get_by_role("radio", name="Every reader served")).to_be_checked()
    quality = reward.get_by_role("radio", name="Quality clicks")
    seen = denominator.get_by_role("radio", name="Readers who saw it")
    expect(quality).not_to_be_checked()
    # Each choice's one line is read out with it.
    expect(quality).to_have_accessible_description(re.compile("15 seconds of reading"))
    expect(seen).to_have_accessible_description(re.compile("below the fold"))
    expect(page.locator("#reward-quality-means")).to_be_visible()
    assert_fits_the_screen(page, 390)

    page.fill("#slug", "budget-vote")
    page.fill("#title", "Budget vote tonight")
    page.fill("#headlines", "Budget passes\nBudget squeaks through")
    page.fill("#body", "The council voted.")
    # A forged choice (no radio button sends it): the form comes back, saying where.
    page.evaluate("document.querySelector('#reward-click').value = 'likes'")
    page.locator("label[for=reward-click]").click()
    with page.expect_navigation() as sent:
        page.click("#create-start")
    assert sent.value.status == 400
    expect(reward).to_have_accessible_description("Count every click or quality clicks.")
    expect(page.locator("#reward-error")).to_be_visible()
    expect(page.locator("#title")).to_have_value("Budget vote tonight")
    assert service.store.get("budget-vote") is None
    assert_fits_the_screen(page, 390)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "phone-new-experiment.png"), full_page=True)
    checker = axe()
    assert checker.run(page).response["violations"] == []

    # Chosen by tapping the words, as on a phone: the new test counts them.
    page.get_by_text("Quality clicks", exact=True).click()
    page.get_by_text("Readers who saw it", exact=True).click()
    expect(quality).to_be_checked()
    expect(seen).to_be_checked()
    page.click("#create-start")
    page.wait_for_url(f"{base}/dashboard/budget-vote")
    expect(page.locator("#settings-measures")).to_have_text("quality clicks per reader who saw it")
    expect(page.locator("#settings-reward-quality")).to_be_checked()
    expect(page.locator("#settings-denominator-seen")).to_be_checked()
    experiment = service.fresh("budget-vote")
    assert (experiment.reward, experiment.denominator) == ("quality", "seen")
    assert violations == []
    assert [e for e in errors if "status of 400" not in e] == []
    page.context.close()
