"""The dashboard and the reader pages on a phone, in a real headless Chromium.

At a 390 x 844 phone viewport every page (the lists, an experiment live, its
confirmations, a draft with its edit form and previews, the reader pages) is
exactly as wide as the screen (a wide table scrolls inside its own wrapper,
never the page), and the charts
show the drawing made for a narrow box, whose text reads at 11 px or more
with axis labels that don't run into each other.  The same holds for the
charts on a tablet and a desktop screen.  Screenshots:
tests/artifacts/phone-experiment.png, phone-experiments.png, phone-reopen.png
and tablet-experiment.png.

Uses Debian's Chromium as tests/test_dashboard_browser.py does (skipped
without it on a developer's machine, a failure under CI).
"""

from __future__ import annotations

import pytest
import test_dashboard_browser as shared
from helpers import SLUG
from test_dashboard_browser import ARTIFACTS, UNFLASH

from abtest.model import DRAFT, Definition

# The live server over a real Redis (with two hours of history) and Chromium.
live_server, browser = shared.live_server, shared.browser

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}

#: Each chart box: the drawings it shows, with the smallest and largest text
#: as shown (in CSS px) and the x-axis labels' and legend entries' extents.
CHART_METRICS = """
() => Array.from(document.querySelectorAll(".chart-box")).map(box => {
  const shown = Array.from(box.querySelectorAll("svg.chart"))
    .filter(svg => getComputedStyle(svg).display !== "none");
  return shown.map(svg => {
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    const sizes = Array.from(svg.querySelectorAll("text"))
      .map(text => parseFloat(getComputedStyle(text).fontSize) * scale);
    const extents = selector => Array.from(svg.querySelectorAll(selector))
      .map(text => text.getBoundingClientRect())
      .map(r => [r.left, r.right, r.top, r.bottom]);
    return {
      id: svg.id,
      fits: svg.getAttribute("data-fits"),
      smallest: Math.min(...sizes),
      largest: Math.max(...sizes),
      ticks: extents("text.tick[text-anchor=middle]"),
      legend: extents("text.legend"),
      box: box.getBoundingClientRect().width,
    };
  });
})
"""

PAGE_WIDTH = "[document.documentElement.scrollWidth, window.innerWidth]"

#: Everything wider than the screen that is not inside a scrolling table wrapper.
ESCAPES = """
() => Array.from(document.querySelectorAll("body *"))
  .filter(el => {
    const r = el.getBoundingClientRect();
    return (r.right > innerWidth + 0.5 || r.left < -0.5) && !el.closest(".table-wrap");
  })
  .map(el => el.tagName + (el.id ? "#" + el.id : "") + "." + el.className)
"""


