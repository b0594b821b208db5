"""Many readers at once: every served impression is counted, exactly."""

from __future__ import annotations

import dataclasses
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import serving, teasers, totals

THREADS, REQUESTS = 12, 25
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"


@pytest.fixture
def settings(settings):
    # Every reader here comes from 127.0.0.1: exact counting, without the
    # per-address budgets (tests/test_attack.py holds those).
    return dataclasses.replace(settings, budget_impressions=0, budget_clicks=0)


@pytest.fixture
def live_server(app):
    with serving(app) as base:
        yield base


def visit(base: str) -> tuple[int, str, str]:
    """A new visitor (no cookie) at the front page; then they click through."""
    request = urllib.request.Request(base + "/", headers={"User-Agent": BROWSER})
    with urllib.request.urlopen(request, timeout=30) as response:
        page = response.read()
        cookie = response.headers["Set-Cookie"].split(";", 1)[0]
        status = response.status
    ((link, _),) = teasers(page)
    click = urllib.request.Request(base + link, headers={"User-Agent": BROWSER, "Cookie": cookie})
    with urllib.request.urlopen(click, timeout=30) as response:  # follows the 303
        assert response.status == 200
    return status, link, cookie


def test_concurrent_new_visitors_are_all_counted(live_server, service):
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda _: visit(live_server), range(THREADS * REQUESTS)))
    served = sum(1 for status, _, _ in results if status == 200)
    assert served == THREADS * REQUESTS
    impressions, clicks = totals(service)
    assert sum(impressions) == served
    assert sum(clicks) == served
    assert len({cookie for _, _, cookie in results}) == served  # every visitor distinct
