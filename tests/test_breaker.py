"""The circuit breaker and the outage log: clocks injected, probes driven by the test."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from abtest import metrics
from abtest.breaker import CircuitBreaker, OutageLog


class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Probe:
    """A probe that fails ``failures`` times, then answers; records the calling threads."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.calls = 0
        self.threads: set[int] = set()

    def __call__(self) -> str:
        self.calls += 1
        self.threads.add(threading.get_ident())
        if self.calls <= self.failures:
            raise ConnectionError("Timeout reading from socket")
        return "PONG"


def circuit_gauge() -> float:
    return metrics.REGISTRY.get_sample_value("abtest_circuit_open")


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.005)


def test_closed_until_a_failure():
    breaker = CircuitBreaker(1.0, Probe(), background=False)
    assert breaker.allow() and not breaker.is_open
    breaker.succeeded()
    assert breaker.allow()


def test_a_failure_opens_until_a_probe_answers():
    clock = Clock()
    breaker = CircuitBreaker(1.0, Probe(failures=2), clock=clock, background=False)
    breaker.failed(TimeoutError("Timeout reading from socket"))
    assert not breaker.allow() and breaker.is_open
    assert circuit_gauge() == 1
    clock.now += 0.75
    assert breaker.open_for() == pytest.approx(0.75)
    assert breaker.probe_now() is False
    assert breaker.probe_now() is False
    assert not breaker.allow()
    assert breaker.probe_now() is True
    assert breaker.allow() and breaker.open_for() == 0.0
    assert circuit_gauge() == 0


def test_a_success_closes_it():
    breaker = CircuitBreaker(1.0, Probe(failures=100), background=False)
    breaker.failed("boom")
    breaker.succeeded()
    assert breaker.allow()
    assert circuit_gauge() == 0


def test_opening_and_closing_log_one_line_each(caplog):
    breaker = CircuitBreaker(0.5, Probe(), background=False)
    with caplog.at_level(logging.WARNING, logger="abtest.breaker"):
        for _ in range(50):
            breaker.failed(TimeoutError("Timeout reading from socket"))
        breaker.probe_now()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "Timeout reading from socket" in messages[0] and "every 0.5 s" in messages[0]
    assert "counting resumed" in messages[1]


def test_one_background_prober_closes_it():
    probe = Probe(failures=3)
    breaker = CircuitBreaker(0.01, probe)
    failing = [threading.Thread(target=breaker.failed, args=("timeout",)) for _ in range(16)]
    for thread in failing:
        thread.start()
    for thread in failing:
        thread.join()
    wait_until(breaker.allow)
    assert probe.calls == 4
    assert len(probe.threads) == 1 and threading.get_ident() not in probe.threads
    wait_until(lambda: breaker._prober is None)


def test_the_prober_ends_when_something_else_closes_it():
    probe = Probe(failures=10**9)
    breaker = CircuitBreaker(0.01, probe)
    breaker.failed("timeout")
    wait_until(lambda: probe.calls >= 1)
    breaker.succeeded()
    wait_until(lambda: breaker._prober is None)
    calls = probe.calls
    breaker.failed("timeout again")  # a new episode starts a new prober
    wait_until(lambda: probe.calls > calls)
    breaker.stop()


def test_a_forked_child_starts_closed_with_no_prober():
    breaker = CircuitBreaker(0.05, Probe(failures=10**9))
    breaker.failed("timeout")
    wait_until(lambda: breaker._prober is not None)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        os._exit(0 if breaker.allow() and breaker._prober is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not breaker.allow()  # the parent's breaker is untouched
    breaker.stop()


def test_the_backoff_must_be_positive():
    with pytest.raises(ValueError):
        CircuitBreaker(0, Probe())


def test_outage_log_writes_one_line_per_interval_with_the_count_held_back(caplog):
    clock = Clock(0.0)
    outage = OutageLog(logging.getLogger("abtest.test-outage"), interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="abtest.test-outage"):
        outage.warning("served uncounted: %s", "Redis unavailable")
        for i in range(5_761):
            clock.now = i * 0.0017
            outage.warning("served uncounted: %s", "Redis unavailable")
        clock.now = 10.0
        outage.warning("served uncounted: %s", "Redis unavailable")
        clock.now = 10.5
        outage.warning("served uncounted: %s", "Redis unavailable")
        clock.now = 60.0
        outage.warning("served uncounted: %s", "circuit open")
        clock.now = 75.0
        outage.warning("served uncounted: %s", "circuit open")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "served uncounted: Redis unavailable",
        "served uncounted: Redis unavailable (and 5,761 more in the last 10 s)",
        "served uncounted: circuit open (and 1 more in the last 50 s)",
        "served uncounted: circuit open",
    ]
    assert all(record.levelno == logging.WARNING for record in caplog.records)


def test_outage_log_in_a_forked_child_starts_afresh(caplog):
    clock = Clock(0.0)
    outage = OutageLog(logging.getLogger("abtest.test-outage"), interval=10.0, clock=clock)
    outage.warning("down")
    outage.warning("down")
    pid = os.fork()
    if pid == 0:
        os._exit(0 if outage._held == 0 and outage._written_at == -float("inf") else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
