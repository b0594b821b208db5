"""A count that comes too late counts nothing; a stalled Redis costs readers no wait.

Counting scripts carry a deadline in Redis's clock (``TIME``): one that runs
after its reader gave up (a Redis that stalled, then resumed with the
command still in its socket) writes nothing, so the reader, served
uncounted with no cookie, is not counted twice.  The stalls here are real:
``SIGSTOP`` on the test's redis-server.  Nothing waits for a sleep to be
long enough: each step polls for what it needs, with a generous limit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

import pytest
from conftest import TEST_SECRET
from helpers import SLUG

from abtest import keys, metrics
from abtest.model import Definition
from abtest.service import Service
from abtest.store import LATE, RedisStore, StoreError, connect
from abtest.tokens import ClickTokens, Visitor, VisitorCookies

NOW = 1_790_000_000.0
#: The stalling tests' Redis timeout: short, so a stall is long beside it.
TIMEOUT = 0.3


def everything(redis_server) -> dict[bytes, bytes]:
    """Every key and its value, serialized: what "nothing written" compares."""
    with contextlib.closing(redis_server.client()) as plain:
        return {key: plain.dump(key) for key in plain.scan_iter()}


def evalsha_calls(client) -> int:
    """EVALSHA commands the server has run so far (its own tally)."""
    return client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


def poll(condition, limit: float = 20.0, every: float = 0.02):
    """Wait until ``condition()`` is true (returns it), failing after ``limit`` seconds."""
    give_up = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > give_up:
            pytest.fail(f"still not true after {limit} s: {condition}")
        time.sleep(every)


@pytest.fixture
def store(redis_client) -> RedisStore:
    store = RedisStore(redis_client, minute_ttl=7200, hour_ttl=86_400, budget_impressions=5)
    store.create(
        Definition(slug="vote", title="Vote", headlines=("Yes", "No"), body=("Text.",)), now=NOW
    )
    store.record_impressions([("vote", "a")], now=NOW)
    store.load(["vote"])  # reads Redis's clock
    return store


def test_a_script_past_its_deadline_writes_nothing(store, redis_server):
    before = everything(redis_server)
    past = store.deadline(-1.0)  # a second ago, in Redis's clock
    (late,) = store.record_impressions([("vote", "b")], now=NOW, deadline=past, client="addr")
    assert late.reason == LATE and not late.counted
    click = store.record_click("vote", "a", "ref", 60, now=NOW, deadline=past, client="addr")
    assert click.reason == LATE and not click.counted
    assert everything(redis_server) == before
    # The same calls in time count.
    future = store.deadline(60.0)
    (counted,) = store.record_impressions([("vote", "b")], now=NOW, deadline=future)
    assert counted.counted and counted.reason == ""
    assert store.record_click("vote", "a", "ref", 60, now=NOW, deadline=future).counted
    assert store.get("vote").impressions == (1, 1) and store.get("vote").clicks == (1, 0)


def test_deadlines_are_sent_in_redis_clock_whatever_this_hosts_clock_says(store, redis_client):
    # This host's clock an hour slow: a deadline of "a minute from now" in its
    # own clock would be an hour past in Redis's, and every count late.
    store.clock = lambda: time.time() - 3600
    store._offsets.clear()
    store.clock_offset = 0.0
    (unmeasured,) = store.record_impressions([("vote", "b")], deadline=store.deadline(60.0))
    assert unmeasured.reason == LATE
    store.load(["vote"])  # measures the offset
    assert 3599 < store.clock_offset <= 3600
    (measured,) = store.record_impressions([("vote", "b")], deadline=store.deadline(60.0))
    assert measured.counted
    # And a deadline in Redis's clock is where Redis's clock will be: never
    # later than a minute past Redis's clock as it was computed, and earlier
    # only by a reading's transit.
    seconds, micros = redis_client.time()
    before = seconds * 1_000_000 + micros
    deadline = store.deadline(60.0)
    seconds, micros = redis_client.time()
    after = seconds * 1_000_000 + micros
    assert before + 59_000_000 < deadline <= after + 60_000_000


def test_the_clock_offset_errs_early_never_late(store):
    # Readings of Redis's clock, each taken some transit before it arrived:
    # each is a lower bound on the offset, and the tightest (largest) is used.
    store._offsets.clear()
    for transit in (0.25, 0.002, 0.5):
        store._clock_read((1000, 0), 1000.0 + transit)
    assert store.clock_offset == pytest.approx(-0.002)
    # Only the last few: a step of this host's clock is soon forgotten.
    for _ in range(RedisStore.OFFSETS_KEPT):
        store._clock_read((1000, 0), 1005.0)
    assert store.clock_offset == pytest.approx(-5.0)


def process_state(pid: int) -> str:
    """A process's state letter from /proc (``T``: stopped by a signal)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


