"""The per-process snapshot: how stale the bandit's counts may get, and forked workers."""

from __future__ import annotations

import os
import time

import pytest
from helpers import SLUG

from abtest.model import DECIDED
from abtest.snapshot import Snapshot
from abtest.store import RedisStore, StoreError, connect


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(RedisStore):
    """The real store, counting how often every experiment is read."""

    reads = 0

    def load_all(self):
        self.reads += 1
        return super().load_all()


@pytest.fixture
def store(service) -> CountingStore:
    # The app's store has loaded the seed story; this one reads the same Redis.
    return CountingStore(service.store.redis, minute_ttl=7200, hour_ttl=86_400)


def eventually(condition, limit: float = 30.0) -> bool:
    """Whether ``condition()`` holds within ``limit`` seconds (a guard against
    hanging, far above the half second the refresher needs)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_snapshot_older_than_a_second_is_read_again_by_the_request(store):
    clock = Clock()
    snapshot = Snapshot(store, refresh_interval=0.5, monotonic=clock, background=False)
    assert snapshot.entries()[SLUG].experiment.impressions == (0, 0, 0)
    assert store.reads == 1
    store.record_impressions([(SLUG, "b")] * 7)  # counted by another worker
    clock.now += Snapshot.MAX_AGE
    assert snapshot.entries()[SLUG].experiment.impressions == (0, 0, 0)  # not stale yet
    clock.now += 0.01
    assert snapshot.entries()[SLUG].experiment.impressions == (0, 7, 0)
    assert store.reads == 2


def test_with_redis_away_the_last_snapshot_is_served_and_read_again_once_a_second(store, tmp_path):
    clock = Clock()
    snapshot = Snapshot(store, refresh_interval=0.5, monotonic=clock, background=False)
    snapshot.entries()
    store.redis = connect(f"unix://{tmp_path}/nothing-here.sock", timeout=0.2)
    clock.now += 2.0
    for _ in range(3):  # tried once, then served from memory until a second passes
        assert SLUG in snapshot.entries()
    assert store.reads == 2
    clock.now += Snapshot.MAX_AGE + 0.01
    snapshot.entries()
    assert store.reads == 3
    # With nothing to serve, the request learns that Redis is away.
    with pytest.raises(StoreError):
        Snapshot(store, monotonic=clock, background=False).entries()


def test_the_refresher_brings_counts_and_decisions_written_elsewhere(service):
    before = service.experiment(SLUG).impressions  # starts this worker's refresher
    assert service.snapshot._refresher is not None
    # Another worker counts impressions and decides, straight into Redis.
    service.store.record_impressions([(SLUG, "b")] * 7)
    service.store.set_status(SLUG, DECIDED, "c", {"action": "decide", "editor": "elsewhere"})
    assert before == (0, 0, 0)
    assert eventually(lambda: service.experiment(SLUG).status == DECIDED)
    assert service.experiment(SLUG).impressions == (0, 7, 0)
    assert service.experiment(SLUG).default_variant == "c"


def test_the_refresher_waits_the_refresh_interval_between_reads(store):
    # What bounds the staleness while the refresher runs: it reads, then
    # waits exactly refresh_interval (at most 1 s, see Settings).
    waits = []

    class Stopped:
        def wait(self, interval):
            waits.append(interval)
            return len(waits) > 3

    snapshot = Snapshot(store, refresh_interval=0.25, background=False)
    snapshot._refresh_until(Stopped())
    assert waits == [0.25] * 4
    assert store.reads == 3


def test_an_impression_folds_the_counts_it_returned_into_the_snapshot(store):
    clock = Clock()
    snapshot = Snapshot(store, monotonic=clock, background=False)
    entry = snapshot.entries()[SLUG]
    (result,) = store.record_impressions([(SLUG, "a")])
    clock.now += 0.2
    fresh = snapshot.update(entry, result.status, result.winner, result.counts)
    assert fresh.impressions == (1, 0, 0)
    assert snapshot.entries()[SLUG].experiment is fresh
    assert snapshot.entries()[SLUG].built_at == clock.now  # a new posterior, from now
    assert entry.experiment.impressions == (0, 0, 0)  # the old entry is left as it was


def test_a_forked_worker_starts_its_own_refresher(service):
    service.experiments()  # starts this process's refresher
    assert service.snapshot._refresher is not None
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, b"1" if service.snapshot._refresher is None else b"0")
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    assert os.read(read, 1) == b"1"
    assert service.snapshot._refresher is not None


def test_a_forked_worker_never_replays_the_parents_decisions(service):
    # Decisions are drawn ahead in batches: a worker forked after the parent
    # drew a batch must not hand out the same choices as its siblings.
    def next_choices() -> bytes:
        posterior = service.snapshot.entries()[SLUG].posterior
        return bytes(posterior.choose(service.rng) for _ in range(31))

    posterior = service.snapshot.entries()[SLUG].posterior
    while len(posterior._decisions) < 31:  # the parent has drawn a batch ahead
        posterior.choose(service.rng)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, next_choices())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 64)
    # 3 equally likely variants: two independent runs of 31 agree with chance 3**-31.
    assert len(theirs) == 31
    assert theirs != next_choices()


def test_with_a_refresher_a_reader_never_waits_on_redis_for_a_stale_snapshot(store):
    # The refresher's interval is long here, so only a request could re-read.
    clock = Clock()
    snapshot = Snapshot(store, refresh_interval=3600, monotonic=clock)
    try:
        assert SLUG in snapshot.entries()  # the first request: nothing to serve yet
        assert store.reads == 1
        clock.now += 60 * Snapshot.MAX_AGE
        for _ in range(3):
            assert SLUG in snapshot.entries()
        assert store.reads == 1
    finally:
        snapshot.stop()


def test_the_refresher_survives_an_unexpected_error(store, caplog):
    calls = []
    real = store.load_all

    def load_all():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug, not an outage")
        return real()

    store.load_all = load_all
    waits = []

    class Stopped:
        def wait(self, interval):
            waits.append(interval)
            return len(waits) > 2

    snapshot = Snapshot(store, refresh_interval=0.25, background=False)
    snapshot._refresh_until(Stopped())
    assert len(calls) == 2 and SLUG in snapshot._entries
    assert "background refresh failed" in caplog.text
