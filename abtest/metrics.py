"""Prometheus metrics: requests, what the service counted, what it did not and why, Redis.

The service code records through the functions here; ``/metrics``
(:mod:`abtest.web.ops`) exposes them.  Recording costs a dict lookup and an
add (the labelled child is looked up once and kept), cheap enough for the
reader path.

Under ``abtest serve`` several worker processes serve (granian's, or gunicorn's
with ``--server gunicorn``): :func:`prepare_multiprocess` (called in the
master, before the app is built and the workers fork) puts prometheus-client
in its multiprocess mode, each process writing its values to a file of its
own in a fresh directory, and ``/metrics`` reads them all, so every figure is
the whole server's.  A dead worker's circuit state is dropped by the master
(:func:`worker_exited` from gunicorn's ``child_exit`` hook; under granian,
which has no such hook, :func:`abtest.server.forget_dead_workers` every
second); its counts stay in the totals.  Other modules read the metric objects as attributes of this
module (``metrics.REDIS_SECONDS``), never ``from abtest.metrics import ...``:
:func:`prepare_multiprocess` rebuilds them.

Metrics (every name starts ``abtest_``):

- ``abtest_http_requests_total{route, status}``: responses by route (the Flask
  endpoint, e.g. ``reader.front``, ``api.assignment``; ``unmatched`` for a
  path no route matches, so the label's values are bounded) and status code;
- ``abtest_impressions_total{outcome, reason}`` and
  ``abtest_clicks_total{outcome, reason}``:

  - ``counted``: Redis counted it (reason empty);
  - ``uncounted``: the reader was served but nothing was counted because the
    service could not count it: ``redis-unavailable`` (the call failed or
    timed out), ``circuit-open`` (not tried during the back-off after a
    failure), ``late`` (the counting script ran after the request's deadline),
    ``edited`` (the story's text changed a moment ago: counting waits until
    no worker can still serve the old text);
  - ``excluded``: deliberately not counted: ``bot``, ``prefetch``,
    ``rate-limited`` (past the client's budget);

- ``abtest_seen_impressions_total{outcome, reason}``: the impressions seen
  beacons reported, with the outcomes above, ``repeat`` (uncounted: this
  reader's was counted already) and ``refused`` (the beacon was refused:
  ``forged``, a token this service did not sign; ``foreign``, a token issued
  to another browser);
- ``abtest_quality_clicks_total{outcome, reason}``: engaged-time beacons past
  the threshold: ``counted``, or ``uncounted`` with ``not-clicked`` (no counted
  click of this reader's, or its quality click counted already) or a reason
  above;
- ``abtest_redis_seconds{call}``: a histogram of the reader path's Redis calls;
- ``abtest_circuit_open``: 1 while any live worker has stopped counting after
  a Redis failure (the circuit breaker is open), else 0.
"""

from __future__ import annotations

import atexit
import os
import shutil
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from .forks import process_alive

__all__ = [
    "REGISTRY",
    "REQUESTS",
    "IMPRESSIONS",
    "CLICKS",
    "REDIS_SECONDS",
    "CIRCUIT_OPEN",
    "MULTIPROC_ENV",
    "impressions",
    "clicks",
    "redis_seconds",
    "circuit",
    "request_child",
    "request_children",
    "prepare_multiprocess",
    "multiprocess_dir",
    "worker_exited",
    "exposition",
]

#: prometheus-client's switch to multiprocess mode: read when it is first
#: imported, and when a metric value is made.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The route label of a request no route matched (a 404 or 405).
UNMATCHED = "unmatched"

_REDIS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# The labelled children, looked up once each: ``labels()`` takes a lock and
# checks its arguments on every call.  Cleared (in place: the request
# middleware holds this dict) when the metrics are rebuilt.
#: ``(endpoint, status line) -> child`` of REQUESTS.
request_children: dict = {}
_impressions: dict = {}
_clicks: dict = {}
_seen: dict = {}
_quality: dict = {}
_redis: dict = {}

_multiprocess_dir: Path | None = None


def _build() -> None:
    """Make the metrics, with the value class prometheus-client uses now."""
    global REGISTRY, REQUESTS, IMPRESSIONS, CLICKS, SEEN, QUALITY, REDIS_SECONDS, CIRCUIT_OPEN
    REGISTRY = CollectorRegistry()
    REQUESTS = Counter(
        "abtest_http_requests",
        "HTTP responses by route (the Flask endpoint; 'unmatched' when none) and status code.",
        ["route", "status"],
        registry=REGISTRY,
    )
    IMPRESSIONS = Counter(
        "abtest_impressions",
        "Reader impressions by outcome (counted, uncounted, excluded) and reason.",
        ["outcome", "reason"],
        registry=REGISTRY,
    )
    CLICKS = Counter(
        "abtest_clicks",
        "Reader clicks by outcome (counted, uncounted, excluded) and reason.",
        ["outcome", "reason"],
        registry=REGISTRY,
    )
    SEEN = Counter(
        "abtest_seen_impressions",
        "Impressions reported seen by beacons, by outcome and reason.",
        ["outcome", "reason"],
        registry=REGISTRY,
    )
    QUALITY = Counter(
        "abtest_quality_clicks",
        "Quality clicks reported by engaged-time beacons, by outcome and reason.",
        ["outcome", "reason"],
        registry=REGISTRY,
    )
    REDIS_SECONDS = Histogram(
        "abtest_redis_seconds",
        "Time of the reader path's Redis calls, by call.",
        ["call"],
        buckets=_REDIS_BUCKETS,
        registry=REGISTRY,
    )
    CIRCUIT_OPEN = Gauge(
        "abtest_circuit_open",
        "1 while counting is suspended after a Redis failure (the circuit breaker is open).",
        # The largest over live workers: a worker that died with its circuit
        # open no longer counts once the master has dropped it (worker_exited
        # under gunicorn, abtest.server.forget_dead_workers under granian).
        multiprocess_mode="livemax",
        registry=REGISTRY,
    )
    for children in (request_children, _impressions, _clicks, _seen, _quality, _redis):
        children.clear()