@contextlib.contextmanager
def stopped(redis_client):
    """Redis stopped (SIGSTOP) for the block; continued (SIGCONT) whatever happens."""
    pid = int(redis_client.info("server")["process_id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        poll(lambda: process_state(pid) in ("T", "t"))  # stopped, not about to be
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def stall_service(redis_server, deadlines: bool) -> Service:
    """A service whose Redis calls time out after TIMEOUT, counting with deadlines or without."""
    service = Service(
        RedisStore(connect(redis_server.url, timeout=TIMEOUT), 7200, 86_400),
        ClickTokens(TEST_SECRET, 3600),
        VisitorCookies(TEST_SECRET),
        deadlines=deadlines,
    )
    service.snapshot.background = False
    service.snapshot.MAX_AGE = 3600.0  # no re-read of the snapshot while Redis is stopped
    service.snapshot.entries()  # loads the snapshot, reads Redis's clock
    served = service.assign(Visitor.new(), [SLUG], count=True)  # connects, loads the script
    assert served.visitor.assignments
    return service


def impressions(redis_client) -> int:
    counts = redis_client.hgetall(keys.counts(SLUG))
    return sum(int(v) for k, v in counts.items() if k.startswith("i:"))


@pytest.mark.parametrize("deadline", [True, False], ids=["with-deadline", "without"])
def test_a_stall_longer_than_the_deadline_leaves_no_phantom_impression(
    app, redis_server, redis_client, deadline
):
    service = stall_service(redis_server, deadlines=deadline)
    try:
        before, calls = impressions(redis_client), evalsha_calls(redis_client)
        with stopped(redis_client):
            # The reader waits out the timeout and is served uncounted, no cookie.
            served = service.assign(Visitor.new(), [SLUG], count=True)
            assert not served.visitor.assignments
            assert served.assignments[0].click_token is None
        # Redis resumes and runs the script still waiting in its socket.
        poll(lambda: evalsha_calls(redis_client) > calls)
        if deadline:
            assert impressions(redis_client) == before  # too late: nothing counted
        else:
            # What the deadline is for: without it the script counts a reader
            # who left with no cookie and will be counted again.
            assert impressions(redis_client) == before + 1
    finally:
        service.stop()


def circuit_open() -> float:
    labels = {"outcome": "uncounted", "reason": "circuit-open"}
    return metrics.REGISTRY.get_sample_value("abtest_impressions_total", labels) or 0.0


def test_an_open_breaker_serves_at_once_without_trying_redis(app, redis_server, redis_client):
    service = stall_service(redis_server, deadlines=True)
    try:
        calls = evalsha_calls(redis_client)
        open_before = circuit_open()
        with stopped(redis_client):
            first = service.assign(Visitor.new(), [SLUG], count=True)  # times out
            assert not first.visitor.assignments
            assert not service.breaker.allow()
            # Every later new reader is served uncounted without a Redis call.
            for _ in range(20):
                served = service.assign(Visitor.new(), [SLUG], count=True)
                assert not served.visitor.assignments
        assert circuit_open() - open_before == 20
        # Only the first reader's script reached Redis (and counted nothing: late).
        poll(lambda: evalsha_calls(redis_client) > calls)
        # The background probe closes the breaker; counting resumes.
        poll(service.breaker.allow)
        assert service.assign(Visitor.new(), [SLUG], count=True).visitor.assignments
        assert evalsha_calls(redis_client) == calls + 2
    finally:
        service.stop()


def test_an_outage_writes_a_line_per_interval_not_per_reader(service, tmp_path, caplog):
    served = service.assign(Visitor.new(), [SLUG], count=True)
    token, cookie = served.assignments[0].click_token, service.visitor_cookie(served.visitor)
    service.store.redis = connect(f"unix://{tmp_path}/nothing-here.sock", timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="abtest.service"):
        for _ in range(30):
            service.breaker.succeeded()  # as if a probe had closed it between readers
            assert service.read_click(token, cookie) == (SLUG, False)
            assert not service.assign(Visitor.new(), [SLUG], count=True).visitor.assignments
    lines = [r for r in caplog.records if r.name == "abtest.service"]
    assert 1 <= len(lines) <= 2


def test_a_store_error_opens_the_breaker(service, tmp_path):
    service.experiments()  # this worker's snapshot, read while Redis answers
    assert service.breaker.allow()
    service.store.redis = connect(f"unix://{tmp_path}/nothing-here.sock", timeout=0.2)
    assert not service.assign(Visitor.new(), [SLUG], count=True).visitor.assignments
    assert not service.breaker.allow()
    with pytest.raises(StoreError):
        service.store.ping()


def test_a_late_count_is_recorded_as_uncounted_late(service):
    service.REPLY_MARGIN = 2.0  # every deadline a timeout in the past
    before = metrics.REGISTRY.get_sample_value(
        "abtest_impressions_total", {"outcome": "uncounted", "reason": "late"}
    )
    served = service.assign(Visitor.new(), [SLUG], count=True)
    assert not served.visitor.assignments and served.assignments[0].click_token is None
    after = metrics.REGISTRY.get_sample_value(
        "abtest_impressions_total", {"outcome": "uncounted", "reason": "late"}
    )
    assert after - (before or 0) == 1
    assert sum(service.store.get(SLUG).impressions) == 0
