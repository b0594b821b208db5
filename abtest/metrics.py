"""Prometheus metrics: what the service counted, what it did not and why, and how Redis answers.

The service code records through the functions here; ``/metrics`` exposes
them (prometheus-client; under gunicorn in its multiprocess mode, so the
figures are every worker's together).  Recording is a lock and an add, cheap
enough for the reader path.

Outcomes and reasons (the ``outcome`` and ``reason`` labels):

- ``counted``: Redis counted it (reason empty);
- ``uncounted``: the reader was served but nothing was counted because the
  service could not count it: ``redis-unavailable`` (the call failed or timed
  out), ``circuit-open`` (not tried during the back-off after a failure),
  ``late`` (the counting script ran after the request's deadline);
- ``excluded``: deliberately not counted: ``bot``, ``prefetch``,
  ``rate-limited`` (past the client's budget).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "IMPRESSIONS",
    "CLICKS",
    "REDIS_SECONDS",
    "CIRCUIT_OPEN",
    "impressions",
    "clicks",
    "circuit",
]

IMPRESSIONS = Counter(
    "abtest_impressions",
    "Reader impressions by outcome (counted, uncounted, excluded) and reason.",
    ["outcome", "reason"],
)
CLICKS = Counter(
    "abtest_clicks",
    "Reader clicks by outcome (counted, uncounted, excluded) and reason.",
    ["outcome", "reason"],
)
REDIS_SECONDS = Histogram(
    "abtest_redis_seconds",
    "Time of the reader path's Redis calls, by call.",
    ["call"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CIRCUIT_OPEN = Gauge(
    "abtest_circuit_open",
    "1 while counting is suspended after a Redis failure (the circuit breaker is open).",
    multiprocess_mode="max",
)


def impressions(outcome: str, reason: str = "", n: int = 1) -> None:
    """Record ``n`` impressions with this outcome and reason."""
    IMPRESSIONS.labels(outcome, reason).inc(n)


def clicks(outcome: str, reason: str = "", n: int = 1) -> None:
    """Record ``n`` clicks with this outcome and reason."""
    CLICKS.labels(outcome, reason).inc(n)


def circuit(is_open: bool) -> None:
    """Record the circuit breaker's state."""
    CIRCUIT_OPEN.set(1 if is_open else 0)
