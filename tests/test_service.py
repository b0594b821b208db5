"""The service's per-worker snapshot: how stale the bandit's counts may get."""

from __future__ import annotations

import os
import time

from helpers import SLUG


def test_counts_written_elsewhere_reach_the_bandit_within_a_second(service):
    before = service.experiment(SLUG).impressions  # starts this worker's refresher
    # Another worker (or process) counts impressions straight into Redis.
    service.store.record_impressions([(SLUG, "b")] * 7)
    deadline = time.monotonic() + 1.0
    while service.experiment(SLUG).impressions == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.experiment(SLUG).impressions == (0, 7, 0)


def test_a_decision_reaches_returning_visitors_within_a_second(service):
    service.experiment(SLUG)
    service.store.set_status(SLUG, "decided", "c", {"action": "decide", "editor": "elsewhere"})
    deadline = time.monotonic() + 1.0
    while service.experiment(SLUG).status != "decided" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.experiment(SLUG).status == "decided"
    assert service.experiment(SLUG).default_variant == "c"


def test_reports_follow_the_counts_and_never_share_state(service):
    first = service.report(SLUG)
    first["variants"][0]["ctr"] = "scribbled on"
    again = service.report(SLUG)
    assert again["variants"][0]["ctr"] == 0.0
    service.store.record_impressions([(SLUG, "a")])
    assert service.report(SLUG)["variants"][0]["impressions"] == 1


def test_a_forked_worker_gets_its_own_generator_and_refresher(service):
    # gunicorn forks its workers from a preloaded app: each must draw its own
    # random stream and run its own refresher, not share the parent's.
    parent_rng = service.rng
    service.experiments()  # starts this process's refresher
    assert service._refresher is not None
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        fresh = service._refresher is None and service.rng is not parent_rng
        os.write(write, b"1" if fresh else b"0")
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    assert os.read(read, 1) == b"1"
    assert service.rng is parent_rng


def test_a_forked_worker_never_replays_the_parents_decisions(service):
    # Decisions are drawn ahead in batches: a worker forked after the parent
    # drew a batch must not hand out the same choices as its siblings.
    def next_choices() -> bytes:
        posterior = service._snapshot()[SLUG].posterior
        return bytes(posterior.choose(service.rng) for _ in range(31))

    posterior = service._snapshot()[SLUG].posterior
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
