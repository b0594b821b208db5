"""Webhooks: editors get word when a test is safe to stop, has a proven winner, or Redis lost data.

Two kinds of subscriber: the newsroom's URL (``ABTEST_WEBHOOK_URL``), told about
every story, and a story's own URL, set by an editor on its dashboard page
(kept in the experiment's meta hash; setting and removing it are audited).
Each gets a Slack-compatible JSON POST (:func:`payload`)::

    {"text": "Safe to stop: “Title” (slug). <the verdict> <link>",
     "event": "safe-to-stop", "experiment": "slug", "title": "Title",
     "verdict": "<the verdict, as the dashboard words it>",
     "url": "https://news.example.com/dashboard/slug"}

Events (:data:`EVENTS`): ``proven-winner`` (the anytime-valid test proves one
headline better than every other), ``safe-to-stop`` (choosing now costs less
than the threshold of caring: the verdict's "Safe to stop"), both for a running
test, and ``data-lost`` (Redis came back empty, :mod:`abtest.watch`).

**Noticing, off the request path.**  :class:`Notifier` evaluates every
``interval`` seconds in one background thread per process, started with the
data-loss watch.  A short Redis lock (``abtest:webhooks:evaluating``, held for
the interval) lets one process evaluate per interval across every worker and
server.  An evaluation reads the experiments and their webhook URLs, and for
each running test with a subscriber and an event not yet sent makes its report
(the dashboard's statistics without the forecast of readers to a call, which
neither the events nor their verdicts need; cached per counts, so a quiet test
costs nothing).  The loss record (``abtest:{instance}:data-lost``) is read in
the same round trip.

**Exactly once.**  Whoever evaluates, and however many at once, an event is
sent by the one process whose ``HSETNX abtest:{slug}:notified <event>`` wrote
the field; the others see it and send nothing.  The field stays for the test's
round: a reopened test starts a new round (the store deletes the hash), so
"safe to stop" may be sent again after a reopen, and never twice within one.
Redis losing its data is sent by the process whose ``HSETNX`` of
``webhook_sent`` on the loss record wrote it; the watch replaces that record at
each new loss, and a loss an editor has acknowledged is not sent.

**Delivery.**  :class:`Sender`, one daemon thread per process (fork-safe),
posts with the standard library's urllib: :data:`TIMEOUT` seconds per try,
tries at 0, 10 and 60 seconds (:data:`DELAYS`).  A 2xx ends it, delivered; a
3xx (redirects are not followed) or a 4xx other than 429 ends it, failed;
429, 5xx and no answer are tried again until the tries run out.  Every try
lands in the experiment's audit log (action ``webhook``: the event, the URL's
host, the HTTP status or the error, the outcome); a try for the newsroom's URL
about Redis losing data, which belongs to no story, is logged only.  A URL is
never logged or shown whole (a Slack webhook URL is its own secret): only its
host.

**URLs** (:func:`check_url`): ``http`` or ``https`` with a host, no user name
or password, at most 2,048 characters.  In production only ``https``, except
to this machine (``localhost``, ``127.0.0.1``, ``[::1]``: a relay that never
leaves the host).
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

import redis
from werkzeug.routing import BuildError

from . import keys, verdicts
from .forks import reset_after_fork
from .model import RUNNING
from .report import ExperimentReport
from .store import REDIS_ERRORS, StoreError

__all__ = [
    "PROVEN_WINNER",
    "SAFE_TO_STOP",
    "DATA_LOST",
    "EVENTS",
    "EVENT_NAMES",
    "InvalidWebhook",
    "check_url",
    "host_of",
    "events_holding",
    "payload",
    "post",
    "outcome",
    "Answer",
    "Delivery",
    "Sender",
    "Notifier",
    "Subscription",
    "notifier",
    "init_app",
    "DELAYS",
    "TIMEOUT",
]

log = logging.getLogger(__name__)

PROVEN_WINNER = "proven-winner"
SAFE_TO_STOP = "safe-to-stop"
DATA_LOST = "data-lost"
#: Every event, in the order one evaluation sends them.
EVENTS = (PROVEN_WINNER, SAFE_TO_STOP, DATA_LOST)
#: Each event as editors read it (the messages, the audit log).
EVENT_NAMES = {
    PROVEN_WINNER: "Proven winner",
    SAFE_TO_STOP: "Safe to stop",
    DATA_LOST: "Redis lost data",
}

#: Seconds before the second and the third try: three tries over a minute.
DELAYS = (10.0, 50.0)
#: Seconds a try waits to connect, and then for each read.
TIMEOUT = 5.0
#: Deliveries waiting in one process at most; more are dropped (and logged).
QUEUE_LIMIT = 1000
#: Outcomes of one try, as the audit log records them.
DELIVERED, RETRYING, FAILED = "delivered", "retrying", "failed"

MAX_URL_LENGTH = 2048
#: Hosts plain http is allowed to in production: this machine.
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})

#: The loss record's field, written once by the process that sends about it.
_LOSS_SENT = "webhook_sent"


# -- URLs ------------------------------------------------------------------------


class InvalidWebhook(ValueError):
    """A webhook URL the service will not post to; the message says why, for editors."""


def check_url(url: str, *, production: bool) -> str:
    """``url`` stripped, if the service may post to it; else :class:`InvalidWebhook`."""
    url = (url or "").strip()
    if not url:
        raise InvalidWebhook("give the webhook's URL, like https://hooks.slack.com/services/...")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhook(f"a webhook URL must be at most {MAX_URL_LENGTH:,} characters")
    if any(character.isspace() or ord(character) < 32 for character in url):
        raise InvalidWebhook("a webhook URL has no spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a malformed port raises here)
    except ValueError:
        raise InvalidWebhook(
            "that is not a URL: give one like https://hooks.example.com/…"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhook(
            "a webhook URL starts with https:// and names a host, "
            "like https://hooks.slack.com/services/..."
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhook("a webhook URL must not carry a user name or password")
    if production and parts.scheme != "https" and parts.hostname not in LOOPBACK:
        raise InvalidWebhook(
            "in production a webhook URL must use https:// (plain http:// only to this "
            "machine, localhost)"
        )
    return url


def host_of(url: str | None) -> str | None:
    """The URL's host, the only part of it ever logged or shown."""
    if not url:
        return None
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


