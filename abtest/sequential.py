"""Anytime-valid answers to "is C proven better?": counts in, intervals and e-values out.

An editor watches the dashboard and may stop whenever it says "proven"; the
bandit moves traffic towards whatever leads.  A fixed-sample test is valid
neither under repeated looks nor under data-driven allocation.  This module
uses tests that are valid at every look and under any allocation.

The martingale.  Per headline i with n impressions and k clicks, the
beta-binomial mixture martingale (Howard, Ramdas, McAuliffe and Sekhon 2021,
"Time-uniform Chernoff bounds via nonnegative supermartingales", Probability
Surveys 17, and "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Annals of Statistics 49; the conjugate mixture for Bernoulli data)

    M_i(p) = B(a + k, b + n - k) / (B(a, b) p^k (1 - p)^(n - k))

is the likelihood ratio of the Beta(a, b) mixture of Bernoulli models to the
Bernoulli(p) model.  When headline i's true rate is p it is a nonnegative
martingale with M = 1 before any impression, in headline i's own impression
order, whatever decided *when* headline i was shown: the bandit only picks
which headline the next reader sees, from past data, and each impression of
headline i is then a fresh Bernoulli(p_i) draw.  Ville's inequality gives
P(sup_n M_i(p_i) >= 1/alpha) <= alpha, over all looks at once.  The mixture
prior (a, b) is fixed in advance (:data:`PRIOR`); it shapes power, never validity.

Intervals.  {p : M_i(p) < K / alpha} holds p_i at every look with probability
at least 1 - alpha / K, so all K intervals hold together with probability at
least 1 - alpha (Bonferroni).  log M_i is convex in p with its minimum at
k / n, where M_i <= 1 (a mixture of likelihoods is at most the largest one),
so the set is an interval around k / n, found by root finding on each side.

E-values.  For "i beats j" (H0: p_i <= p_j),

    E_ij = inf over p <= q of M_i(p) M_j(q).

For any true (p_i, p_j) in H0 the infimum is at most M_i(p_i) M_j(p_j), a
product of two martingales in disjoint impressions (an impression is one
headline's), itself a nonnegative martingale with mean 1 in the order readers
arrive, so P(sup E_ij >= 1/x) <= x under H0.  The infimum has a closed form:
log M_i(p) + log M_j(q) is convex and separable, minimised without the
constraint at the two observed rates (k_i / n_i, k_j / n_j).  If those
satisfy p <= q they are the constrained minimum too.  Otherwise the
constraint binds (a convex function minimised over a convex set whose
interior lacks its unconstrained minimum attains the minimum on the
boundary), so p = q = c, and log M_i(c) + log M_j(c) is, up to constants,
-(k_i + k_j) log c - (n_i + n_j - k_i - k_j) log(1 - c): the pooled
Bernoulli log likelihood, minimised at the pooled rate
c = (k_i + k_j) / (n_i + n_j).  A headline without impressions has M = 1
for every p, so its side contributes nothing.  (The derivation is checked
against exact rational arithmetic in tests/test_sequential.py.)

The call.  "C is proven better than every other" when E_Cj >= (K - 1) / alpha
for every j != C.  This claims a false winner with probability at most alpha:
let j* be a truly best headline.  Calling some C != j* with p_C <= p_j*
needs E_{C,j*} >= (K - 1) / alpha, and E_{C,j*} <= M_C(p_C) M_j*(p_j*), a
nonnegative martingale with mean 1, which crosses (K - 1) / alpha with
probability at most alpha / (K - 1); a union over the K - 1 possible C gives
alpha.  When j* itself is called but ties with another headline, the same
bound applies to that pair.

Normal-approximation sequential tests (mSPRT on the difference of CTRs,
GrowthBook's) assume a sample mean that is approximately normal with a known
variance; with a bandit's unequal, data-driven allocation and CTRs of 2%
their claims were measured far above alpha (docs/decisions.md).  The test
here uses only each headline's own Bernoulli sequence, so no approximation
is involved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

__all__ = [
    "PRIOR",
    "E_VALUE_CAP",
    "SequentialTests",
    "sequential_tests",
    "log_mixture_martingale",
    "log_pairwise_e_values",
    "proven_winner",
    "log_e_values_of_the_leader",
    "proven_leader",
]

#: The mixture's Beta(a, b) prior, fixed in advance.  Its mean is 2%, the
#: click-through rate of a typical news headline, and its weight is that of
#: 50 impressions, so it is broad on the scale of a headline's CTR (its 1% to
#: 99% quantiles are about 0.02% and 9%).  Measured (docs/decisions.md, "The
#: mixture's prior"): at CTRs near 2% it proves about ten times as many
#: winners by 100,000 readers as the uniform Beta(1, 1); priors concentrated
#: harder at 2% prove more there but next to nothing at 10% CTRs.
PRIOR: tuple[float, float] = (1.0, 49.0)

#: E-values above this are reported as this (JSON has no infinity); the call
#: itself is made on the uncapped logarithms.
E_VALUE_CAP = 1e15


@dataclass(frozen=True)
class SequentialTests:
    """Anytime-valid intervals, pairwise e-values and the proven call for one experiment.

    ``intervals[i]`` is headline i's confidence sequence at level 1 - alpha / K
    (so all K hold together at 1 - alpha), ``(0.0, 1.0)`` without impressions.
    ``e_values[i][j]`` is the evidence that i's CTR is above j's (``None`` on
    the diagonal), capped at :data:`E_VALUE_CAP`.  ``winner`` is the index of
    the headline proven better than every other, if any; ``leader`` the
    headline with the most evidence over its strongest rival (the largest
    row minimum of the e-values; ties to the lower index), ``None`` before
    any impressions.
    """

    alpha: float
    intervals: tuple[tuple[float, float], ...]
    e_values: tuple[tuple[float | None, ...], ...]
    threshold: float
    winner: int | None
    leader: int | None

    @property
    def proven(self) -> bool:
        return self.winner is not None


def log_mixture_martingale(
    impressions: np.ndarray | Sequence[int] | int,
    clicks: np.ndarray | Sequence[int] | int,
    p: np.ndarray | Sequence[float] | float,
    prior: tuple[float, float] = PRIOR,
) -> np.ndarray:
    """log M(p) for counts and rates that broadcast together (any shapes numpy broadcasts).

    ``+inf`` where p is 0 with a click or 1 with a non-click (the data rule
    that p out).  Without impressions log M is 0.
    """
    a, b = prior
    n, k, p = np.broadcast_arrays(
        np.asarray(impressions, dtype=np.float64),
        np.asarray(clicks, dtype=np.float64),
        np.asarray(p, dtype=np.float64),
    )
    # The textbook form log B(a + k, b + n - k) - log B(a, b) - k log p -
    # (n - k) log(1 - p) subtracts terms of size n H(p) to get a result of
    # size log n: at 10^8 impressions it loses ~1e-7.  With many clicks and
    # non-clicks, Stirling's series (log G(x) = (x - 1/2) log x - x +
    # log(2 pi) / 2 + delta(x)) for the three gamma functions of the first
    # term, with A = a + k, B = b + n - k, N = A + B, gives instead
    #   log M = k log(A / (N p)) + (n - k) log(B / (N (1 - p))) + a log(A / N) + b log(B / N)
    #           + log(2 pi N / (A B)) / 2 + delta(A) + delta(B) - delta(N) - log B(a, b),
    # whose large terms are logs of ratios near 1, taken by log1p.  Measured
    # against 40-digit mpmath: within 1e-11 at 10^8 impressions.
    large = (np.minimum(k, n - k) >= _STIRLING_FROM) & (p > 0) & (p < 1)
    result = np.empty(n.shape)
    small = ~large
    if small.any():
        n_s, k_s, p_s = n[small], k[small], p[small]
        with np.errstate(divide="ignore"):
            log_likelihood = special.xlogy(k_s, p_s) + special.xlog1py(n_s - k_s, -p_s)
        result[small] = (
            special.betaln(a + k_s, b + n_s - k_s) - special.betaln(a, b) - log_likelihood
        )
    if large.any():
        n_l, k_l, p_l = n[large], k[large], p[large]
        clicks_side, other_side = a + k_l, b + n_l - k_l
        total = clicks_side + other_side
        # B - N (1 - p) = -(A - N p) exactly: one rounded product, not 1 - p's rounding times N.
        excess = clicks_side - total * p_l
        result[large] = (
            k_l * np.log1p(excess / (total * p_l))
            + (n_l - k_l) * np.log1p(-excess / (total * (1 - p_l)))
            + a * np.log(clicks_side / total)
            + b * np.log(other_side / total)
            + 0.5 * np.log(2 * np.pi * total / (clicks_side * other_side))
            + _stirling_delta(clicks_side)
            + _stirling_delta(other_side)
            - _stirling_delta(total)
            - special.betaln(a, b)
        )
    return result


# From this many clicks and non-clicks on, log M goes through Stirling's series.
_STIRLING_FROM = 100.0


def _stirling_delta(x: np.ndarray) -> np.ndarray:
    """log G(x) - ((x - 1/2) log x - x + log(2 pi) / 2), truncated below 1e-17 for x >= 100."""
    x2 = x * x
    return (1 / 12 - (1 / 360 - 1 / (1260 * x2)) / x2) / x


def _observed_rate(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, k / np.where(n > 0, n, 1.0), 0.0)


def log_pairwise_e_values(
    impressions: np.ndarray | Sequence[int],
    clicks: np.ndarray | Sequence[int],
    prior: tuple[float, float] = PRIOR,
) -> np.ndarray:
    """log E_ij for every ordered pair, over the last axis (headlines): shape (..., K, K).

    The leading axes are independent experiments (the simulator passes
    thousands at once).  The diagonal is 0 (E_ii = 1, no evidence).
    """
    n = np.asarray(impressions, dtype=np.float64)
    k = np.asarray(clicks, dtype=np.float64)
    rate = _observed_rate(n, k)
    # Each headline's smallest log M, at its observed rate (0 without impressions).
    own_minimum = log_mixture_martingale(n, k, rate, prior)
    n_i, n_j = n[..., :, None], n[..., None, :]
    k_i, k_j = k[..., :, None], k[..., None, :]
    # i's observed rate above j's, compared in integers (k_i n_j > k_j n_i) so
    # that equal rates are never split by rounding; a side without
    # impressions never binds.
    binding = (k_i * n_j > k_j * n_i) & (n_i > 0) & (n_j > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = np.where(binding, (k_i + k_j) / np.where(binding, n_i + n_j, 1.0), 0.5)
    on_the_line = log_mixture_martingale(n_i, k_i, pooled, prior) + log_mixture_martingale(
        n_j, k_j, pooled, prior
    )
    apart = own_minimum[..., :, None] + own_minimum[..., None, :]
    log_e = np.where(binding, on_the_line, apart)
    diagonal = np.arange(n.shape[-1])
    log_e[..., diagonal, diagonal] = 0.0
    return log_e


def log_e_values_of_the_leader(
    impressions: np.ndarray | Sequence[int],
    clicks: np.ndarray | Sequence[int],
    prior: tuple[float, float] = PRIOR,
) -> tuple[np.ndarray, np.ndarray]:
    """(the headline with the highest observed CTR, log E of it against each headline).

    Over the last axis, with leading axes of independent experiments: shapes
    (...) and (..., K), the leader's own entry 0.  Only that headline can be
    proven (E_ij > 1 needs i's observed rate above j's), so the simulator
    checks the call with K e-values per experiment instead of K^2.  Ties go
    to the lower index.
    """
    n = np.asarray(impressions, dtype=np.float64)
    k = np.asarray(clicks, dtype=np.float64)
    rate = _observed_rate(n, k)
    leader = rate.argmax(axis=-1)
    n_i = np.take_along_axis(n, leader[..., None], axis=-1)
    k_i = np.take_along_axis(k, leader[..., None], axis=-1)
    own_minimum = log_mixture_martingale(n, k, rate, prior)
    binding = (k_i * n > k * n_i) & (n_i > 0) & (n > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = np.where(binding, (k_i + k) / np.where(binding, n_i + n, 1.0), 0.5)
    on_the_line = log_mixture_martingale(n_i, k_i, pooled, prior) + log_mixture_martingale(
        n, k, pooled, prior
    )
    leader_minimum = np.take_along_axis(own_minimum, leader[..., None], axis=-1)
    log_e = np.where(binding, on_the_line, leader_minimum + own_minimum)
    np.put_along_axis(log_e, leader[..., None], 0.0, axis=-1)
    return leader, log_e


def proven_leader(
    impressions: np.ndarray | Sequence[int],
    clicks: np.ndarray | Sequence[int],
    alpha: float = 0.05,
    prior: tuple[float, float] = PRIOR,
) -> np.ndarray:
    """:func:`proven_winner` straight from counts, per experiment (-1 if none), in O(K)."""
    leader, log_e = log_e_values_of_the_leader(impressions, clicks, prior)
    variants = log_e.shape[-1]
    others = np.arange(variants) != leader[..., None]
    passes = np.all((log_e >= math.log((variants - 1) / alpha)) | ~others, axis=-1)
    return np.where(passes, leader, -1)


def proven_winner(log_e: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Index of the headline proven better than every other, per experiment; -1 if none.

    ``log_e`` is :func:`log_pairwise_e_values`'s array, shape (..., K, K).
    At most one headline can pass (E_ij and E_ji are never both above 1).
    """
    variants = log_e.shape[-1]
    threshold = math.log((variants - 1) / alpha)
    off_diagonal = ~np.eye(variants, dtype=bool)
    passes = np.all((log_e >= threshold) | ~off_diagonal, axis=-1)  # (..., K)
    return np.where(passes.any(axis=-1), passes.argmax(axis=-1), -1)


