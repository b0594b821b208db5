"""/abtest.js end to end in a real headless Chromium, on a newsroom's own page.

The page is a plain static page of another app (the "site"), with abtest
mounted under /abtest of the same origin, as a reverse proxy would mount it.
The site sends a strict Content-Security-Policy (script-src 'self', no
inline script) and marks three slots from two experiments.  The snippet must
swap every headline with one request to the batch endpoint without moving
the rest of the page, route a click through abtest's click endpoint
(counted once), and log no error; a failed or late answer leaves the
page's defaults.
"""

from __future__ import annotations

import contextlib
import re

import pytest
from flask import Flask, Response
from helpers import HEADLINES, SLUG, need_chromium, serving, totals
from test_dashboard_browser import browser  # noqa: F401 (a fixture)
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from abtest import create_app
from abtest.model import Definition

pytestmark = pytest.mark.browser

SECOND = "second"
SECOND_HEADLINES = ("One", "Two")
SITE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'"
)
# The wait is generous so a busy machine still swaps; the default is 300 ms.
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>The Daily Example</title>
<link rel="stylesheet" href="/site.css">
<script src="/abtest/abtest.js" data-wait="15000"></script>
</head>
<body>
<h1>The Daily Example</h1>
<h2><a id="top" data-abtest="{SLUG}" href="/story/colombia">Default top headline</a></h2>
<aside><a id="side" data-abtest="{SLUG}" href="/story/colombia">Default side headline</a></aside>
<p><a id="plain" href="/story/plain">Not tested</a></p>
<div class="fold"></div>
<h2><a id="other" data-abtest="{SECOND}" href="/story/second">Default second headline</a></h2>
<div class="fold"></div>
</body>
</html>
"""
SITE_CSS = ".abtest-wait [data-abtest] { visibility: hidden; }\n.fold { height: 2000px; }\n"
#: The site's story pages: each marks its story for the snippet's engaged time.
STORIES = {"colombia": SLUG, "second": SECOND}
STORY_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Story</title>
<link rel="stylesheet" href="/site.css">
<script src="/abtest/abtest.js"></script>
</head>
<body>
<article data-abtest-story="{slug}"><h1>The story of {name}</h1><p>Text.</p></article>
</body>
</html>
"""


def _site() -> Flask:
    site = Flask("site")

    def send(body: str, mimetype: str) -> Response:
        response = Response(body, mimetype=mimetype)
        response.headers["Content-Security-Policy"] = SITE_POLICY
        return response

    site.add_url_rule("/", "page", lambda: send(PAGE, "text/html"))
    # The same page with the default wait.
    default_wait = PAGE.replace(' data-wait="15000"', "")
    site.add_url_rule("/default-wait", "default_wait", lambda: send(default_wait, "text/html"))
    site.add_url_rule("/site.css", "css", lambda: send(SITE_CSS, "text/css"))
    # A slot whose link leaves the site: the click is counted and lands on abtest's story.
    away = PAGE.replace(
        'href="/story/colombia">Default top', 'href="https://elsewhere.example/x">Default top'
    )
    site.add_url_rule("/away", "away", lambda: send(away, "text/html"))

    def story(name: str):
        if name not in STORIES:
            return Response("no such story", status=404)
        return send(STORY_PAGE.format(slug=STORIES[name], name=name), "text/html")

    site.add_url_rule("/story/<name>", "story", story)
    site.add_url_rule("/favicon.ico", "favicon", lambda: Response(status=204))
    return site


@contextlib.contextmanager
def serve_site(settings, redis_client):
    """The site with abtest mounted under /abtest: (service, base URL)."""
    need_chromium()
    app = create_app(settings, redis=redis_client)
    service = app.extensions["abtest"]["service"]
    definition = Definition(slug=SECOND, title="Second", headlines=SECOND_HEADLINES, body=("T.",))
    assert service.create(definition)
    try:
        with serving(DispatcherMiddleware(_site(), {"/abtest": app}), "site") as base:
            yield service, base
    finally:
        service.stop()


@pytest.fixture
def mounted(settings, redis_client):
    with serve_site(settings, redis_client) as found:
        yield found


# Cumulative layout shift from the first paint on (an init script: the page's CSP doesn't apply).
MEASURE_LAYOUT_SHIFT = """
window.__layoutShift = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (!entry.hadRecentInput) window.__layoutShift += entry.value;
  }
}).observe({ type: "layout-shift", buffered: true });
"""
# Two frames: every shift so far has been reported to the observer.
READ_LAYOUT_SHIFT = """() => new Promise((resolve) =>
  requestAnimationFrame(() => requestAnimationFrame(() => resolve(window.__layoutShift))))"""


def _watched(browser, errors: list[str], requests: list[str]):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.add_init_script(MEASURE_LAYOUT_SHIFT)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("request", lambda request: requests.append(request.url))
    return page