# -- events and payloads ------------------------------------------------------------


def events_holding(report: ExperimentReport) -> frozenset[str]:
    """The test events that hold for ``report`` now: exactly when the verdict
    (:func:`abtest.verdicts.verdict`) claims a proven winner, and when its stop
    advice is "Safe to stop"."""
    stats = report.stats
    kind = verdicts.verdict(report).kind
    holding = set()
    if kind == "proven":
        holding.add(PROVEN_WINNER)
        winner = stats.proven_winner()
        if stats.variants[winner].expected_loss < stats.decision.threshold:
            holding.add(SAFE_TO_STOP)
    elif kind in ("same", "safe"):
        holding.add(SAFE_TO_STOP)
    return frozenset(holding)


def _slack(text: str) -> str:
    """Text as Slack reads it: its three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(
    event: str,
    *,
    slug: str | None,
    title: str | None,
    verdict: str | None,
    url: str | None,
    message: str,
) -> dict:
    """The JSON body: Slack's ``text`` (the event, the story, ``message``, the link)
    and the same as fields for other receivers."""
    story = f"“{title}” ({slug})" if slug else ""
    text = f"{EVENT_NAMES[event]}: {story}{'. ' if story else ''}{message}"
    if url:
        text += f" {url}"
    return {
        "text": _slack(text),
        "event": event,
        "experiment": slug,
        "title": title,
        "verdict": verdict,
        "url": url,
    }


# -- delivery ----------------------------------------------------------------------


@dataclass
class Delivery:
    """One message to one URL, and the tries made so far."""

    url: str
    body: bytes
    event: str
    #: Whose audit log records the tries (None: logged only).
    slug: str | None
    #: ``experiment`` (the story's own URL) or ``global`` (``ABTEST_WEBHOOK_URL``).
    scope: str
    tries: int = 0
    key: int = field(default_factory=itertools.count().__next__)

    @property
    def host(self) -> str | None:
        return host_of(self.url)


class Answer(NamedTuple):
    """What one try got: the HTTP status, or why there was none."""

    status: int | None
    error: str | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect ends the delivery: following it would drop the body (urllib turns
    a redirected POST into a GET) and send the message where the editor did not say."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)
_USER_AGENT = "abtest-webhooks/1"


def post(url: str, body: bytes, timeout: float) -> Answer:
    """POST ``body`` (JSON) to ``url`` once; never raises for a network failure."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Answer(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return Answer(error.code)
    except urllib.error.URLError as error:
        return Answer(None, _reason(error.reason))
    except (OSError, http.client.HTTPException, ValueError) as error:
        return Answer(None, _reason(error))


