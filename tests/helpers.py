"""Small helpers shared by the test modules."""

from __future__ import annotations

import contextlib
import html
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

SLUG = "colombia-china"
HEADLINES = (
    "Colombia Hopes to Expand Relations with China",
    "Colombia Eyes Stronger Ties with China Through Belt and Road Initiative",
    "Colombian President Gustavo Petro Seeks Closer Ties with China",
)

_TEASER = re.compile(r'<h2><a href="([^"]+)">([^<]+)</a></h2>')
_STORY = re.compile(r"<h1>([^<]+)</h1>")


def teasers(page: bytes | str) -> list[tuple[str, str]]:
    """(link, headline) for each teaser on the front page."""
    text = page.decode() if isinstance(page, bytes) else page
    return [(html.unescape(url), html.unescape(title)) for url, title in _TEASER.findall(text)]


def story_headline(page: bytes | str) -> str:
    text = page.decode() if isinstance(page, bytes) else page
    return html.unescape(_STORY.search(text).group(1))


def totals(service, slug: str = SLUG) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(impressions, clicks) per variant, read from Redis now."""
    experiment = service.store.get(slug)
    return experiment.impressions, experiment.clicks


BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def front(client, **headers):
    """The front page, as a browser (or with ``headers``) sees it; it must be a 200."""
    response = client.get("/", headers={"User-Agent": BROWSER, **headers})
    assert response.status_code == 200
    return response


#: Debian's Chromium, which the browser tests drive through Playwright.
CHROMIUM = "/usr/bin/chromium"


def need_chromium() -> None:
    """Skip the test without Chromium on a developer's machine; fail it under CI."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def axe():
    """axe-core, through axe-playwright-python (``Axe().run(page)``); skips the
    test without it on a developer's machine, fails it under CI."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        message = 'axe-playwright-python (it ships axe-core) is missing: pip install -e ".[test]"'
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Axe()


@contextlib.contextmanager
def serving(wsgi_app, name: str = "live-server") -> Iterator[str]:
    """``wsgi_app`` served on a free localhost port by a threaded werkzeug server
    (in a thread of this process): its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
