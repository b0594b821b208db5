"""Redis round trips per reader request, counted on the wire (no timing).

A new visitor's request may make one round trip (the impression script, with
the fresh counts in its reply); a returning visitor's makes none.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import redis

from abtest import create_app
from helpers import SLUG, teasers

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


def round_trips(action) -> int:
    me = threading.get_ident()
    before = CountingConnection.sends[me]
    action()
    return CountingConnection.sends[me] - before


def test_new_visitor_costs_one_round_trip_and_returning_visitor_none(counted_app):
    warm = counted_app.test_client()
    warm.get("/", headers={"User-Agent": BROWSER})  # this worker reads its snapshot once

    for _ in range(5):
        browser = counted_app.test_client()
        assert round_trips(lambda b=browser: b.get("/", headers={"User-Agent": BROWSER})) == 1
        assert round_trips(lambda b=browser: b.get("/", headers={"User-Agent": BROWSER})) == 0
        assert round_trips(lambda b=browser: b.get(f"/articles/{SLUG}", headers={"User-Agent": BROWSER})) == 0
        api = f"/api/v1/experiments/{SLUG}/assignment"
        assert round_trips(lambda b=browser: b.get(api, headers={"User-Agent": BROWSER})) == 0

    fresh = counted_app.test_client()
    assert round_trips(lambda: fresh.get(f"/articles/{SLUG}", headers={"User-Agent": BROWSER})) == 1
    other = counted_app.test_client()
    assert round_trips(lambda: other.get(f"/api/v1/experiments/{SLUG}/assignment", headers={"User-Agent": BROWSER})) == 1


def test_a_click_costs_one_round_trip(counted_app):
    # The first click on a fresh server also loads the script (NOSCRIPT, SCRIPT LOAD).
    warm = counted_app.test_client()
    ((warm_link, _),) = teasers(warm.get("/", headers={"User-Agent": BROWSER}).data)
    warm.get(warm_link, headers={"User-Agent": BROWSER})
    browser = counted_app.test_client()
    ((link, _),) = teasers(browser.get("/", headers={"User-Agent": BROWSER}).data)
    assert round_trips(lambda: browser.get(link, headers={"User-Agent": BROWSER})) == 1
    # The story after the redirect: a returning visitor, no Redis.
    assert round_trips(lambda: browser.get(f"/articles/{SLUG}", headers={"User-Agent": BROWSER})) == 0


def test_bots_cost_no_round_trip(counted_app):
    counted_app.test_client().get("/", headers={"User-Agent": BROWSER})
    bot = counted_app.test_client()
    assert round_trips(lambda: bot.get("/", headers={"User-Agent": "Googlebot/2.1"})) == 0