def _reason(error: object) -> str:
    """Why a try got no answer, in a few words that never hold the URL."""
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[:100]
    return (str(error) or type(error).__name__)[:100]


def outcome(answer: Answer, tries: int, most: int) -> str:
    """:data:`DELIVERED`, :data:`RETRYING` or :data:`FAILED` after try ``tries`` of ``most``."""
    status = answer.status
    if status is not None and 200 <= status < 300:
        return DELIVERED
    retryable = status is None or status == 429 or status >= 500
    return RETRYING if retryable and tries < most else FAILED


class Sender:
    """Deliveries, tried in one daemon thread per process (started by the first).

    ``record(delivery, answer, outcome)`` is called after every try, in the
    sender's thread.  ``delays`` are the waits before each further try (so
    ``len(delays) + 1`` tries in all); ``post`` makes one try.  Fork-safe: a
    forked child starts empty, with no thread (its first delivery starts one).
    """

    def __init__(
        self,
        record: Callable[[Delivery, Answer, str], object],
        *,
        delays: Sequence[float] = DELAYS,
        timeout: float = TIMEOUT,
        post: Callable[[str, bytes, float], Answer] = post,
        clock: Callable[[], float] = time.monotonic,
        limit: int = QUEUE_LIMIT,
    ):
        self.record = record
        self.delays = tuple(delays)
        self.timeout = timeout
        self.post = post
        self.clock = clock
        self.limit = limit
        self._reset()
        reset_after_fork(self)

    @property
    def most(self) -> int:
        """Tries per delivery."""
        return len(self.delays) + 1

    def _reset(self) -> None:
        self._due: list[tuple[float, int, Delivery]] = []
        self._busy = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def send(self, delivery: Delivery) -> bool:
        """Queue a first try now; False (dropped, logged) when the queue is full."""
        with self._changed:
            if len(self._due) >= self.limit:
                log.warning(
                    "webhook to %s dropped (%s): %d deliveries already waiting",
                    delivery.host,
                    delivery.event,
                    len(self._due),
                )
                return False
            heapq.heappush(self._due, (self.clock(), delivery.key, delivery))
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(
                    target=_send_until,
                    args=(weakref.ref(self), self._stopped),
                    name="abtest-webhooks",
                    daemon=True,
                )
                self._thread.start()
            self._changed.notify_all()
        return True

    def pending(self) -> int:
        """Deliveries waiting for a try or being tried."""
        with self._changed:
            return len(self._due) + self._busy

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is waiting or being tried (at most ``timeout`` s)."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._due and not self._busy, timeout)

    def stop(self) -> None:
        """Stop the thread (shutdown, tests); waiting deliveries are dropped."""
        with self._changed:
            self._stopped.set()
            self._changed.notify_all()

    def _take(self, most_wait: float) -> Delivery | None:
        """The next delivery that is due, waiting for one at most ``most_wait`` s."""
        deadline = self.clock() + most_wait
        with self._changed:
            while not self._stopped.is_set():
                now = self.clock()
                if self._due and self._due[0][0] <= now:
                    _, _, delivery = heapq.heappop(self._due)
                    self._busy += 1
                    return delivery
                if now >= deadline:
                    return None
                due = self._due[0][0] if self._due else deadline
                self._changed.wait(max(0.0, min(due, deadline) - now))
        return None

    def _try(self, delivery: Delivery) -> None:
        try:
            answer = self.post(delivery.url, delivery.body, self.timeout)
            delivery.tries += 1
            result = outcome(answer, delivery.tries, self.most)
            try:
                self.record(delivery, answer, result)
            except Exception:  # a lost audit entry must not stop the deliveries
                log.exception("recording a webhook try failed")
            if result == RETRYING:
                with self._changed:
                    due = self.clock() + self.delays[delivery.tries - 1]
                    heapq.heappush(self._due, (due, delivery.key, delivery))
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    def _after_fork(self) -> None:
        # The parent's deliveries are the parent's to send.
        self._reset()


