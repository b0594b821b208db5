"""The anytime-valid tests: exact against rational arithmetic and R, valid in simulation."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from abtest.bandit import Posterior
from abtest.sequential import (
    E_VALUE_CAP,
    log_mixture_martingale,
    log_pairwise_e_values,
    proven_winner,
    sequential_tests,
)

# -- exact rational arithmetic -------------------------------------------------


def exact_beta(x: int, y: int) -> Fraction:
    """B(x, y) = (x - 1)! (y - 1)! / (x + y - 1)! for positive integers."""
    return Fraction(math.factorial(x - 1) * math.factorial(y - 1), math.factorial(x + y - 1))


def exact_martingale(n: int, k: int, p: Fraction, prior: tuple[int, int]) -> Fraction:
    a, b = prior
    return exact_beta(a + k, b + n - k) / (exact_beta(a, b) * p**k * (1 - p) ** (n - k))


def exact_e_value(ni, ki, nj, kj, prior) -> Fraction:
    """E_ij by the closed form, in rationals."""
    if Fraction(ki, ni) <= Fraction(kj, nj):
        return exact_martingale(ni, ki, Fraction(ki, ni), prior) * exact_martingale(
            nj, kj, Fraction(kj, nj), prior
        )
    pooled = Fraction(ki + kj, ni + nj)
    return exact_martingale(ni, ki, pooled, prior) * exact_martingale(nj, kj, pooled, prior)


def close(value: float, exact: Fraction, rel: float = 1e-12) -> bool:
    return abs(value - float(exact)) <= rel * abs(float(exact))


@pytest.mark.parametrize("prior", [(1, 1), (1, 49), (2, 3)])
@pytest.mark.parametrize(
    "n, k, p",
    [
        (0, 0, Fraction(1, 3)),
        (1, 1, Fraction(1, 2)),
        (40, 3, Fraction(1, 50)),
        (250, 9, Fraction(3, 100)),
        (120, 0, Fraction(1, 40)),
        (60, 60, Fraction(9, 10)),
    ],
)
def test_martingale_matches_exact_rationals(prior, n, k, p):
    exact = exact_martingale(n, k, p, prior)
    value = float(np.exp(log_mixture_martingale(n, k, float(p), prior)))
    assert close(value, exact)


@pytest.mark.parametrize("prior", [(1, 1), (1, 49)])
@pytest.mark.parametrize(
    "n, p", [(12, Fraction(1, 5)), (30, Fraction(1, 50)), (25, Fraction(2, 3))]
)
def test_martingale_has_mean_one_under_the_null(prior, n, p):
    # E[M_n(p)] under Bernoulli(p) data, as an exact sum over the binomial.
    exact_mean = sum(
        math.comb(n, k) * p**k * (1 - p) ** (n - k) * exact_martingale(n, k, p, prior)
        for k in range(n + 1)
    )
    assert exact_mean == 1
    computed = sum(
        math.comb(n, k)
        * float(p) ** k
        * (1 - float(p)) ** (n - k)
        * float(np.exp(log_mixture_martingale(n, k, float(p), prior)))
        for k in range(n + 1)
    )
    assert computed == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("prior", [(1, 1), (1, 49)])
@pytest.mark.parametrize(
    "counts",
    [
        ((40, 6), (50, 2)),
        ((50, 2), (40, 6)),
        ((30, 3), (60, 6)),
        ((80, 0), (20, 1)),
        ((25, 25), (25, 0)),
    ],
)
def test_pairwise_e_values_match_exact_rationals(prior, counts):
    (ni, ki), (nj, kj) = counts
    log_e = log_pairwise_e_values([ni, nj], [ki, kj], prior)
    assert close(math.exp(log_e[0, 1]), exact_e_value(ni, ki, nj, kj, prior))
    assert close(math.exp(log_e[1, 0]), exact_e_value(nj, kj, ni, ki, prior))
    assert log_e[0, 0] == log_e[1, 1] == 0.0


@pytest.mark.parametrize("counts", [((40, 6), (50, 2)), ((50, 2), (40, 6)), ((30, 3), (60, 6))])
def test_closed_form_is_the_infimum_over_p_below_q(counts):
    # The derivation, checked by brute force: on a rational grid of p <= q no
    # product M_i(p) M_j(q) is below the closed form, which is attained.
    (ni, ki), (nj, kj) = counts
    prior = (1, 1)
    closed = exact_e_value(ni, ki, nj, kj, prior)
    grid = [Fraction(m, 200) for m in range(1, 200)]
    left = {p: exact_martingale(ni, ki, p, prior) for p in grid}
    right = {q: exact_martingale(nj, kj, q, prior) for q in grid}
    smallest = min(left[p] * right[q] for p in grid for q in grid if p <= q)
    assert smallest >= closed
    assert float(smallest) <= float(closed) * 1.05  # the grid comes close to the infimum


# -- R ------------------------------------------------------------------------
# Reference values from R 4 (Rscript), with this snippet:
#
#   xlogy <- function(x, y) ifelse(x == 0, 0, x * log(y))
#   xlog1py <- function(x, y) ifelse(x == 0, 0, x * log1p(y))
#   logM <- function(n, k, p, a, b)
#     lbeta(a + k, b + n - k) - lbeta(a, b) - xlogy(k, p) - xlog1py(n - k, -p)
#   cs <- function(n, k, K, alpha, a, b) {
#     lev <- log(K / alpha); r <- k / n
#     f <- function(p) logM(n, k, p, a, b) - lev
#     lo <- if (f(0) < 0) 0 else uniroot(f, c(1e-300, r), tol = 1e-15)$root
#     hi <- if (f(1) < 0) 1 else uniroot(f, c(r, 1 - 1e-16), tol = 1e-15)$root
#     c(lo, hi)
#   }
#   logE <- function(ni, ki, nj, kj, a, b) {
#     if (ki / ni > kj / nj) {
#       c <- (ki + kj) / (ni + nj); logM(ni, ki, c, a, b) + logM(nj, kj, c, a, b)
#     } else logM(ni, ki, ki / ni, a, b) + logM(nj, kj, kj / nj, a, b)
#   }
#   options(digits = 17)
#   logM(1000, 20, 0.02, 1, 49); logM(1000, 20, 0.035, 1, 1)
#   logM(30000, 640, 0.0195, 1, 49); logM(10^8, 2*10^6, 0.0201, 1, 49)
#   cs(30000, 600, 3, 0.05, 1, 49); cs(30000, 640, 3, 0.05, 1, 49); cs(500, 7, 2, 0.05, 1, 1)
#   cs(200, 0, 2, 0.05, 1, 49); cs(10^7, 2*10^5, 3, 0.05, 1, 49)
#   logE(30000, 740, 30000, 600, 1, 49); logE(30000, 600, 30000, 740, 1, 49)
#   logE(12000, 300, 9000, 160, 1, 49); logE(12000, 300, 9000, 160, 1, 1)


@pytest.mark.parametrize(
    "n, k, p, prior, expected",
    [
        (1000, 20, 0.02, (1, 49), -1.59938712396025906),
        (1000, 20, 0.035, (1, 1), -0.57421828220962823),
        (30000, 640, 0.0195, (1, 49), -0.75446847630962566),
        (10**8, 2 * 10**6, 0.0201, (1, 49), 18.09179215808399022),
    ],
)
def test_martingale_matches_r(n, k, p, prior, expected):
    # At 10^8 impressions R's textbook form adds terms of size 10^7 and is
    # itself off by ~8e-10 (see the mpmath test below).
    assert float(log_mixture_martingale(n, k, p, prior)) == pytest.approx(expected, abs=2e-9)


def test_martingale_at_a_hundred_million_impressions_matches_mpmath():
    # mpmath at 40 digits:
    #   mp.dps = 40; n, k, p = 10**8, 2*10**6, mpf(0.0201)  # the double nearest 0.0201
    #   log(beta(1 + k, 49 + n - k)) - log(beta(1, 49)) - k*log(p) - (n - k)*log1p(-p)
    value = float(log_mixture_martingale(10**8, 2 * 10**6, 0.0201, (1, 49)))
    assert value == pytest.approx(18.091792157311477, abs=1e-11)


@pytest.mark.parametrize(
    "n, k, variants, prior, expected",
    [
        (30000, 600, 3, (1, 49), (0.017051435444557585, 0.023263086920900497)),
        (30000, 640, 3, (1, 49), (0.018278187576302323, 0.024703566585194216)),
        (500, 7, 2, (1, 1), (0.0018870439186569703, 0.0461929976561891720)),
        (200, 0, 2, (1, 49), (0.0, 0.026222616270416124)),
        (10**7, 2 * 10**5, 3, (1, 49), (0.019799929621038360, 0.020201386021979302)),
    ],
)
def test_intervals_match_r(n, k, variants, prior, expected):
    impressions = [n] + [100] * (variants - 1)
    clicks = [k] + [1] * (variants - 1)
    interval = sequential_tests(impressions, clicks, alpha=0.05, prior=prior).intervals[0]
    assert interval == pytest.approx(expected, rel=1e-10, abs=1e-15)


@pytest.mark.parametrize(
    "first, second, prior, expected",
    [
        ((30000, 740), (30000, 600), (1, 49), 0.80687361449645323),
        ((30000, 600), (30000, 740), (1, 49), -6.68698730369646910),
        ((12000, 300), (9000, 160), (1, 49), 0.79946319364950114),
        ((12000, 300), (9000, 160), (1, 1), -4.90346517796939452),
    ],
)
def test_e_values_match_r(first, second, prior, expected):
    log_e = log_pairwise_e_values([first[0], second[0]], [first[1], second[1]], prior)
    assert log_e[0, 1] == pytest.approx(expected, abs=1e-9)


# -- the call and its properties ---------------------------------------------


def test_no_impressions_is_the_whole_unit_interval_and_no_evidence():
    tests = sequential_tests([0, 0, 0], [0, 0, 0])
    assert tests.intervals == ((0.0, 1.0),) * 3
    assert tests.e_values[0][1] == 1.0 and tests.e_values[0][0] is None
    assert tests.winner is None and not tests.proven and tests.leader is None
    assert tests.threshold == pytest.approx(40.0)


def test_a_clear_winner_is_proven():
    tests = sequential_tests([20000, 20000, 20000], [300, 340, 600])
    assert tests.winner == 2 and tests.proven and tests.leader == 2
    assert all(tests.e_values[2][j] >= tests.threshold for j in (0, 1))
    assert all(e <= 1 for e in (tests.e_values[0][2], tests.e_values[1][2]))


def test_a_lead_short_of_the_threshold_is_not_proven():
    # The example: B leads with P(best) 0.86, far from proven.
    tests = sequential_tests([30000] * 3, [600, 640, 570])
    assert tests.winner is None and tests.leader == 1


def test_e_values_are_capped_and_finite():
    tests = sequential_tests([10**6, 10**6], [10**5, 10**4])
    assert tests.e_values[0][1] == E_VALUE_CAP
    assert tests.winner == 0
    assert 0.0 < tests.e_values[1][0] < 1.0  # the laggard: both at their own minimum


def test_permuting_headlines_permutes_everything():
    impressions, clicks = [9000, 12000, 7000, 15000], [160, 300, 150, 420]
    base = sequential_tests(impressions, clicks)
    order = [2, 0, 3, 1]
    moved = sequential_tests([impressions[i] for i in order], [clicks[i] for i in order])
    for new, old in enumerate(order):
        assert moved.intervals[new] == pytest.approx(base.intervals[old], rel=1e-12)
        for new_j, old_j in enumerate(order):
            if new != new_j:
                assert moved.e_values[new][new_j] == pytest.approx(
                    base.e_values[old][old_j], rel=1e-12
                )
    assert (moved.winner is None) == (base.winner is None)
    if base.winner is not None:
        assert order[moved.winner] == base.winner


def test_intervals_hold_the_observed_rate_and_shrink():
    small = sequential_tests([1000, 1000], [20, 25]).intervals[0]
    large = sequential_tests([100000, 1000], [2000, 25]).intervals[0]
    assert small[0] < 0.02 < small[1] and large[0] < 0.02 < large[1]
    assert large[1] - large[0] < small[1] - small[0]


@pytest.mark.parametrize(
    "impressions, clicks, alpha",
    [([10], [1], 0.05), ([10, 10], [11, 0], 0.05), ([10, 10], [1, 1], 0.0), ([10, 10], [1], 0.05)],
)
def test_bad_input_is_refused(impressions, clicks, alpha):
    with pytest.raises(ValueError):
        sequential_tests(impressions, clicks, alpha=alpha)


def test_proven_winner_vectorised_agrees_with_the_dataclass():
    rng = np.random.default_rng(5)
    impressions = rng.integers(0, 20000, size=(200, 3))
    clicks = rng.binomial(impressions, rng.uniform(0.01, 0.04, size=(200, 3)))
    winners = proven_winner(log_pairwise_e_values(impressions, clicks), 0.05)
    for row in range(200):
        tests = sequential_tests(impressions[row].tolist(), clicks[row].tolist())
        assert winners[row] == (-1 if tests.winner is None else tests.winner)
    assert (winners >= 0).any() and (winners < 0).any()


# -- validity in simulation ------------------------------------------------------


def test_intervals_cover_the_truth_at_every_look():
    # 3 headlines, 400 runs, a look after every impression up to 4,000 each:
    # all three intervals (each at 1 - alpha/3) must hold at once at every look
    # in at least 1 - alpha of the runs; Ville's bound is loose, so expect more.
    rng = np.random.default_rng(20260101)
    truth = np.array([0.02, 0.035, 0.1])
    runs, length, alpha = 400, 4000, 0.05
    outcomes = rng.random((runs, 3, length)) < truth[None, :, None]
    clicks = np.cumsum(outcomes, axis=2)
    impressions = np.arange(1, length + 1)[None, None, :]
    log_m = log_mixture_martingale(impressions, clicks, truth[None, :, None])
    # The truth is outside headline i's interval exactly when log M_i(p_i) >= log(K/alpha).
    missed = (log_m >= math.log(3 / alpha)).any(axis=(1, 2))
    assert missed.mean() <= alpha - 0.02


def test_a_a_tests_under_the_bandit_rarely_claim_a_winner():
    # Thompson sampling moves traffic by the data; the call must stay valid.
    # 100 runs of an A/A test, 3 headlines at 2%, 4,000 readers, a look after
    # every 50 readers: a false call in at most alpha of runs (with a margin).
    rng = np.random.default_rng(77)
    runs, readers = 100, 4000
    false_calls = 0
    for _ in range(runs):
        impressions, clicks = np.zeros(3, dtype=int), np.zeros(3, dtype=int)
        called = False
        for reader in range(readers):
            if reader % 10 == 0:
                posterior = Posterior(impressions.tolist(), clicks.tolist())
            arm = posterior.choose(rng)
            impressions[arm] += 1
            clicks[arm] += rng.random() < 0.02
            if reader % 50 == 49 and proven_winner(log_pairwise_e_values(impressions, clicks)) >= 0:
                called = True
                break
        false_calls += called
    assert false_calls / runs <= 0.05