def test_the_snippet_swaps_every_slot_in_one_request_and_counts_a_click_once(
    mounted,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    service, base = mounted
    errors: list[str] = []
    requests: list[str] = []
    page = _watched(browser, errors, requests)
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{base}/")

    top, side, other = page.locator("#top"), page.locator("#side"), page.locator("#other")
    # Every slot gets its visitor's headline; the snippet then drops its waiting class.
    for slot in (top, side, other):
        expect(slot).to_have_attribute("data-abtest-variant", re.compile("^[abc]$"))
    expect(page.locator("html")).not_to_have_class(re.compile("abtest-wait"))
    variant = top.get_attribute("data-abtest-variant")
    expect(top).to_have_text(HEADLINES["abc".index(variant)])
    expect(side).to_have_text(HEADLINES["abc".index(variant)])
    expect(other).to_have_text(
        SECOND_HEADLINES["ab".index(other.get_attribute("data-abtest-variant"))]
    )
    expect(page.locator("#plain")).to_have_text("Not tested")
    for slot in (top, side, other):
        expect(slot).to_be_visible()
        assert slot.get_attribute("href").startswith("/abtest/c/")

    # The headlines fit their lines: swapping them moved nothing else on the page.
    assert page.evaluate(READ_LAYOUT_SHIFT) <= 0.01

    batches = [url for url in requests if "/api/v1/assignments" in url]
    assert batches == [f"{base}/abtest/api/v1/assignments?slugs={SLUG},{SECOND}"]
    assert sum(totals(service)[0]) == 1
    assert sum(totals(service, SECOND)[0]) == 1

    # The click goes through abtest's click endpoint on to the site's story, counted once.
    top.click()
    expect(page).to_have_url(f"{base}/story/colombia")
    expect(page.locator("h1")).to_have_text("The story of colombia")
    assert totals(service)[1] == tuple(int(v == variant) for v in "abc")
    page.go_back()
    expect(side).to_have_attribute("data-abtest-variant", variant)
    side.click()
    expect(page).to_have_url(f"{base}/story/colombia")
    assert sum(totals(service)[1]) == 1
    assert sum(totals(service)[0]) == 1
    assert sum(totals(service, SECOND)[1]) == 0

    assert errors == []
    assert violations == []
    page.context.close()


def test_a_failed_request_leaves_the_defaults(mounted, browser):  # noqa: F811
    from playwright.sync_api import expect

    service, base = mounted
    errors: list[str] = []
    requests: list[str] = []
    page = _watched(browser, errors, requests)
    page.route("**/api/v1/assignments*", lambda route: route.abort())
    page.goto(f"{base}/")
    expect(page.locator("html")).not_to_have_class(re.compile("abtest-wait"))
    expect(page.locator("#top")).to_have_text("Default top headline")
    expect(page.locator("#top")).to_have_attribute("href", "/story/colombia")
    expect(page.locator("#top")).to_be_visible()
    expect(page.locator("#other")).to_have_text("Default second headline")
    # Only the refused request itself is reported; the snippet throws nothing.
    assert all(e.startswith("Failed to load resource") for e in errors), errors
    assert sum(totals(service)[0]) == 0
    page.context.close()


def test_without_javascript_the_defaults_show_uncounted(mounted, browser):  # noqa: F811
    from playwright.sync_api import expect

    service, base = mounted
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{base}/")
    expect(page.locator("#top")).to_have_text("Default top headline")
    expect(page.locator("#top")).to_be_visible()
    expect(page.locator("#side")).to_be_visible()
    assert sum(totals(service)[0]) == 0
    context.close()


def test_an_answer_after_the_wait_leaves_the_defaults(mounted, browser):  # noqa: F811
    from playwright.sync_api import expect

    service, base = mounted
    errors: list[str] = []
    requests: list[str] = []
    page = _watched(browser, errors, requests)
    held = []
    # The batch request is held until the snippet has given up waiting.
    page.route("**/api/v1/assignments*", lambda route: held.append(route))
    page.goto(f"{base}/default-wait")
    expect(page.locator("html")).not_to_have_class(re.compile("abtest-wait"))
    assert page.evaluate("document.documentElement.classList.length") == 0
    expect(page.locator("#top")).to_be_visible()
    (route,) = held
    with page.expect_response("**/api/v1/assignments*") as answer:
        route.continue_()
    assert answer.value.ok
    answer.value.finished()
    page.evaluate(READ_LAYOUT_SHIFT)  # two frames: the snippet has read the answer
    expect(page.locator("#top")).to_have_text("Default top headline")
    expect(page.locator("#top")).to_have_attribute("href", "/story/colombia")
    assert page.locator("[data-abtest-variant]").count() == 0
    assert errors == []
    page.context.close()


def test_a_link_off_the_site_is_counted_and_lands_on_abtests_story(mounted, browser):  # noqa: F811
    from playwright.sync_api import expect

    service, base = mounted
    errors: list[str] = []
    requests: list[str] = []
    page = _watched(browser, errors, requests)
    page.goto(f"{base}/away")
    top, side = page.locator("#top"), page.locator("#side")
    expect(top).to_have_attribute("data-abtest-variant", re.compile("^[abc]$"))
    # Only a path of this site is passed on; the other slot of the story keeps its own.
    assert "?to=" not in top.get_attribute("href")
    assert side.get_attribute("href").endswith("?to=%2Fstory%2Fcolombia")
    top.click()
    expect(page).to_have_url(f"{base}/abtest/articles/{SLUG}")
    assert sum(totals(service)[1]) == 1
    assert errors == []
    page.context.close()
