"""Many experiments on one Redis server: the front page's round trips stay at one,
and the dashboard's list of 1,000 experiments costs what a list of 10 does.

Round trips are counted on the wire (packets sent per request, no timing);
tests/test_cluster.py holds the same on a Redis Cluster, one per node.
"""

from __future__ import annotations

import re
import threading

import pytest
import redis
from helpers import BROWSER, teasers

from abtest import create_app
from abtest.model import Definition


def story(i: int) -> Definition:
    return Definition(
        slug=f"story-{i}",
        title=f"Story {i}",
        headlines=(f"Story {i} as told plainly", f"Story {i}, the bold take"),
        body=(f"The first paragraph of story {i}.",),
    )


class RoundTrips:
    """Packets this thread sends to Redis (one per command or pipeline)."""

    def __init__(self, monkeypatch):
        self.sent = 0
        original = redis.connection.AbstractConnection.send_packed_command
        me = threading.get_ident()

        def counted(connection, command, check_health=True):
            if threading.get_ident() == me:
                self.sent += 1
            return original(connection, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)

    def during(self, call):
        """(round trips, what ``call()`` returned)."""
        before = self.sent
        result = call()
        return self.sent - before, result


def sign_in(browser) -> None:
    page = browser.get("/dashboard/login").data.decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    browser.post(
        "/dashboard/login",
        data={"username": "editor", "password": "correct horse", "csrf_token": token},
    )


@pytest.fixture
def many_app(settings, redis_client):
    """The app with no seed story: the tests say how many experiments run."""
    import dataclasses

    app = create_app(dataclasses.replace(settings, load_seed=False), redis=redis_client)
    app.config["TESTING"] = True
    yield app
    app.extensions["abtest"]["service"].stop()


@pytest.mark.parametrize("running", [1, 10, 50])
def test_a_front_page_counts_every_running_experiment_in_one_round_trip(
    many_app, monkeypatch, running
):
    service = many_app.extensions["abtest"]["service"]
    for i in range(running):
        service.create(story(i))
    many_app.test_client().get("/", headers={"User-Agent": BROWSER})  # loads the script
    trips = RoundTrips(monkeypatch)
    for _ in range(3):
        browser = many_app.test_client()
        sent, page = trips.during(lambda b=browser: b.get("/", headers={"User-Agent": BROWSER}))
        assert sent == 1
        counted = [link for link, _ in teasers(page.data) if link.startswith("/c/")]
        assert len(counted) == running


def test_the_dashboard_lists_1000_experiments_in_the_round_trips_of_10(many_app, monkeypatch):
    service = many_app.extensions["abtest"]["service"]
    browser = many_app.test_client()
    sign_in(browser)
    for i in range(10):
        service.create(story(i))
    assert browser.get("/dashboard/").status_code == 200
    trips = RoundTrips(monkeypatch)
    ten, _ = trips.during(lambda: browser.get("/dashboard/"))
    for i in range(10, 1000):
        service.store.create(story(i))
    thousand, page = trips.during(lambda: browser.get("/dashboard/"))
    assert page.status_code == 200
    assert all(f"story-{i}" in page.data.decode() for i in (0, 500, 999))
    assert thousand == ten
    # The stats of one experiment among 1,000 read that experiment alone.
    api = many_app.test_client()
    headers = {"Authorization": "Bearer test-api-token"}
    sent, stats = trips.during(
        lambda: api.get("/api/v1/experiments/story-500/stats", headers=headers)
    )
    assert sent <= 2
    assert stats.status_code == 200 and stats.get_json()["experiment"] == "story-500"
    print(f"dashboard list: {ten} round trips at 10 and 1,000 experiments; stats: {sent}")