def _send_until(ref: weakref.ref, stopped: threading.Event) -> None:
    """The sender's thread: holds it weakly, so a discarded app's sender ends with it."""
    while not stopped.is_set():
        sender = ref()
        if sender is None:
            return
        delivery = sender._take(most_wait=1.0)
        if delivery is not None:
            sender._try(delivery)
        del sender, delivery


# -- noticing ----------------------------------------------------------------------


class Subscription(NamedTuple):
    """Who hears about one story, by host: its own URL's and the newsroom's."""

    host: str | None
    global_host: str | None


class _Known(NamedTuple):
    """A story's URL as last read, kept to tell its subscriber if Redis loses it."""

    url: str
    title: str
    seen_at: float


class Notifier:
    """One process's webhook evaluator and sender (:meth:`evaluate` is one look).

    ``global_url`` is ``ABTEST_WEBHOOK_URL`` (checked already); ``link(slug)``
    the dashboard page's absolute URL (``link(None)``: the list), or None
    without ``ABTEST_PUBLIC_URL``.  :meth:`start` starts the evaluating thread
    (``abtest serve`` starts it in every worker, with the watch).  Fork-safe.
    """

    #: Seconds between evaluations (each process tries; one evaluates per interval).
    INTERVAL = 5.0
    #: A story's URL is remembered this long after it was last read (for a loss).
    REMEMBER = 600.0

    def __init__(
        self,
        service,
        *,
        global_url: str | None = None,
        production: bool = False,
        link: Callable[[str | None], str | None] = lambda slug: None,
        alpha: float = 0.05,
        interval: float = INTERVAL,
        sender: Sender | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.service = service
        self.global_url = global_url
        self.production = production
        self.link = link
        self.alpha = alpha
        self.interval = interval
        self.clock = clock
        self.sender = sender or Sender(self._record)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._known: dict[str, _Known] = {}
        #: Each running test's last report: (counts and settings, report).
        self._reports: dict[str, tuple[tuple, ExperimentReport]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        reset_after_fork(self)

    @property
    def redis(self) -> redis.Redis:
        return self.service.store.redis

    # -- editors ----------------------------------------------------------------

    def subscription(self, slug: str) -> Subscription:
        """Who hears about ``slug``, by host (None where unknown: Redis not answering)."""
        try:
            url = self.service.store.webhooks([slug])[slug]
        except StoreError:
            url = None
        return Subscription(host_of(url), host_of(self.global_url))

    def set_url(self, slug: str, url: str | None, editor: str) -> str | None:
        """Set ``slug``'s webhook URL (None: remove it), audited; the host now
        subscribed.  Raises :class:`InvalidWebhook`, :class:`LookupError` (no such
        experiment) or :class:`~abtest.store.StoreError`."""
        checked = None if url is None else check_url(url, production=self.production)
        before = self.service.store.webhooks([slug])[slug]
        entry = {
            "action": "webhook-url",
            "editor": editor,
            "at": self.clock(),
            "host_from": host_of(before),
            "host": host_of(checked),
        }
        if not self.service.store.set_webhook(slug, checked, entry):
            raise LookupError(slug)
        log.info("editor %s set the webhook of %s to %s", editor, slug, entry["host"] or "none")
        return entry["host"]

    # -- evaluating -------------------------------------------------------------

    def evaluate(self, *, lock: bool = True) -> int:
        """One evaluation: send each event that holds and no process has sent.

        With ``lock``, only if no other process evaluated within the interval.
        Returns how many deliveries were queued.  Raises
        :class:`~abtest.store.StoreError` or one of
        :data:`~abtest.store.REDIS_ERRORS` when Redis does not answer.
        """
        if lock and not self.redis.set(
            keys.WEBHOOKS_EVALUATING, self.name, nx=True, px=max(1, int(self.interval * 1000))
        ):
            return 0
        with self._lock:
            experiments = self.service.fresh_all()
            urls = self.service.store.webhooks([e.slug for e in experiments])
            running = [e for e in experiments if e.status == RUNNING]
            pipe = self.redis.pipeline(transaction=False)
            for experiment in running:
                pipe.hkeys(keys.notified(experiment.slug))
            pipe.hgetall(keys.DATA_LOST)
            *sent, loss = pipe.execute()
            remembered = self._remember(experiments, urls)
            for slug in set(self._reports) - {e.slug for e in running}:
                del self._reports[slug]
            queued = self._data_lost(loss, remembered, {e.slug for e in experiments})
            for experiment, done in zip(running, sent, strict=True):
                queued += self._test_events(experiment, urls.get(experiment.slug), set(done))
        return queued

    def _targets(self, url: str | None) -> list[tuple[str, str]]:
        """(URL, scope) for a story: its own, then the newsroom's (once if they are one)."""
        targets = [(url, "experiment")] if url else []
        if self.global_url and self.global_url != url:
            targets.append((self.global_url, "global"))
        return targets

    def _test_events(self, experiment, url: str | None, done: set[str]) -> int:
        targets = self._targets(url)
        pending = [event for event in (PROVEN_WINNER, SAFE_TO_STOP) if event not in done]
        if not targets or not pending:
            return 0
        report = self._report(experiment)
        holding = events_holding(report)
        queued = 0
        for event in pending:
            if event in holding and self._claim(keys.notified(experiment.slug), event):
                verdict = verdicts.verdict(report).text
                body = payload(
                    event,
                    slug=experiment.slug,
                    title=report.title,
                    verdict=verdict,
                    url=self.link(experiment.slug),
                    message=verdict,
                )
                queued += self._queue(event, experiment.slug, body, targets)
        return queued

    def _report(self, experiment) -> ExperimentReport:
        """The test's report without the forecast of readers to a call, cached per
        counts and settings.

        Neither event nor its verdict needs the forecast (the verdict words it
        only while the test must keep running), and it is most of a report's
        cost; the service's own reports always carry it, and are cached in the
        process that made them, while the evaluating process changes from one
        interval to the next.
        """
        from . import stats  # scipy: imported before the fork under `abtest serve`

        key = (
            experiment.impressions,
            experiment.clicks,
            experiment.allocation,
            experiment.caring,
            experiment.definition,
        )
        cached = self._reports.get(experiment.slug)
        if cached is not None and cached[0] == key:
            return cached[1]
        analysis = stats.build_report(
            experiment.impressions,
            experiment.clicks,
            alpha=self.alpha,
            mode=experiment.allocation,
            relative_threshold=experiment.caring,
            forecast=False,
        )
        report = ExperimentReport.of(experiment, analysis)
        self._reports[experiment.slug] = (key, report)
        return report

    def _claim(self, key: str, event: str) -> bool:
        """Whether this process is the one to send ``event`` (``HSETNX``: one ever wins)."""
        mark = json.dumps({"at": self.clock(), "by": self.name}, separators=(",", ":"))
        return bool(self.redis.hsetnx(key, event, mark))

    def _remember(self, experiments, urls: dict[str, str | None]) -> dict[str, _Known]:
        """Fold this read into the URLs remembered; the memory as it was before."""
        before = dict(self._known)
        now = self.clock()
        for experiment in experiments:
            url = urls.get(experiment.slug)
            if url:
                self._known[experiment.slug] = _Known(url, experiment.definition.title, now)
            else:
                self._known.pop(experiment.slug, None)
        for slug, known in list(self._known.items()):
            if now - known.seen_at > self.REMEMBER:
                del self._known[slug]
        return before

    def _data_lost(self, loss: dict[str, str], remembered: dict[str, _Known], now: set[str]) -> int:
        """Tell every subscriber once about a loss no editor has acknowledged yet."""
        if not loss.get("noticed_at") or loss.get("acknowledged_by") or _LOSS_SENT in loss:
            return 0
        if not self._claim(keys.DATA_LOST, _LOSS_SENT):
            return 0
        queued = 0
        if self.global_url:
            message = (
                "every count, and every story editors made, is gone. "
                "An editor must acknowledge it on the dashboard."
            )
            body = payload(
                DATA_LOST, slug=None, title=None, verdict=None, url=self.link(None), message=message
            )
            queued += self._queue(DATA_LOST, None, body, [(self.global_url, "global")])
        for slug, known in remembered.items():
            if known.url == self.global_url:
                continue
            message = (
                "its counts start again from zero."
                if slug in now
                else "the story and its counts are gone; create it again to keep testing."
            )
            body = payload(
                DATA_LOST,
                slug=slug,
                title=known.title,
                verdict=None,
                url=self.link(slug) if slug in now else self.link(None),
                message=message,
            )
            queued += self._queue(DATA_LOST, slug, body, [(known.url, "experiment")])
            if slug not in now:
                self._known.pop(slug, None)
        return queued

    def _queue(self, event: str, slug: str | None, body: dict, targets) -> int:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        queued = 0
        for url, scope in targets:
            log.info("webhook %s for %s to %s", event, slug or "every story", host_of(url))
            queued += self.sender.send(Delivery(url, data, event, slug, scope))
        return queued

    def _record(self, delivery: Delivery, answer: Answer, result: str) -> None:
        """One try's outcome: a log line, and an entry in the story's audit log."""
        said = str(answer.status) if answer.status is not None else f"no answer ({answer.error})"
        level = logging.INFO if result == DELIVERED else logging.WARNING
        log.log(
            level,
            "webhook %s for %s to %s: %s, %s (try %d of %d)",
            delivery.event,
            delivery.slug or "every story",
            delivery.host,
            said,
            result,
            delivery.tries,
            self.sender.most,
        )
        if delivery.slug is None:
            return
        entry = {
            "action": "webhook",
            "editor": "webhooks",
            "at": self.clock(),
            "event": delivery.event,
            "host": delivery.host,
            "scope": delivery.scope,
            "status": answer.status,
            "error": answer.error,
            "outcome": result,
            "try": delivery.tries,
            "tries": self.sender.most,
        }
        try:
            self.service.store.append_audit(delivery.slug, entry)
        except StoreError as error:
            log.warning("webhook try not audited (Redis: %s)", error)

    # -- the thread ---------------------------------------------------------------

    def start(self) -> Notifier:
        """Evaluate every ``interval`` s in a daemon thread (once per process)."""
        with self._lock:
            if self._thread is None:
                self._stopped = threading.Event()
                self._thread = threading.Thread(
                    target=_evaluate_until,
                    args=(weakref.ref(self), self._stopped, self.interval),
                    name="abtest-webhooks-evaluate",
                    daemon=True,
                )
                self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.sender.stop()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._thread = None
        self._stopped = threading.Event()
        self.name = f"{socket.gethostname()}:{os.getpid()}"


def _evaluate_until(ref: weakref.ref, stopped: threading.Event, interval: float) -> None:
    """The evaluating thread: holds the notifier weakly, like the watch's."""
    failing = False
    while not stopped.wait(interval):
        notifier = ref()
        if notifier is None:
            return
        try:
            notifier.evaluate()
            failing = False
        except (StoreError, *REDIS_ERRORS) as error:
            if not failing:
                log.warning("webhook events not evaluated (Redis: %s)", error)
            failing = True
        except Exception:  # keep evaluating whatever one evaluation hit
            log.exception("a webhook evaluation failed")
        del notifier


# -- the app ------------------------------------------------------------------------


def notifier(app) -> Notifier:
    """The app's notifier (made by :func:`init_app`)."""
    return app.extensions["abtest"]["webhooks"]


def init_app(app) -> None:
    """Give ``app`` its notifier, started and stopped with the data-loss watch, and
    ``webhook_for(slug)`` (a :class:`Subscription`) in the dashboard's templates."""
    from .watch import watch

    extension = app.extensions["abtest"]
    settings = extension["settings"]
    hooks = Notifier(
        extension["service"],
        global_url=settings.webhook_url,
        production=settings.production,
        link=_linker(app, settings.public_url),
        alpha=app.config.get("DASHBOARD_ALPHA", 0.05),
    )
    extension["webhooks"] = hooks
    watch(app).companions.append(hooks)
    app.template_context_processors.setdefault("dashboard", []).append(
        lambda: {"webhook_for": hooks.subscription}
    )


def _linker(app, public_url: str | None) -> Callable[[str | None], str | None]:
    """The dashboard's absolute URLs, from ``ABTEST_PUBLIC_URL`` only (never a request's host)."""
    if not public_url:
        return lambda slug: None

    def link(slug: str | None) -> str | None:
        adapter = app.url_map.bind("localhost")
        try:
            if slug is None:
                return public_url + adapter.build("dashboard.index")
            return public_url + adapter.build("dashboard.experiment", {"slug": slug})
        except BuildError:  # no dashboard in this app
            return None

    return link
