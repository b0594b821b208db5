"""Not waiting on a sick Redis: a circuit breaker and a rate-limited outage log.

When a counting call to Redis fails or times out, every reader behind it
would otherwise wait out the same timeout.  :class:`CircuitBreaker` opens on
the first failure: while it is open the service does not try to count (its
readers are served at once, uncounted, reason ``circuit-open``), and one
background thread probes Redis every ``backoff`` seconds; the first probe
that answers closes it.

:class:`OutageLog` keeps an outage from writing one WARNING per reader: at
most one line per interval, the next one saying how many were held back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from . import metrics
from .forks import reset_after_fork

__all__ = ["CircuitBreaker", "OutageLog"]

log = logging.getLogger(__name__)


class CircuitBreaker:
    """Open after a failure; closed again by the first background probe that succeeds.

    ``probe`` is any call that raises when Redis is not answering (a PING on
    a connection with a short timeout).  ``background=False`` starts no
    probing thread: the caller probes with :meth:`probe_now` (tests).

    Thread-safe; fork-safe: a forked child starts closed, with no thread (its
    first failure starts its own).
    """

    def __init__(
        self,
        backoff: float,
        probe: Callable[[], object],
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ):
        if backoff <= 0:
            raise ValueError("the back-off must be positive")
        self.backoff = backoff
        self.probe = probe
        self.clock = clock
        self.background = background
        #: True while open; the one attribute the reader path reads.
        self._open = False
        self._opened_at = 0.0
        self._last_error = ""
        self._prober: threading.Thread | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        reset_after_fork(self)

    def allow(self) -> bool:
        """Whether to try Redis now (False while the breaker is open)."""
        return not self._open

    @property
    def is_open(self) -> bool:
        return self._open

    def open_for(self) -> float:
        """Seconds since the breaker opened (0 while closed)."""
        return self.clock() - self._opened_at if self._open else 0.0

    def failed(self, error: object = None) -> None:
        """A Redis call failed or timed out: open, and start probing (once)."""
        with self._lock:
            if self._open:
                return
            self._open = True
            self._opened_at = self.clock()
            self._last_error = str(error) if error is not None else ""
            thread = self._new_prober()
        metrics.circuit(True)
        log.warning(
            "Redis did not answer (%s): readers are served uncounted; retrying every %g s",
            self._last_error or "failed",
            self.backoff,
        )
        if thread is not None:
            thread.start()

    def succeeded(self) -> None:
        """A Redis call succeeded: close if open (cheap when closed)."""
        if self._open:
            self._close()

    def probe_now(self) -> bool:
        """Probe once; close on success.  Whether the breaker is closed afterwards."""
        try:
            self.probe()
        except Exception as error:  # whatever the probe raises means "not yet"
            self._last_error = str(error)
            return False
        self._close()
        return True

    def stop(self) -> None:
        """Stop probing (shutdown, tests); the breaker stays as it is."""
        self._stopped.set()

    def _close(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
            down = self.clock() - self._opened_at
        metrics.circuit(False)
        log.warning("Redis answers again after %.1f s: counting resumed", down)

    def _probe_until_closed(self, stopped: threading.Event) -> None:
        try:
            while not stopped.wait(self.backoff):
                if not self._open or self.probe_now():
                    return
        finally:
            with self._lock:
                if self._prober is threading.current_thread():
                    self._prober = None
            # A failure that came in after the last probe but before this
            # thread let go found a prober running and started none.
            if self._open and not stopped.is_set():
                self._restart_prober()

    def _restart_prober(self) -> None:
        with self._lock:
            thread = self._new_prober() if self._open else None
        if thread is not None:
            thread.start()

    def _new_prober(self) -> threading.Thread | None:
        """The probing thread to start, or None if one runs (call with the lock held)."""
        if not self.background or self._prober is not None:
            return None
        self._prober = threading.Thread(
            target=self._probe_until_closed,
            args=(self._stopped,),
            name="abtest-breaker",
            daemon=True,
        )
        return self._prober

    def _after_fork(self) -> None:
        """In a forked child: closed, no prober (the parent's thread is not here)."""
        self._lock = threading.Lock()
        self._open = False
        self._opened_at = 0.0
        self._prober = None
        self._stopped = threading.Event()


class OutageLog:
    """At most one WARNING per ``interval`` seconds; the next says how many were held back.

    For lines that repeat once per request during an outage ("served
    uncounted: Redis unavailable"): the first is written at once, the
    similar ones in the following ``interval`` are counted, and the first
    line after that ends with "(and 5,761 more in the last 10 s)".
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._written_at = -float("inf")
        self._held = 0
        self._lock = threading.Lock()
        reset_after_fork(self)

    def warning(self, message: str, *args: object) -> None:
        """Log ``message % args`` as a WARNING unless one was written within ``interval``."""
        now = self.clock()
        with self._lock:
            since = now - self._written_at
            if since < self.interval:
                self._held += 1
                return
            held, self._held, self._written_at = self._held, 0, now
        if held:
            self.logger.warning(
                message + " (and %s more in the last %s s)", *args, f"{held:,}", f"{since:.0f}"
            )
        else:
            self.logger.warning(message, *args)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._written_at = -float("inf")
        self._held = 0
