"""Simulated readers against known CTRs: what each allocation mode and stopping rule does.

The allocation runs the service's own sampler (:func:`abtest.bandit.decisions`)
with the service's staleness: a worker rebuilds its posterior from the counts
when it is older than ``Service.COUNTS_MAX_AGE`` (0.1 s), so at ``rate``
readers a second each posterior serves ``rate * max_age`` readers (2 at 20
readers a second) before the next one sees their impressions and clicks (a
click is counted with its impression).  Many runs go at once: within a
refresh window the decisions are independent draws from one posterior per
run, one numpy call for all runs.

Allocations: ``clicks`` and ``winner`` (the two modes), ``uniform`` (each
reader an equal chance of each headline) and ``ideal`` (Thompson sampling
whose posterior is rebuilt after every reader: the best the service's
sampler could do without staleness).

At every look (every ``look_every`` readers) four rules are evaluated, each
a call an editor might act on:

``fixed``
    the dashboard's fixed-sample verdict: the headline with the highest CTR
    is better than every other by the pooled two-proportion z-test,
    Holm-adjusted over all pairs (:mod:`abtest.stats`), at ``alpha``;
``pbest``
    some headline has P(best) >= 0.95;
``proven``
    the anytime-valid call (:mod:`abtest.sequential`);
``safe``
    safe to stop (:mod:`abtest.decision`): the leader's expected loss is
    below the threshold of caring.

For each rule: in how many runs it fired, how often the headline it named
was wrong (for the claims ``fixed``, ``pbest``, ``proven``: not the one
strictly best headline, so any claim in an A/A test is wrong; for ``safe``,
advice rather than a claim: a headline worse than the best), the median
readers until it fired, the realized loss of stopping then (the best true
CTR less the chosen one's, clicks per reader), and the share of runs with a
right call by given checkpoints.

P(best) and the expected loss need the quadrature of :mod:`abtest.posterior`
(about 0.1 ms a call), too slow for every look of every run.  Their normal
approximations are computed at every look and the exact value only where the
approximation comes near the rule's threshold (:data:`NEAR`); the first look
where the exact value passes is the rule's.  tests/test_simulate.py checks
this against the exact value at every look.

Reader signals.  Reader ``i`` arrives at ``i / rate`` seconds, the story's
age.  A slot can be seen by only a share of the readers served it
(``seen``, per headline: a longer headline can push a slot below the fold);
only a reader who saw the headline can click, with its CTR among readers who
saw it (its appeal), halving every ``half_life`` hours as the story ages:
``ctr_v * 0.5 ** (age / half_life)``.  One uniform draw per reader decides
both (seen when below ``seen_v``, clicked when below ``seen_v`` times the
CTR), so a click always comes with a seen impression, and runs without
signals draw exactly what they drew before.  The bandit and the rules count impressions either
``served`` or ``seen`` (the experiment's denominator); each is run and
reported side by side (:class:`DenominatorOutcome`).  The best headline is
the one with the highest appeal; the regret is the clicks lost against
always showing it, and, where seen shares differ, also against always
showing the headline with the most clicks per reader served.

Under decay each headline's CTR is also estimated stratified by hour
(:func:`abtest.stratified.stratify`, the stats document's estimator) beside
the pooled CTR, at every look: how often each names a headline other than
the best, at the end and when its own P(best) >= 0.95 rule calls it (the
normal approximation with each estimate's standard error, once every
headline has :data:`MIN_CLICKS` clicks), and how many readers that call
takes (:class:`EstimateOutcome`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources

import numpy as np
from numpy.polynomial import hermite_e
from scipy import special

from . import bandit, decision
from .posterior import compare as _compare
from .sequential import PRIOR, proven_leader
from .stratified import stratify

__all__ = [
    "ALLOCATIONS",
    "DENOMINATORS",
    "RULES",
    "Counts",
    "RuleOutcome",
    "EstimateOutcome",
    "DenominatorOutcome",
    "AllocationOutcome",
    "ScenarioOutcome",
    "ReplayOutcome",
    "simulate",
    "replay_upworthy",
    "load_upworthy",
    "run_allocation",
    "run_readers",
    "hour_starts",
    "compare_estimates",
]

ALLOCATIONS = ("clicks", "winner", "uniform", "ideal")
RULES = ("fixed", "pbest", "proven", "safe")
DENOMINATORS = ("served", "seen")
PROB_BEST_RULE = 0.95

#: Where the normal approximation sends a look to the exact check, by the
#: fewest clicks or non-clicks of any headline (the approximation is rougher
#: with fewer): (from this many, P(best) at least, expected loss below this
#: many thresholds).  Measured against the quadrature at CTRs near 2%, the
#: approximation's P(best) is within 0.04 below 30 clicks and 0.009 from 30,
#: its expected loss near the threshold within 0.5 thresholds below 30
#: clicks, 0.1 from 30, 0.06 from 60 and 0.02 from 200; the bands are twice that.
NEAR = ((200, 0.94, 1.05), (60, 0.93, 1.12), (30, 0.93, 1.2), (0, 0.87, 2.0))

#: Clicks every headline needs before a P(best) rule on normal estimates may fire:
#: with fewer, a standard error estimated from the clicks themselves is too small
#: (a headline's first clicks, or its lack of them, decide the call).
MIN_CLICKS = 10

#: Runs whose rules are evaluated together (memory: runs x looks x K x 48 floats).
CHUNK = 50

#: Called with the share of the whole job just done (the shares add up to 1).
Progress = Callable[[float], None]

#: A fixed allocation: the readers' indices in, the headline each is served out
#: (the same in every run).
Schedule = Callable[[np.ndarray], np.ndarray]


# -- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleOutcome:
    """What one stopping rule did over the runs of one allocation.

    ``fired`` and ``wrong`` are shares of all runs; ``median_readers`` is over
    the runs where it fired (``None`` if none did); ``realized_loss`` is the
    mean, over those runs, of the best true CTR less the chosen headline's
    (clicks per reader served, at the story's start); ``threshold``
    (``safe`` only) the mean threshold of caring at those stops; ``right_by``
    the share of runs with a right call by each checkpoint (readers).
    """

    rule: str
    fired: float
    wrong: float
    median_readers: float | None
    realized_loss: float | None
    threshold: float | None
    right_by: dict[int, float]


@dataclass(frozen=True)
class EstimateOutcome:
    """One estimate of the CTRs (``pooled`` or ``stratified`` by hour) over the runs.

    ``wrong_at_end`` is the share of runs whose leader under this estimate at
    the last look is not the best headline (a tie at the top names none, and
    counts as wrong).  ``fired``, ``wrong`` and ``median_readers`` are those
    of the rule "the leader has P(best) >= 0.95" under independent normal
    estimates with this estimate's standard errors, once every headline has
    :data:`MIN_CLICKS` clicks, as in :class:`RuleOutcome`.
    """

    estimate: str
    wrong_at_end: float
    fired: float
    wrong: float
    median_readers: float | None


@dataclass(frozen=True)
class DenominatorOutcome:
    """One allocation with the bandit and the rules counting impressions ``served`` or ``seen``.

    ``clicks`` is the mean clicks per run; ``regret`` the mean expected
    clicks lost against always showing the headline with the highest CTR
    among readers who saw it; ``regret_served`` the same against the
    headline with the most clicks per reader served (equal when every
    headline is seen alike); ``share`` each headline's mean share of the
    readers served at the end; ``proven`` and ``safe`` the two calls;
    ``estimates`` pooled against stratified by hour (under decay only).
    """

    denominator: str
    clicks: float
    regret: float
    regret_served: float
    share: tuple[float, ...]
    proven: RuleOutcome
    safe: RuleOutcome
    estimates: dict[str, EstimateOutcome]


@dataclass(frozen=True)
class AllocationOutcome:
    """One allocation over all runs: clicks, regret and the rules.

    ``clicks`` is the mean clicks per run; ``regret`` the mean expected
    clicks lost against always showing the best headline (the sum over
    readers of the best CTR less the shown one's, in clicks per reader
    served); ``share`` each headline's mean share of traffic at the end.
    ``looks``, ``regret_curve`` and ``share_curve`` are the same per look,
    for plots (not in :meth:`to_dict`).  These count impressions served;
    ``denominators`` (with reader signals) has each denominator's figures.
    """

    allocation: str
    clicks: float
    regret: float
    share: tuple[float, ...]
    rules: dict[str, RuleOutcome]
    looks: np.ndarray = field(repr=False, compare=False)
    regret_curve: np.ndarray = field(repr=False, compare=False)
    share_curve: np.ndarray = field(repr=False, compare=False)
    denominators: dict[str, DenominatorOutcome] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {
            "allocation": self.allocation,
            "clicks": self.clicks,
            "regret": self.regret,
            "share": list(self.share),
            "rules": {name: asdict(outcome) for name, outcome in self.rules.items()},
        }
        if self.denominators:
            out["denominators"] = {name: asdict(d) for name, d in self.denominators.items()}
        return out


@dataclass(frozen=True)
class ScenarioOutcome:
    """``seen`` is each headline's share of readers served who see it (1: everyone);
    ``half_life`` the hours in which the CTRs halve (``None``: no decay); readers
    arrive at ``rate`` a second."""

    ctrs: tuple[float, ...]
    readers: int
    runs: int
    look_every: int
    readers_per_refresh: int
    alpha: float
    seed: int
    allocations: dict[str, AllocationOutcome]
    seen: tuple[float, ...] = ()
    half_life: float | None = None
    rate: float = 20.0

    @property
    def hours(self) -> float:
        """The story's age, in hours, when the last reader arrives."""
        return self.readers / (self.rate * 3600.0)

    def to_dict(self) -> dict:
        return {
            "ctrs": list(self.ctrs),
            "seen": list(self.seen),
            "half_life": self.half_life,
            "rate": self.rate,
            "readers": self.readers,
            "runs": self.runs,
            "look_every": self.look_every,
            "readers_per_refresh": self.readers_per_refresh,
            "alpha": self.alpha,
            "seed": self.seed,
            "allocations": {name: a.to_dict() for name, a in self.allocations.items()},
        }


@dataclass(frozen=True)
class ReplayOutcome:
    """The Upworthy replay, per allocation, summed or averaged over the tests.

    ``clicks`` is the total over tests (mean over runs); ``proven``, ``safe``
    and the ``wrong_*`` counts are shares of test runs; ``proven_wrong`` and
    ``safe_wrong`` count the test runs whose call named a worse headline.
    """

    tests: int
    runs: int
    seed: int
    allocations: dict[str, dict]

    def to_dict(self) -> dict:
        return asdict(self)


# -- allocation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """What the readers of every run did, cumulative at every look: arrays (runs, looks, K).

    ``served`` counts the readers served each headline, ``seen`` those of
    them who saw it, ``clicks`` their clicks; ``exposure`` the readers served
    weighted by the CTR's decay when each arrived, so a headline's expected
    clicks are its exposure times its clicks per reader served at age 0.
    Under decay, ``hour_starts`` holds the first reader of every hour of the
    story's age reached, and ``hour_served``, ``hour_seen`` and
    ``hour_clicks`` the counts, cumulative, as each hour starts: (runs,
    hours, K), the first all zeros; without decay they are ``None``.
    """

    served: np.ndarray
    seen: np.ndarray
    clicks: np.ndarray
    exposure: np.ndarray
    hour_starts: np.ndarray | None = None
    hour_served: np.ndarray | None = None
    hour_seen: np.ndarray | None = None
    hour_clicks: np.ndarray | None = None

    def impressions(self, denominator: str) -> np.ndarray:
        """The impressions at every look under ``denominator`` (``served`` or ``seen``)."""
        return self.seen if denominator == "seen" else self.served

    def hour_impressions(self, denominator: str) -> np.ndarray | None:
        """The impressions as each hour starts under ``denominator``."""
        return self.hour_seen if denominator == "seen" else self.hour_served


def readers_per_refresh(rate: float, max_age: float) -> int:
    """Readers one posterior serves: ``rate * max_age``, at least 1."""
    return max(1, round(rate * max_age))


def hour_starts(readers: int, rate: float) -> np.ndarray:
    """The first reader of each hour of the story's age that ``readers`` readers reach.

    Reader ``i`` arrives at ``i / rate`` seconds, so hour ``h`` starts with
    reader ``ceil(3600 h rate)`` (a rounding error of the product is not an
    hour's first reader).
    """
    per_hour = rate * 3600.0
    if per_hour < 1:
        raise ValueError("readers must arrive at least once an hour")
    starts = [0]
    while (start := math.ceil(len(starts) * per_hour - 1e-6)) < readers:
        starts.append(start)
    return np.array(starts, dtype=np.int64)


def run_allocation(
    truth: np.ndarray,
    readers: int,
    allocation: str,
    rng: np.random.Generator,
    *,
    look_every: int = 100,
    refresh: int = 2,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Impressions and clicks at every look: two arrays (runs, looks, K).

    ``progress`` is called with the readers (per run) simulated since its last call.

    ``truth`` holds each run's true CTRs, shape (runs, K).  Look t is after
    ``(t + 1) * look_every`` readers.  ``refresh`` is the readers each
    posterior serves (``ideal`` uses 1).
    """
    counts = run_readers(
        truth, readers, allocation, rng, look_every=look_every, refresh=refresh, progress=progress
    )
    return counts.served, counts.clicks


def run_readers(
    truth: np.ndarray,
    readers: int,
    allocation: str | Schedule,
    rng: np.random.Generator,
    *,
    seen: Sequence[float] | None = None,
    half_life: float | None = None,
    rate: float = 20.0,
    denominator: str = "served",
    look_every: int = 100,
    refresh: int = 2,
    progress: Progress | None = None,
) -> Counts:
    """Every reader of every run: served a headline, seeing it or not, clicking or not.

    ``truth`` holds each run's CTRs among readers who see the headline,
    shape (runs, K); ``seen`` each headline's share of the readers served
    who see it (default: all); ``half_life`` the hours in which the CTRs
    halve (default: no decay), reader ``i`` arriving at ``i / rate``
    seconds.  The bandit counts impressions ``denominator`` (``served`` or
    ``seen``).  ``allocation`` is one of :data:`ALLOCATIONS` or a
    :data:`Schedule`.  Look t is after ``(t + 1) * look_every`` readers;
    ``refresh`` is the readers each posterior serves (``ideal`` uses 1);
    ``progress`` is called with the readers (per run) simulated since its
    last call.
    """
    runs, variants = truth.shape
    looks = readers // look_every
    horizon = looks * look_every
    shares = np.ones(variants) if seen is None else np.asarray(seen, dtype=np.float64)
    gated = bool((shares < 1).any())
    if denominator not in DENOMINATORS:
        raise ValueError(f"denominator must be one of {', '.join(DENOMINATORS)}")
    if allocation == "uniform" and not gated and half_life is None:
        shown = rng.multinomial(look_every, np.full(variants, 1 / variants), size=(runs, looks))
        clicked = rng.binomial(shown, truth[:, None, :])
        if progress:
            progress(horizon)
        served = np.cumsum(shown, axis=1).astype(np.float64)
        return Counts(served, served, np.cumsum(clicked, axis=1).astype(np.float64), served)
    schedule = allocation if callable(allocation) else None
    if schedule is None and allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    mode = "clicks" if allocation in ("ideal", "uniform") or schedule else allocation
    if schedule is not None or allocation == "uniform":
        window = 1000  # no posterior to refresh: as many readers at once as memory allows
    else:
        window = 1 if allocation == "ideal" else refresh
    # A served reader's chance to click at age 0; one uniform draw per reader
    # decides both whether it saw the headline and whether it clicked.
    served_ctr = truth * shares
    per_hour = rate * 3600.0
    starts = None if half_life is None else hour_starts(horizon, rate)
    stops = set(range(look_every, horizon + 1, look_every))
    if starts is not None:
        stops |= set(starts[1:].tolist())
    n = np.zeros((runs, variants))
    k = np.zeros((runs, variants))
    s = np.zeros((runs, variants)) if gated else n
    e = np.zeros((runs, variants)) if half_life is not None else n
    at_looks = [np.empty((runs, looks, variants)) for _ in range(2)]
    at_looks.append(np.empty((runs, looks, variants)) if gated else at_looks[0])
    at_looks.append(np.empty((runs, looks, variants)) if half_life is not None else at_looks[0])
    hours = None if starts is None else np.zeros((3, runs, len(starts), variants))
    hour_index = {} if starts is None else {int(h): j for j, h in enumerate(starts)}
    arms = np.arange(variants)
    rows = np.arange(runs)[:, None]
    done = 0
    for stop in sorted(stops):
        while done < stop:
            size = min(window, stop - done)
            if schedule is not None:
                chosen = np.asarray(schedule(np.arange(done, done + size)))
                choices = np.broadcast_to(chosen, (runs, size))
            elif allocation == "uniform":
                choices = rng.integers(variants, size=(runs, size))
            else:
                impressions = s if denominator == "seen" else n
                choices = bandit.decisions(1.0 + k, 1.0 + impressions - k, size, rng, mode)
            chance = served_ctr[rows, choices]
            if half_life is not None:
                decay = 0.5 ** (np.arange(done, done + size) / (per_hour * half_life))
                chance = chance * decay
            draw = rng.random(choices.shape)
            onehot = choices[..., None] == arms
            n += onehot.sum(axis=1)
            k += (onehot & (draw < chance)[..., None]).sum(axis=1)
            if gated:
                s += (onehot & (draw < shares[choices])[..., None]).sum(axis=1)
            if half_life is not None:
                e += (onehot * decay[:, None]).sum(axis=1)
            done += size
        if done in hour_index:
            for store, counted in zip(hours, (n, s, k), strict=True):
                store[:, hour_index[done]] = counted
        if done % look_every == 0:
            look = done // look_every - 1
            for store, counted in zip(at_looks, (n, k, s, e), strict=True):
                store[:, look] = counted
            if progress:
                progress(look_every)
    served, clicks, seen_at, exposure = at_looks
    if hours is None:
        return Counts(served, seen_at, clicks, exposure)
    return Counts(served, seen_at, clicks, exposure, starts, *hours)


# -- rules ---------------------------------------------------------------------------------


def fixed_sample_winner(n: np.ndarray, k: np.ndarray, alpha: float) -> np.ndarray:
    """The dashboard's fixed-sample winner per experiment (last axis: headlines), -1 if none.

    The headline with the highest CTR, if the pooled two-proportion z-test
    says it is better than every other, Holm-adjusted over all pairs, as
    :mod:`abtest.stats` and :func:`abtest.verdicts.wins` do.
    """
    variants = n.shape[-1]
    first, second = np.triu_indices(variants, k=1)
    n_a, n_b, k_a, k_b = n[..., first], n[..., second], k[..., first], k[..., second]
    defined = (n_a > 0) & (n_b > 0) & (k_a + k_b > 0) & (k_a + k_b < n_a + n_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = (k_b * n_a - k_a * n_b) / (n_a * n_b)  # exact integers before dividing
        pooled = (k_a + k_b) / (n_a + n_b)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
        z = np.where(defined, diff / se, 0.0)
    p = np.where(defined, 2 * special.ndtr(-np.abs(z)), np.inf)
    # Holm over the defined pairs: sorted ascending, p_(i) -> max_{j<=i} (m - j + 1) p_(j).
    m = defined.sum(axis=-1, keepdims=True)
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    rank = np.arange(p.shape[-1])
    with np.errstate(invalid="ignore"):  # (m - rank) * inf past the defined pairs
        scaled = np.where(rank < m, (m - rank) * ranked, np.inf)
    adjusted = np.empty_like(p)
    np.put_along_axis(adjusted, order, np.maximum.accumulate(scaled, axis=-1), axis=-1)
    significant = defined & (adjusted < alpha)
    wins = np.zeros(n.shape)
    for pair, (a, b) in enumerate(zip(first.tolist(), second.tolist(), strict=True)):
        wins[..., a] += significant[..., pair] & (diff[..., pair] < 0)
        wins[..., b] += significant[..., pair] & (diff[..., pair] > 0)
    winner = wins.argmax(axis=-1)
    return np.where(wins.max(axis=-1) == variants - 1, winner, -1)


_HERMITE_NODES, _HERMITE_WEIGHTS = hermite_e.hermegauss(40)
_HERMITE_WEIGHTS = _HERMITE_WEIGHTS / math.sqrt(2 * math.pi)


def _moments(n: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = 1.0 + k, 1.0 + n - k
    total = a + b
    return a / total, np.sqrt(a * b / (total * total * (total + 1.0)))


def approximate_prob_best(n: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the headline with the highest posterior mean, its P(best) under normal posteriors)."""
    mean, sd = _moments(n, k)
    leader = mean.argmax(axis=-1)
    return leader, normal_prob_best(mean, sd, leader)


def normal_prob_best(mean: np.ndarray, sd: np.ndarray, leader: np.ndarray) -> np.ndarray:
    """P(``leader`` is best) when each headline's CTR is independently normal (last axis).

    Gauss-Hermite quadrature over the leader's CTR; every ``sd`` must be positive.
    """
    mean_l = np.take_along_axis(mean, leader[..., None], axis=-1)
    sd_l = np.take_along_axis(sd, leader[..., None], axis=-1)
    x = mean_l[..., None] + sd_l[..., None] * _HERMITE_NODES  # (..., 1, nodes)
    log_cdf = special.log_ndtr((x - mean[..., None]) / sd[..., None])  # (..., K, nodes)
    others = np.arange(mean.shape[-1]) != leader[..., None]
    log_cdf = np.where(others[..., None], log_cdf, 0.0).sum(axis=-2)
    return np.exp(log_cdf) @ _HERMITE_WEIGHTS


def _near(n: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per look, the P(best) above which and the loss (in thresholds) below which to check."""
    fewest = np.minimum(k, n - k).min(axis=-1)
    prob_best = np.full(fewest.shape, NEAR[-1][1])
    loss = np.full(fewest.shape, NEAR[-1][2])
    for counts, prob_floor, loss_ceiling in reversed(NEAR[:-1]):
        prob_best = np.where(fewest >= counts, prob_floor, prob_best)
        loss = np.where(fewest >= counts, loss_ceiling, loss)
    return prob_best, loss


def _first_exact(
    candidates: np.ndarray, check: Callable[[int, int], tuple[bool, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per run, the first candidate look where ``check(run, look)`` passes, and its choice."""
    runs = candidates.shape[0]
    first = np.full(runs, -1)
    chosen = np.full(runs, -1)
    for run in range(runs):
        for look in np.flatnonzero(candidates[run]).tolist():
            passed, choice = check(run, look)
            if passed:
                first[run], chosen[run] = look, choice
                break
    return first, chosen


def _first_true(fired: np.ndarray) -> np.ndarray:
    """Per run (rows), the first look (columns) where ``fired``; -1 if never."""
    any_fired = fired.any(axis=1)
    return np.where(any_fired, fired.argmax(axis=1), -1)


def evaluate_rules(
    n: np.ndarray,
    k: np.ndarray,
    alpha: float = 0.05,
    threshold: float | None = None,
    valid: np.ndarray | None = None,
    rules: Sequence[str] = RULES,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per rule: (first look it fired, -1 if never; the headline it chose; threshold there).

    ``n``, ``k``: (runs, looks, K).  ``valid`` (runs, looks) masks looks past
    a run's horizon.  ``threshold`` is the threshold of caring (``None``:
    :func:`abtest.decision.default_threshold` of the leader's CTR).  Only
    ``rules`` (of :data:`RULES`) are evaluated.
    """
    runs, looks, _ = n.shape
    valid = np.ones((runs, looks), dtype=bool) if valid is None else valid
    rows = np.arange(runs)
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    nothing = np.full(runs, np.nan)

    winners = {
        "fixed": np.empty((runs, looks), dtype=int),
        "proven": np.empty((runs, looks), dtype=int),
    }
    near_best = np.empty((runs, looks), dtype=bool)
    near_safe = np.empty((runs, looks), dtype=bool)
    for start in range(0, runs, CHUNK):
        part = slice(start, start + CHUNK)
        n_part, k_part = n[part], k[part]
        if "fixed" in rules:
            winners["fixed"][part] = fixed_sample_winner(n_part, k_part, alpha)
        if "proven" in rules:
            winners["proven"][part] = proven_leader(n_part, k_part, alpha, PRIOR)
        prob_floor, loss_ceiling = _near(n_part, k_part)
        if "pbest" in rules:
            near_best[part] = approximate_prob_best(n_part, k_part)[1] >= prob_floor
        if "safe" in rules:
            mean, sd = _moments(n_part, k_part)
            limit = (
                decision.DEFAULT_RELATIVE_THRESHOLD * mean.max(axis=-1)
                if threshold is None
                else threshold
            )
            near_safe[part] = decision.normal_expected_loss(mean, sd) < loss_ceiling * limit

    for rule in ("fixed", "proven"):
        if rule not in rules:
            continue
        first = _first_true((winners[rule] >= 0) & valid)
        chosen = np.where(first >= 0, winners[rule][rows, np.maximum(first, 0)], -1)
        out[rule] = (first, chosen, nothing)
    if "pbest" not in rules and "safe" not in rules:
        return out

    def exact_prob_best(run: int, look: int) -> tuple[bool, int]:
        result = _compare(n[run, look], k[run, look])
        best = int(np.argmax(result.prob_best))
        return bool(result.prob_best[best] >= PROB_BEST_RULE), best

    if "pbest" in rules:
        first, chosen = _first_exact(near_best & valid, exact_prob_best)
        out["pbest"] = (first, chosen, nothing)
    if "safe" not in rules:
        return out

    thresholds = np.full(runs, np.nan)

    def exact_safe(run: int, look: int) -> tuple[bool, int]:
        advice = decision.decide(
            n[run, look].astype(int).tolist(),
            k[run, look].astype(int).tolist(),
            threshold=threshold,
            alpha=alpha,
            forecast=False,
        )
        thresholds[run] = advice.threshold
        return advice.safe_to_stop, advice.leader if advice.leader is not None else -1

    first, chosen = _first_exact(near_safe & valid, exact_safe)
    out["safe"] = (first, chosen, np.where(first >= 0, thresholds, np.nan))
    return out


def summarize_rule(
    rule: str,
    first: np.ndarray,
    chosen: np.ndarray,
    thresholds: np.ndarray,
    truth: np.ndarray,
    look_every: int,
    checkpoints: Sequence[int],
    value: np.ndarray | None = None,
) -> RuleOutcome:
    """``value`` (default ``truth``) is each headline's clicks per reader served
    at age 0, in which the realized loss is counted (see :func:`_regret`)."""
    runs = len(first)
    rows = np.arange(runs)
    fired = first >= 0
    best = truth.max(axis=1)
    chosen_ctr = truth[rows, np.maximum(chosen, 0)]
    ties = (truth == best[:, None]).sum(axis=1) > 1
    # A claim ("C is better than every other") is wrong unless C is the one
    # strictly best; the stop advice only when C is worse than the best.
    worse = chosen_ctr < best
    wrong = fired & (worse if rule == "safe" else worse | ties)
    readers = (first + 1) * look_every
    right = fired & ~wrong
    value = truth if value is None else value
    loss = value[rows, truth.argmax(axis=1)] - value[rows, np.maximum(chosen, 0)]
    return RuleOutcome(
        rule=rule,
        fired=float(fired.mean()),
        wrong=float(wrong.mean()),
        median_readers=float(np.median(readers[fired])) if fired.any() else None,
        realized_loss=float(loss[fired].mean()) if fired.any() else None,
        threshold=float(np.nanmean(thresholds[fired])) if rule == "safe" and fired.any() else None,
        right_by={int(c): float((right & (readers <= c)).mean()) for c in checkpoints},
    )


def _allocation_outcome(
    allocation: str,
    n: np.ndarray,
    k: np.ndarray,
    truth: np.ndarray,
    rules: dict[str, RuleOutcome],
    last: np.ndarray,
    exposure: np.ndarray | None = None,
    value: np.ndarray | None = None,
) -> AllocationOutcome:
    """``exposure`` (default ``n``) and ``value`` (clicks per reader served at age 0,
    default ``truth``) are those of :class:`Counts` and :func:`_regret`."""
    runs = len(truth)
    rows = np.arange(runs)
    regret_curve = _regret(n if exposure is None else exposure, truth, value)  # (runs, looks)
    total = np.maximum(n.sum(axis=2, keepdims=True), 1.0)
    final_n = n[rows, last]
    final_k = k[rows, last]
    return AllocationOutcome(
        allocation=allocation,
        clicks=float(final_k.sum(axis=1).mean()),
        regret=float(regret_curve[rows, last].mean()),
        share=tuple(float(s) for s in (final_n / final_n.sum(axis=1, keepdims=True)).mean(axis=0)),
        rules=rules,
        looks=np.arange(1, n.shape[1] + 1),
        regret_curve=regret_curve.mean(axis=0),
        share_curve=(n / total).mean(axis=0),
    )


def _regret(
    exposure: np.ndarray, truth: np.ndarray, value: np.ndarray | None = None, *, served=False
) -> np.ndarray:
    """Expected clicks lost against always showing the best headline: (runs, ...).

    ``exposure`` (runs, ..., K) as in :class:`Counts`; ``value`` (runs, K)
    each headline's clicks per reader served at age 0 (``truth`` times its
    seen share).  The best headline is the one with the highest ``truth``
    (its CTR among readers who saw it), or with ``served`` the highest
    ``value``.
    """
    value = truth if value is None else value
    best = value.max(axis=1) if served else value[np.arange(len(value)), truth.argmax(axis=1)]
    gap = best[:, None] - value  # (runs, K)
    shape = (len(value),) + (1,) * (exposure.ndim - 2) + (value.shape[1],)
    return (exposure * gap.reshape(shape)).sum(axis=-1)


def _strict_best(truth: np.ndarray) -> np.ndarray:
    """Per run, the one headline with the highest ``truth``, -1 on a tie at the top."""
    top = truth.max(axis=1, keepdims=True)
    return np.where((truth == top).sum(axis=1) == 1, truth.argmax(axis=1), -1)


def compare_estimates(
    counts: Counts,
    denominator: str,
    truth: np.ndarray,
    look_every: int,
    min_clicks: int = MIN_CLICKS,
) -> dict[str, EstimateOutcome]:
    """Pooled against stratified-by-hour CTRs at every look of every run (needs hourly counts).

    At each look the hours so far (the last one partly) go to
    :func:`abtest.stratify`, the stats document's estimator, which names the
    leader under each estimate.  The P(best) >= 0.95 rule of each treats the
    headlines' CTRs as independent normals: the pooled CTR ``x / n`` with
    standard error ``sqrt(p (1 - p) / n)``, the stratified one with its own.
    A look fires only where every headline has ``min_clicks`` clicks, every
    standard error is above zero and there is a common hour.  The truth is
    each run's CTRs among readers who saw the headline.
    """
    if counts.hour_starts is None:
        raise ValueError("stratified estimates need the counts by hour: simulate with a half-life")
    n = counts.impressions(denominator)
    k = counts.clicks
    hour_n = counts.hour_impressions(denominator)
    hour_k = counts.hour_clicks
    runs, looks, variants = n.shape
    # The hour of each look's last reader, the hours before it finished.
    current = np.searchsorted(counts.hour_starts, (np.arange(looks) + 1) * look_every) - 1
    finished_n = np.diff(hour_n, axis=1).astype(np.int64)
    finished_k = np.diff(hour_k, axis=1).astype(np.int64)
    partial_n = (n - hour_n[:, current]).astype(np.int64)
    partial_k = (k - hour_k[:, current]).astype(np.int64)
    hours = current.tolist()
    strat_ctr = np.full((runs, looks, variants), np.nan)
    strat_se = np.full((runs, looks, variants), np.nan)
    leaders = np.full((2, runs, looks), -1)  # pooled, stratified
    for run in range(runs):
        done_n, done_k = finished_n[run].T.tolist(), finished_k[run].T.tolist()
        now_n, now_k = partial_n[run].tolist(), partial_k[run].tolist()
        for look, hour in enumerate(hours):
            result = stratify(
                [done_n[v][:hour] + [now_n[look][v]] for v in range(variants)],
                [done_k[v][:hour] + [now_k[look][v]] for v in range(variants)],
            )
            if result.pooled_leader is not None:
                leaders[0, run, look] = result.pooled_leader
            if result.leader is not None:
                leaders[1, run, look] = result.leader
            if result.variants[0].ctr is not None:
                strat_ctr[run, look] = [row.ctr for row in result.variants]
                strat_se[run, look] = [row.se for row in result.variants]
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = k / n
        pooled_se = np.sqrt(pooled * (1.0 - pooled) / n)
    best = _strict_best(truth)
    enough = (k >= min_clicks).all(axis=-1)
    out = {}
    for index, (name, mean, se) in enumerate(
        (("pooled", pooled, pooled_se), ("stratified", strat_ctr, strat_se))
    ):
        leader = leaders[index]
        usable = (leader >= 0) & (np.nan_to_num(se) > 0).all(axis=-1) & enough
        fired = np.zeros((runs, looks), dtype=bool)
        for start in range(0, runs, CHUNK):
            part = slice(start, start + CHUNK)
            ok = usable[part]
            prob = normal_prob_best(
                np.where(ok[..., None], mean[part], 0.0),
                np.where(ok[..., None], se[part], 1.0),
                np.maximum(leader[part], 0),
            )
            fired[part] = ok & (prob >= PROB_BEST_RULE)
        first = _first_true(fired)
        called = first >= 0
        chosen = leader[np.arange(runs), np.maximum(first, 0)]
        misnamed = (chosen != best) | (best < 0)
        readers = (first + 1) * look_every
        out[name] = EstimateOutcome(
            estimate=name,
            wrong_at_end=float(((leader[:, -1] != best) | (best < 0)).mean()),
            fired=float(called.mean()),
            wrong=float((called & misnamed).mean()),
            median_readers=float(np.median(readers[called])) if called.any() else None,
        )
    return out


# -- scenarios -----------------------------------------------------------------------------


def simulate(
    ctrs: Sequence[float],
    readers: int = 100_000,
    runs: int = 1000,
    *,
    allocations: Sequence[str] = ALLOCATIONS,
    look_every: int = 100,
    rate: float = 20.0,
    max_age: float = 0.1,
    alpha: float = 0.05,
    threshold: float | None = None,
    seed: int = 1,
    checkpoints: Sequence[int] | None = None,
    seen: Sequence[float] | None = None,
    half_life: float | None = None,
    progress: Progress | None = None,
) -> ScenarioOutcome:
    """``runs`` runs of ``readers`` readers against the true ``ctrs``, per allocation.

    ``ctrs`` are the CTRs among readers who see each headline; ``seen`` each
    headline's share of the readers served who see it (default: all), and
    ``half_life`` the hours in which the CTRs halve as the story ages
    (default: no decay), readers arriving at ``rate`` a second.  With
    either, each allocation also reports its denominators (``seen`` only
    when some share is below 1: otherwise they count the same), and under
    decay the pooled against the stratified CTRs.  ``checkpoints`` (readers)
    default to half the readers and all of them.  ``progress`` is told the
    share of the job done as it goes.
    """
    ctrs = tuple(float(c) for c in ctrs)
    if len(ctrs) < 2 or not all(0.0 <= c <= 1.0 for c in ctrs):
        raise ValueError("give at least two CTRs, each between 0 and 1")
    if readers < look_every or look_every < 1 or runs < 1:
        raise ValueError("readers must be at least one look, and runs at least 1")
    shares = tuple(1.0 for _ in ctrs) if seen is None else tuple(float(x) for x in seen)
    if len(shares) != len(ctrs) or not all(0.0 < x <= 1.0 for x in shares):
        raise ValueError("give one seen share per CTR, each above 0 and at most 1")
    if half_life is not None and not half_life > 0:
        raise ValueError("the half-life must be a positive number of hours")
    gated = any(x < 1.0 for x in shares)
    signals = gated or half_life is not None
    denominators = DENOMINATORS if gated else ("served",)
    checkpoints = tuple(checkpoints or (readers // 2, readers))
    refresh = readers_per_refresh(rate, max_age)
    truth = np.tile(np.array(ctrs), (runs, 1))
    value = truth * np.array(shares)
    work = (readers // look_every) * look_every * len(allocations) * len(denominators)
    step = None if progress is None else (lambda done: progress(done / work))
    outcomes = {}
    for index, allocation in enumerate(allocations):
        by_denominator = {}
        for denominator in denominators:
            # The same seed for both denominators: their runs differ only where
            # the counts they were given made the bandit choose differently.
            rng = np.random.default_rng([seed, index])
            counts = run_readers(
                truth,
                readers,
                allocation,
                rng,
                seen=shares,
                half_life=half_life,
                rate=rate,
                denominator=denominator,
                look_every=look_every,
                refresh=refresh,
                progress=step,
            )
            wanted = RULES if denominator == "served" else ("proven", "safe")
            rules = evaluate_rules(
                counts.impressions(denominator), counts.clicks, alpha, threshold, rules=wanted
            )
            summaries = {
                rule: summarize_rule(rule, *rules[rule], truth, look_every, checkpoints, value)
                for rule in wanted
            }
            last = np.full(runs, counts.served.shape[1] - 1)
            outcome = _allocation_outcome(
                allocation,
                counts.served,
                counts.clicks,
                truth,
                summaries,
                last,
                exposure=counts.exposure,
                value=value,
            )
            if denominator == "served":
                outcomes[allocation] = outcome
            if not signals:
                continue
            exposure = counts.exposure[:, -1]
            by_denominator[denominator] = DenominatorOutcome(
                denominator=denominator,
                clicks=outcome.clicks,
                regret=outcome.regret,
                regret_served=float(_regret(exposure, truth, value, served=True).mean()),
                share=outcome.share,
                proven=summaries["proven"],
                safe=summaries["safe"],
                estimates=(
                    {}
                    if half_life is None
                    else compare_estimates(counts, denominator, truth, look_every)
                ),
            )
        if by_denominator:
            outcomes[allocation] = replace(outcomes[allocation], denominators=by_denominator)
    return ScenarioOutcome(
        ctrs,
        readers,
        runs,
        look_every,
        refresh,
        alpha,
        seed,
        outcomes,
        seen=shares,
        half_life=half_life,
        rate=rate,
    )


# -- the Upworthy replay ---------------------------------------------------------------------


def load_upworthy(min_headlines: int = 3) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The bundled Upworthy tests with at least ``min_headlines`` headlines: (impressions, clicks).

    From the Upworthy Research Archive's exploratory sample (Matias, Munger,
    Aubin Le Quéré and Ebersole 2021, Scientific Data 8:195); see
    abtest/data/upworthy/README.md.
    """
    folder = resources.files("abtest") / "data" / "upworthy"

    def rows(name: str) -> list[list[int]]:
        with (folder / name).open(encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            return [[round(float(cell)) for cell in row[1:]] for row in reader]

    tests = []
    for shown, clicked in zip(
        rows("exploratory_n_matrix_impressions.csv"),
        rows("exploratory_y_matrix_clicks.csv"),
        strict=True,
    ):
        used = [(n, k) for n, k in zip(shown, clicked, strict=True) if n > 0]
        if len(used) >= min_headlines:
            tests.append((tuple(n for n, _ in used), tuple(k for _, k in used)))
    return tests


def replay_upworthy(
    tests: int = 300,
    runs: int = 1,
    *,
    allocations: Sequence[str] = ALLOCATIONS,
    look_every: int = 100,
    rate: float = 20.0,
    max_age: float = 0.1,
    alpha: float = 0.05,
    threshold: float | None = None,
    seed: int = 1,
    progress: Progress | None = None,
) -> ReplayOutcome:
    """Replay a seeded sample of ``tests`` Upworthy tests with 3+ headlines, ``runs`` times each.

    Each test's observed CTRs are the truth and its observed total
    impressions (rounded down to a look) the horizon.  Tests are simulated
    together in groups of equal headline count and similar horizon.
    """
    pool = load_upworthy()
    picked = np.random.default_rng(seed).choice(
        len(pool), size=min(tests, len(pool)), replace=False
    )
    sample = [pool[i] for i in sorted(picked.tolist())]
    refresh = readers_per_refresh(rate, max_age)
    totals: dict[str, dict[str, float]] = {a: {} for a in allocations}
    groups: dict[int, list[int]] = {}
    for index, (impressions, _) in enumerate(sample):
        groups.setdefault(len(impressions), []).append(index)
    chunks = []
    for indices in groups.values():
        indices.sort(key=lambda i: sum(sample[i][0]))
        chunks += [indices[start : start + 40] for start in range(0, len(indices), 40)]

    def chunk_readers(chunk: list[int]) -> int:
        return max(max(look_every, sum(sample[i][0]) // look_every * look_every) for i in chunk)

    work = sum(chunk_readers(chunk) for chunk in chunks) * len(allocations)
    step = None if progress is None else (lambda done: progress(done / work))
    for chunk_index, chunk in enumerate(chunks):
        truth = np.repeat(
            np.array([[k / n for n, k in zip(*sample[i], strict=True)] for i in chunk]),
            runs,
            axis=0,
        )
        horizons = np.repeat(
            np.array(
                [max(look_every, sum(sample[i][0]) // look_every * look_every) for i in chunk]
            ),
            runs,
        )
        readers = int(horizons.max())
        looks = readers // look_every
        valid = np.arange(1, looks + 1)[None, :] * look_every <= horizons[:, None]
        last = horizons // look_every - 1
        for index, allocation in enumerate(allocations):
            rng = np.random.default_rng([seed, chunk_index, index])
            n, k = run_allocation(
                truth,
                readers,
                allocation,
                rng,
                look_every=look_every,
                refresh=refresh,
                progress=step,
            )
            rules = evaluate_rules(n, k, alpha, threshold, valid)
            outcome = _allocation_outcome(allocation, n, k, truth, {}, last)
            summed = totals[allocation]
            rows = len(truth)
            summed["clicks"] = summed.get("clicks", 0.0) + outcome.clicks * rows / runs
            summed["regret"] = summed.get("regret", 0.0) + outcome.regret * rows / runs
            for rule in RULES:
                first, chosen, unused = rules[rule]
                summary = summarize_rule(rule, first, chosen, unused, truth, look_every, ())
                summed[f"{rule}_fired"] = summed.get(f"{rule}_fired", 0.0) + summary.fired * rows
                summed[f"{rule}_wrong"] = summed.get(f"{rule}_wrong", 0.0) + summary.wrong * rows
    count = len(sample) * runs
    report = {}
    for allocation, summed in totals.items():
        row = {"clicks": summed["clicks"], "regret": summed["regret"]}
        for rule in RULES:
            row[f"{rule}_fired"] = summed[f"{rule}_fired"] / count
            row[f"{rule}_wrong"] = summed[f"{rule}_wrong"] / count
        report[allocation] = row
    return ReplayOutcome(tests=len(sample), runs=runs, seed=seed, allocations=report)


# -- output -------------------------------------------------------------------------------------

_RULE_NAMES = {
    "fixed": "fixed-sample Holm",
    "pbest": "P(best) >= 0.95",
    "proven": "proven (anytime-valid)",
    "safe": "safe to stop",
}


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]


def _share(value: float) -> str:
    return f"{100 * value:.1f}%"


def render_scenario(outcome: ScenarioOutcome) -> str:
    """The scenario as terminal tables: clicks and regret, then each rule per allocation."""
    ctrs = ", ".join(f"{100 * c:g}%" for c in outcome.ctrs)
    lines = [
        f"CTRs {ctrs}; {outcome.readers:,} readers, {outcome.runs:,} runs, a look every "
        f"{outcome.look_every} readers, posterior refreshed every "
        f"{outcome.readers_per_refresh} readers; seed {outcome.seed}",
    ]
    if any(share < 1 for share in outcome.seen) or outcome.half_life is not None:
        seen = ", ".join(f"{100 * share:g}%" for share in outcome.seen)
        decay = (
            "no decay"
            if outcome.half_life is None
            else f"CTRs halve every {outcome.half_life:g} h as the story ages"
        )
        lines.append(
            f"seen by {seen} of the readers served; {decay}; {outcome.rate:g} readers a second, "
            f"the last at {outcome.hours:.1f} h"
        )
    lines.append("")
    uniform = outcome.allocations.get("uniform")
    rows = [("allocation", "clicks", "vs uniform", "regret", "final share of traffic")]
    for allocation in outcome.allocations.values():
        gained = "" if uniform is None else f"{allocation.clicks - uniform.clicks:+.1f}"
        shares = " / ".join(_share(s) for s in allocation.share)
        rows.append(
            (
                allocation.allocation,
                f"{allocation.clicks:.1f}",
                gained,
                f"{allocation.regret:.1f}",
                shares,
            )
        )
    lines += _table(rows)
    checkpoints = next(iter(outcome.allocations.values())).rules["proven"].right_by
    for rule in RULES:
        lines += ["", f"{_RULE_NAMES[rule]}:"]
        rows = [
            ("allocation", "fired", "wrong", "median readers", "loss/1k at stop")
            + (("threshold/1k",) if rule == "safe" else ())
            + tuple(f"right by {c:,}" for c in checkpoints)
        ]
        for allocation in outcome.allocations.values():
            result = allocation.rules[rule]
            row = (
                allocation.allocation,
                _share(result.fired),
                _share(result.wrong),
                "-" if result.median_readers is None else f"{result.median_readers:,.0f}",
                "-" if result.realized_loss is None else f"{1000 * result.realized_loss:.3f}",
            )
            if rule == "safe":
                row += ("-" if result.threshold is None else f"{1000 * result.threshold:.3f}",)
            row += tuple(_share(share) for share in result.right_by.values())
            rows.append(row)
        lines += ["  " + line for line in _table(rows)]
    return "\n".join(lines + _signals(outcome))


def _letter(variant: int) -> str:
    return chr(ord("A") + variant)


def _signals(outcome: ScenarioOutcome) -> list[str]:
    """The denominators and, under decay, pooled against stratified CTRs, as tables."""
    allocations = [a for a in outcome.allocations.values() if a.denominators]
    if not allocations:
        return []
    gated = any(share < 1 for share in outcome.seen)
    differ = len(set(outcome.seen)) > 1
    appeal = max(range(len(outcome.ctrs)), key=lambda v: outcome.ctrs[v])
    served_value = [c * s for c, s in zip(outcome.ctrs, outcome.seen, strict=True)]
    most = max(range(len(outcome.ctrs)), key=lambda v: served_value[v])
    lines = ["", "Denominators (impressions the bandit and the rules count):"]
    lines.append(
        f"  best headline: {_letter(appeal)}, the highest CTR among readers who saw it; "
        "regret in clicks against always showing it"
        + (f"; vs {_letter(most)}: against the most clicks per reader served" if differ else "")
    )
    if not gated:
        lines.append("  every reader sees the slot, so seen impressions are the served ones")

    def median(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    header = ("allocation", "impressions", "clicks", "regret")
    header += (f"regret vs {_letter(most)}",) if differ else ()
    header += ("proven", "wrong", "median readers", "safe to stop", "wrong", "median readers")
    rows = [header]
    for allocation in allocations:
        for denominator in allocation.denominators.values():
            row = (
                allocation.allocation,
                denominator.denominator,
                f"{denominator.clicks:,.1f}",
                f"{denominator.regret:,.1f}",
            )
            row += (f"{denominator.regret_served:,.1f}",) if differ else ()
            for rule in (denominator.proven, denominator.safe):
                row += (_share(rule.fired), _share(rule.wrong), median(rule.median_readers))
            rows.append(row)
    lines += ["  " + line for line in _table(rows)]
    if outcome.half_life is None:
        return lines
    lines += [
        "",
        f"CTR by hour (stratified) against pooled, P(best) >= {PROB_BEST_RULE} under normal "
        f"estimates from {MIN_CLICKS} clicks a headline:",
    ]
    rows = [
        (
            "allocation",
            "impressions",
            "estimate",
            "leader wrong at end",
            "P(best) call",
            "wrong",
            "median readers",
        )
    ]
    for allocation in allocations:
        for denominator in allocation.denominators.values():
            for estimate in denominator.estimates.values():
                rows.append(
                    (
                        allocation.allocation,
                        denominator.denominator,
                        estimate.estimate,
                        _share(estimate.wrong_at_end),
                        _share(estimate.fired),
                        _share(estimate.wrong),
                        median(estimate.median_readers),
                    )
                )
    return lines + ["  " + line for line in _table(rows)]


def render_replay(outcome: ReplayOutcome) -> str:
    """The Upworthy replay as a terminal table, one row per allocation."""
    lines = [
        f"Upworthy replay: {outcome.tests} tests with 3+ headlines, {outcome.runs} run(s) each, "
        f"seed {outcome.seed}; observed CTRs as truth, observed totals as horizon",
        "",
    ]
    uniform = outcome.allocations.get("uniform")
    header = ("allocation", "clicks", "vs uniform", "regret")
    header += tuple(f"{_RULE_NAMES[rule]} (wrong)" for rule in RULES)
    rows = [header]
    for allocation, row in outcome.allocations.items():
        gained = "" if uniform is None else f"{row['clicks'] - uniform['clicks']:+,.0f}"
        cells = (allocation, f"{row['clicks']:,.0f}", gained, f"{row['regret']:,.0f}")
        cells += tuple(
            f"{_share(row[f'{rule}_fired'])} ({_share(row[f'{rule}_wrong'])})" for rule in RULES
        )
        rows.append(cells)
    return "\n".join(lines + _table(rows))


def plot_scenario(outcome: ScenarioOutcome, path: str) -> None:
    """Regret and each headline's share of traffic over the readers, per allocation (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    allocations = list(outcome.allocations.values())
    figure, axes = pyplot.subplots(
        1, 1 + len(allocations), figsize=(4 * (1 + len(allocations)), 3.6)
    )
    for allocation in allocations:
        readers = allocation.looks * outcome.look_every
        axes[0].plot(readers, allocation.regret_curve, label=allocation.allocation)
    axes[0].set_title("regret (clicks lost)")
    axes[0].set_xlabel("readers")
    axes[0].legend()
    for axis, allocation in zip(axes[1:], allocations, strict=True):
        readers = allocation.looks * outcome.look_every
        for variant in range(len(outcome.ctrs)):
            label = f"{chr(ord('A') + variant)} ({100 * outcome.ctrs[variant]:g}%)"
            axis.plot(readers, allocation.share_curve[:, variant], label=label)
        axis.set_ylim(0, 1)
        axis.set_title(f"share of traffic: {allocation.allocation}")
        axis.set_xlabel("readers")
    axes[1].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
