"""Redis round trips per reader request, counted on the wire (no timing).

A new visitor's request may make one round trip (the impression script, with
the fresh counts in its reply); a returning visitor's makes none.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import redis
from helpers import SLUG, teasers

from abtest import create_app

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"


class CountingConnection(redis.UnixDomainSocketConnection):
    """Counts each packet sent to Redis (one per command or pipeline) per thread."""

    sends: Counter = Counter()

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sends[threading.get_ident()] += 1
        return super().send_packed_command(command, check_health)


@pytest.fixture
def counted_app(settings, redis_server, redis_client):
    pool = redis.ConnectionPool(
        connection_class=CountingConnection, path=str(redis_server.socket), decode_responses=True
    )
    app = create_app(settings, redis=redis.Redis(connection_pool=pool))
    yield app
    app.extensions["abtest"]["service"].stop()
    pool.disconnect()


def round_trips(browser, path: str, user_agent: str = BROWSER) -> int:
    """Round trips this thread made to Redis while ``browser`` fetched ``path``."""
    me = threading.get_ident()
    before = CountingConnection.sends[me]
    browser.get(path, headers={"User-Agent": user_agent})
    return CountingConnection.sends[me] - before


def test_new_visitor_costs_one_round_trip_and_returning_visitor_none(counted_app):
    counted_app.test_client().get("/", headers={"User-Agent": BROWSER})  # reads the snapshot
    api = f"/api/v1/experiments/{SLUG}/assignment"
    for _ in range(5):
        browser = counted_app.test_client()
        assert round_trips(browser, "/") == 1
        assert round_trips(browser, "/") == 0
        assert round_trips(browser, f"/articles/{SLUG}") == 0
        assert round_trips(browser, api) == 0
    assert round_trips(counted_app.test_client(), f"/articles/{SLUG}") == 1
    assert round_trips(counted_app.test_client(), api) == 1


def test_a_click_costs_one_round_trip(counted_app):
    # The first click on a fresh server also loads the script (NOSCRIPT, SCRIPT LOAD).
    warm = counted_app.test_client()
    ((warm_link, _),) = teasers(warm.get("/", headers={"User-Agent": BROWSER}).data)
    warm.get(warm_link, headers={"User-Agent": BROWSER})
    browser = counted_app.test_client()
    ((link, _),) = teasers(browser.get("/", headers={"User-Agent": BROWSER}).data)
    assert round_trips(browser, link) == 1
    # The story after the redirect: a returning visitor, no Redis.
    assert round_trips(browser, f"/articles/{SLUG}") == 0


def test_bots_cost_no_round_trip(counted_app):
    counted_app.test_client().get("/", headers={"User-Agent": BROWSER})
    bot = counted_app.test_client()
    assert round_trips(bot, "/", user_agent="Googlebot/2.1") == 0


def test_head_costs_no_round_trip_and_a_reader_past_the_budget_one(counted_app):
    counted_app.test_client().get("/", headers={"User-Agent": BROWSER})
    me = threading.get_ident()
    before = CountingConnection.sends[me]
    counted_app.test_client().head("/", headers={"User-Agent": BROWSER})
    assert CountingConnection.sends[me] == before
    # The budget is checked inside the counting script: past it, still one round trip.
    budget = counted_app.extensions["abtest"]["settings"].budget_impressions
    for _ in range(budget - 1):  # the first reader above counted one already
        counted_app.test_client().get("/", headers={"User-Agent": BROWSER})
    assert round_trips(counted_app.test_client(), "/") == 1
    excluded = counted_app.extensions["abtest"]["service"].store.excluded([SLUG])[SLUG]
    assert sum(excluded.values()) == 1