def _interval(n: int, k: int, log_level: float, prior: tuple[float, float]) -> tuple[float, float]:
    """{p : log M(p) < log_level}, by root finding either side of k / n."""
    if n == 0:
        return (0.0, 1.0)
    rate = k / n

    def excess(p: float) -> float:
        return float(log_mixture_martingale(n, k, p, prior)) - log_level

    # log M is convex with its minimum (<= 0 < log_level) at the observed
    # rate, and rises to +inf towards 0 (with a click) and 1 (with a
    # non-click); without clicks it stays finite at 0, and the interval
    # reaches 0 when it stays below the level there.
    low = 0.0 if excess(0.0) < 0 else optimize.brentq(excess, 0.0, rate, xtol=1e-15, rtol=1e-13)
    high = 1.0 if excess(1.0) < 0 else optimize.brentq(excess, rate, 1.0, xtol=1e-15, rtol=1e-13)
    return (float(low), float(high))


def sequential_tests(
    impressions: Sequence[int],
    clicks: Sequence[int],
    alpha: float = 0.05,
    prior: tuple[float, float] = PRIOR,
) -> SequentialTests:
    """Anytime-valid intervals, pairwise e-values and the proven call.

    ``impressions`` and ``clicks`` are equal-length sequences of counts, at
    least two, with ``0 <= clicks[i] <= impressions[i]``; ``0 < alpha < 1``.
    Raises :class:`ValueError` otherwise.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    if len(impressions) != len(clicks) or len(impressions) < 2:
        raise ValueError("impressions and clicks need one entry per headline, at least two")
    if any(k < 0 or k > n for n, k in zip(impressions, clicks, strict=True)):
        raise ValueError("counts must satisfy 0 <= clicks <= impressions")
    a, b = prior
    if not (a > 0 and b > 0):
        raise ValueError(f"the prior's parameters must be positive, got {prior!r}")
    variants = len(impressions)
    n = np.array(impressions, dtype=np.float64)
    k = np.array(clicks, dtype=np.float64)

    log_level = math.log(variants / alpha)
    intervals = tuple(
        _interval(int(n_i), int(k_i), log_level, prior) for n_i, k_i in zip(n, k, strict=True)
    )
    log_e = log_pairwise_e_values(n, k, prior)
    winner = int(proven_winner(log_e, alpha))
    with np.errstate(over="ignore"):
        capped = np.where(log_e >= math.log(E_VALUE_CAP), E_VALUE_CAP, np.exp(log_e))
    e_values = tuple(
        tuple(None if i == j else float(capped[i, j]) for j in range(variants))
        for i in range(variants)
    )
    leader = None
    if n.sum() > 0:
        weakest = np.where(np.eye(variants, dtype=bool), np.inf, log_e).min(axis=1)
        leader = int(np.argmax(weakest))
    return SequentialTests(
        alpha=float(alpha),
        intervals=intervals,
        e_values=e_values,
        threshold=(variants - 1) / alpha,
        winner=None if winner < 0 else winner,
        leader=leader,
    )