def phone(browser, viewport=PHONE, mobile=True):
    context = browser.new_context(
        viewport=viewport, device_scale_factor=2, is_mobile=mobile, has_touch=mobile
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/dashboard/login")
    page.fill("#username", "editor")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")


def assert_fits_the_screen(page, width: int) -> None:
    scroll_width, inner_width = page.evaluate(PAGE_WIDTH)
    # On a phone the layout viewport grows to fit a too-wide page: it must stay the screen's.
    assert inner_width == width, (page.url, inner_width)
    assert scroll_width <= inner_width, (page.url, scroll_width, page.evaluate(ESCAPES))
    assert page.evaluate(ESCAPES) == [], page.url


def assert_charts_legible(page) -> list[str]:
    """Each chart shows one drawing, its text 11 to 20 px, labels apart; the drawings' kinds."""
    shown = []
    boxes = page.evaluate(CHART_METRICS)
    assert len(boxes) == 3
    for drawings in boxes:
        assert len(drawings) == 1, drawings  # one drawing per chart, never none or two
        (chart,) = drawings
        assert chart["smallest"] >= 11, chart
        assert chart["largest"] <= 20, chart
        for entries in (chart["ticks"], chart["legend"]):
            in_rows = sorted(entries, key=lambda r: (round(r[2]), r[0]))
            for left, right in zip(in_rows, in_rows[1:], strict=False):
                same_row = abs(left[2] - right[2]) < 2
                assert not same_row or left[1] <= right[0], (chart["id"], left, right)
        shown.append(chart["fits"])
    return shown


def test_the_dashboard_fits_a_phone_screen(live_server, browser):
    app, base = live_server
    service = app.extensions["abtest"]["service"]
    page = phone(browser)
    sign_in(page, base)
    assert_fits_the_screen(page, 390)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "phone-experiments.png"), full_page=True)

    page.goto(f"{base}/dashboard/{SLUG}")
    assert_fits_the_screen(page, 390)
    # The headlines table is wider than the screen and scrolls inside its wrapper.
    wrap = page.locator("#variants").locator("xpath=..")
    sizes = wrap.evaluate(
        "el => [el.scrollWidth, el.clientWidth, el.getBoundingClientRect().right]"
    )
    assert sizes[0] > sizes[1] and sizes[2] <= 390, sizes
    wrap.evaluate("el => { el.scrollLeft = 200; }")
    assert wrap.evaluate("el => el.scrollLeft") > 0
    assert_fits_the_screen(page, 390)  # scrolling the table moves nothing else
    wrap.evaluate("el => { el.scrollLeft = 0; }")
    assert assert_charts_legible(page) == ["narrow", "narrow", "narrow"]
    page.evaluate(UNFLASH)
    page.screenshot(path=str(ARTIFACTS / "phone-experiment.png"), full_page=True)

    draft = Definition.from_mapping(
        {
            "slug": "a-draft",
            "title": "A story still being written, with a title long enough to wrap",
            "headlines": ["A first headline, long enough to wrap on a phone", "A second"],
            "body": "The first paragraph.\n\nThe second.",
        }
    )
    assert service.store.create(draft, now=service.clock(), status=DRAFT)
    paths = [
        f"/dashboard/{SLUG}/decide?variant=b",
        "/dashboard/new",
        "/dashboard/archived",
        "/dashboard/front-page",
        "/dashboard/a-draft",
        "/dashboard/a-draft/edit",
        "/dashboard/a-draft/preview?variant=a",
        "/",
        f"/articles/{SLUG}",
    ]
    for path in paths:
        assert page.goto(base + path).status == 200, path
        assert_fits_the_screen(page, 390)

    # Started with no readers yet: the charts say so, in lines that fit the screen.
    service.start("a-draft", "editor")
    page.goto(f"{base}/dashboard/a-draft")
    assert page.locator("svg.chart text.empty-chart").count() > 0
    assert_fits_the_screen(page, 390)

    service.decide(SLUG, "b", "editor")
    for path in (f"/dashboard/{SLUG}", f"/dashboard/{SLUG}/reopen"):
        page.goto(base + path)
        assert_fits_the_screen(page, 390)
    page.screenshot(path=str(ARTIFACTS / "phone-reopen.png"), full_page=True)
    page.context.close()


@pytest.mark.parametrize(
    ("viewport", "expected"),
    [
        ({"width": 768, "height": 1024}, ["medium", "medium wide", "medium wide"]),
        ({"width": 1024, "height": 768}, ["medium", "small", "small"]),
        ({"width": 1360, "height": 900}, ["wide", "small", "small"]),
    ],
)
def test_charts_stay_legible_at_every_width(live_server, browser, viewport, expected):
    _, base = live_server
    page = phone(browser, viewport, mobile=viewport["width"] < 800)
    sign_in(page, base)
    page.goto(f"{base}/dashboard/{SLUG}")
    assert_fits_the_screen(page, viewport["width"])
    assert assert_charts_legible(page) == expected
    if viewport["width"] == 768:
        page.evaluate(UNFLASH)
        page.screenshot(path=str(ARTIFACTS / "tablet-experiment.png"), full_page=True)
    page.context.close()