_build()


def impressions(outcome: str, reason: str = "", n: int = 1) -> None:
    """Record ``n`` impressions with this outcome and reason."""
    child = _impressions.get((outcome, reason))
    if child is None:
        child = _impressions[outcome, reason] = IMPRESSIONS.labels(outcome, reason)
    child.inc(n)


def clicks(outcome: str, reason: str = "", n: int = 1) -> None:
    """Record ``n`` clicks with this outcome and reason."""
    child = _clicks.get((outcome, reason))
    if child is None:
        child = _clicks[outcome, reason] = CLICKS.labels(outcome, reason)
    child.inc(n)


def _add(children: dict, counter: Counter, outcome: str, reason: str, n: int) -> None:
    child = children.get((outcome, reason))
    if child is None:
        child = children[outcome, reason] = counter.labels(outcome, reason)
    child.inc(n)


def seen(outcome: str, reason: str = "", n: int = 1) -> None:
    """Record ``n`` impressions reported seen with this outcome and reason."""
    _add(_seen, SEEN, outcome, reason, n)


def quality(outcome: str, reason: str = "") -> None:
    """Record one quality click reported, with this outcome and reason."""
    _add(_quality, QUALITY, outcome, reason, 1)


def redis_seconds(call: str, seconds: float) -> None:
    """Record how long one Redis call took (``REDIS_SECONDS.labels(call).observe(seconds)``)."""
    child = _redis.get(call)
    if child is None:
        child = _redis[call] = REDIS_SECONDS.labels(call)
    child.observe(seconds)


def circuit(is_open: bool) -> None:
    """Record the circuit breaker's state."""
    CIRCUIT_OPEN.set(1 if is_open else 0)


def request_child(endpoint: str | None, status: str):
    """The REQUESTS child for a response, kept in :data:`request_children`.

    ``status`` is the WSGI status line (``"200 OK"``); the label is its code.
    """
    child = REQUESTS.labels(endpoint or UNMATCHED, status[:3])
    request_children[endpoint, status] = child
    return child


# -- several processes -----------------------------------------------------


def multiprocess_dir() -> Path | None:
    """The directory the processes write their values to, or None in one process."""
    return _multiprocess_dir


def _remove(directory: Path, owner: int) -> None:
    # atexit handlers run in forked workers too: only the master removes it.
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


def prepare_multiprocess(data_dir: Path) -> Path:
    """Switch to prometheus-client's multiprocess mode; call in the master before forking.

    The values go to ``<data_dir>/metrics/<this pid>``, emptied first (a
    container's master often has the same pid each run); directories left by
    masters that are no longer running are removed, and this one is when
    this process exits.  The metrics are rebuilt so that even those already
    made take the multiprocess value class.  Returns the directory.
    """
    global _multiprocess_dir
    root = Path(data_dir) / "metrics"
    directory = root / str(os.getpid())
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old == directory or (old.name.isdigit() and not process_alive(int(old.name))):
            shutil.rmtree(old, ignore_errors=True)
    directory.mkdir(mode=0o700)
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()
    _multiprocess_dir = directory
    _build()
    # The master's 0 makes the circuit's state a sample from the start (a
    # gauge no process has set is missing from a multiprocess scrape).
    circuit(False)
    atexit.register(_remove, directory, os.getpid())
    return directory


def worker_exited(pid: int) -> None:
    """A worker died (gunicorn's ``child_exit``): forget its live gauges; its counts remain."""
    if _multiprocess_dir is not None:
        multiprocess.mark_process_dead(pid, str(_multiprocess_dir))


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus's text format, every process's together, and its content type."""
    if _multiprocess_dir is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(_multiprocess_dir))
    return generate_latest(registry), CONTENT_TYPE_LATEST


# Started with the switch already set (a server run by hand on abtest.wsgi:app,
# granian or gunicorn, with PROMETHEUS_MULTIPROC_DIR in its environment): the
# values are in that directory.
if os.environ.get(MULTIPROC_ENV) and os.path.isdir(os.environ[MULTIPROC_ENV]):
    _multiprocess_dir = Path(os.environ[MULTIPROC_ENV])
