"""The stop advice: losses checked against R and Monte Carlo, the forecast deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from abtest.decision import (
    DEFAULT_RELATIVE_THRESHOLD,
    Decision,
    ReadersToCall,
    decide,
    normal_expected_loss,
    readers_to_call,
)
from abtest.sequential import sequential_tests

# The issue's example, integrated by R 4 (Rscript):
#
#   options(digits = 17)
#   a <- c(601, 641, 571); b <- c(29401, 29361, 29431)
#   pbest <- function(i) integrate(function(x) {
#       r <- dbeta(x, a[i], b[i]); for (j in setdiff(1:3, i)) r <- r * pbeta(x, a[j], b[j]); r
#     }, 0.01, 0.035, subdivisions = 1000L, rel.tol = 1e-13)$value
#   emax <- 0.01 + integrate(function(x)
#       1 - pbeta(x, a[1], b[1]) * pbeta(x, a[2], b[2]) * pbeta(x, a[3], b[3]),
#     0.01, 0.035, subdivisions = 1000L, rel.tol = 1e-13)$value
#   pbest(2); emax - a[2] / (a[2] + b[2]); (emax - a[2] / (a[2] + b[2])) / (1 - pbest(2))
R_PROB_BEST_B = 0.864198053887088036
R_EXPECTED_MAX = 0.021442923728777361
R_EXPECTED_LOSS_B = 7.7681411598504863e-05
R_LOSS_IF_NOT_BEST_B = 0.0005720198702742962

EXAMPLE = ([30000] * 3, [600, 640, 570])


def test_the_issues_example_matches_r():
    decision = decide(*EXAMPLE, forecast=False)
    assert decision.leader == 1
    assert decision.prob_best == pytest.approx(R_PROB_BEST_B, rel=1e-9)
    assert decision.expected_loss == pytest.approx(R_EXPECTED_LOSS_B, rel=1e-8)
    assert decision.loss_if_not_best == pytest.approx(R_LOSS_IF_NOT_BEST_B, rel=1e-8)
    # The issue's words: ~0.08 clicks per 1,000 readers, ~0.57 given B is not best.
    assert round(1000 * decision.expected_loss, 2) == 0.08
    assert round(1000 * decision.loss_if_not_best, 2) == 0.57
    assert decision.readers_to_call is None


def test_the_issues_example_matches_monte_carlo():
    # Independent draws from the three posteriors, fixed seed.
    rng = np.random.default_rng(13)
    draws = rng.beta([601, 641, 571], [29401, 29361, 29431], size=(2_000_000, 3))
    best = draws.max(axis=1)
    loss = best - draws[:, 1]
    b_is_best = draws.argmax(axis=1) == 1
    decision = decide(*EXAMPLE, forecast=False)
    # Standard errors: P(best) 2.4e-4, loss 2e-7, loss given not best 1e-6.
    assert decision.prob_best == pytest.approx(b_is_best.mean(), abs=1.2e-3)
    assert decision.expected_loss == pytest.approx(loss.mean(), abs=1e-6)
    assert decision.loss_if_not_best == pytest.approx(loss[~b_is_best].mean(), abs=6e-6)


def test_loss_identities():
    # E[max - X_leader] = E[max] - mean_leader, and the conditional loss times
    # P(not best) gives the unconditional one back.
    decision = decide(*EXAMPLE, forecast=False)
    mean_b = 641 / (641 + 29361)
    assert decision.expected_loss == pytest.approx(R_EXPECTED_MAX - mean_b, rel=1e-8)
    assert decision.loss_if_not_best * (1 - decision.prob_best) == pytest.approx(
        decision.expected_loss, rel=1e-12
    )


def test_default_threshold_is_a_share_of_the_leaders_ctr():
    decision = decide(*EXAMPLE, forecast=False)
    assert decision.threshold == pytest.approx(DEFAULT_RELATIVE_THRESHOLD * 641 / 30002)
    assert decision.safe_to_stop == (decision.expected_loss < decision.threshold)
    strict = decide(*EXAMPLE, threshold=1e-5, forecast=False)
    assert strict.threshold == 1e-5 and not strict.safe_to_stop


def test_a_certain_leader_has_no_loss_if_not_best():
    decision = decide([10**6, 10**6], [10**5, 10**3], forecast=False)
    assert decision.leader == 0 and decision.prob_best == 1.0
    assert decision.loss_if_not_best is None
    assert decision.expected_loss == 0.0 and decision.safe_to_stop


def test_an_a_a_test_becomes_safe_to_stop_without_a_winner():
    # Two equal headlines at 2% and 150,000 readers each: no winner, yet
    # choosing either costs almost nothing.
    impressions, clicks = [150_000, 150_000], [3000, 3004]
    decision = decide(impressions, clicks, forecast=False)
    assert decision.safe_to_stop
    assert decision.expected_loss < 0.01 * 0.02
    assert not sequential_tests(impressions, clicks).proven
    # Early on it is not safe.
    assert not decide([2000, 2000], [40, 41], forecast=False).safe_to_stop


def test_before_any_readers_there_is_no_leader():
    decision = decide([0, 0, 0], [0, 0, 0], forecast=False)
    assert decision.leader is None and not decision.safe_to_stop
    assert decision.prob_best == pytest.approx(1 / 3)


def test_the_forecast_is_deterministic_per_counts():
    first = readers_to_call([3000, 3000, 3000], [45, 51, 60], horizon=20_000, runs=40)
    second = readers_to_call([3000, 3000, 3000], [45, 51, 60], horizon=20_000, runs=40)
    assert first == second
    assert isinstance(first, ReadersToCall) and first.horizon == 20_000


def test_the_forecast_of_a_large_gap_is_short_and_of_an_a_a_test_none():
    # 1% against 4%: "find the winner" proves it soon; "maximize clicks"
    # starves the loser, so its proof takes far longer.
    gap = readers_to_call([300, 300], [3, 12], mode="winner", horizon=20_000, runs=40)
    assert gap.proven is not None and 0 < gap.proven <= 20_000
    starved = readers_to_call([300, 300], [3, 12], mode="clicks", horizon=20_000, runs=40)
    assert starved.proven is None or starved.proven > gap.proven
    # An A/A test with 20,000 readers each at 2%: the truths drawn from these
    # posteriors are about as close as what was seen, far from provable in
    # 20,000 more readers.
    level = readers_to_call([20_000, 20_000], [400, 400], horizon=20_000, runs=40)
    assert level.proven is None


def test_the_forecast_says_zero_when_it_holds_already():
    decision = decide([5000, 5000], [50, 150], horizon=10_000)
    assert isinstance(decision, Decision)
    assert decision.readers_to_call.proven == 0 and decision.readers_to_call.safe_to_stop == 0


@pytest.mark.parametrize("mode", ["clicks", "winner"])
def test_both_modes_forecast(mode):
    result = decide([2000, 2000, 2000], [30, 34, 50], mode=mode, horizon=30_000).readers_to_call
    assert result.safe_to_stop is not None and result.safe_to_stop <= 30_000


def test_normal_expected_loss_matches_monte_carlo():
    rng = np.random.default_rng(99)
    mean = np.array([0.020, 0.021, 0.0195])
    sd = np.array([0.0008, 0.0004, 0.0011])
    draws = mean + sd * rng.standard_normal((2_000_000, 3))
    expected = (draws.max(axis=1) - draws[:, 1]).mean()
    assert float(normal_expected_loss(mean, sd)) == pytest.approx(expected, abs=3e-6)


@pytest.mark.parametrize(
    "impressions, clicks, options",
    [
        ([10], [1], {}),
        ([10, 10], [11, 1], {}),
        ([10, 10], [1, 1], {"mode": "fastest"}),
        ([10, 10], [1, 1], {"threshold": -1.0}),
        ([10, 10], [1, 1], {"alpha": 1.5}),
    ],
)
def test_bad_input_is_refused(impressions, clicks, options):
    with pytest.raises(ValueError):
        decide(impressions, clicks, **options)
