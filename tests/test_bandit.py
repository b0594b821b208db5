"""Thompson sampling: fair when nothing is known, greedy when one variant is clearly ahead."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from abtest.bandit import Posterior, choose


def draws(impressions, clicks, n, seed):
    rng = np.random.default_rng(seed)
    posterior = Posterior(impressions, clicks)
    return np.bincount([posterior.choose(rng) for _ in range(n)], minlength=len(impressions))


@pytest.mark.parametrize(
    "impressions, clicks",
    [
        ((0, 0, 0), (0, 0, 0)),
        ((500, 500, 500), (20, 20, 20)),
        ((10,) * 6, (3,) * 6),
        ((100,) * 26, (4,) * 26),  # many variants: the broadcast path
    ],
)
def test_equal_posteriors_choose_uniformly(impressions, clicks):
    counts = draws(impressions, clicks, 6000, seed=20261129)
    # Chi-square goodness of fit against the uniform distribution.
    assert stats.chisquare(counts).pvalue > 0.001
    assert counts.min() > 0


@pytest.mark.parametrize("variants", [3, 26])
def test_a_clear_leader_wins_the_large_majority(variants):
    clicks = [100] * variants
    clicks[1] = 250
    counts = draws([5000] * variants, clicks, 3000, seed=7)
    assert counts[1] / counts.sum() > 0.99


def test_choice_frequency_matches_probability_of_being_best():
    # Two variants: P(B > A) for Beta posteriors, by numerical integration.
    from scipy import integrate

    a, b = stats.beta(1 + 30, 1 + 970), stats.beta(1 + 40, 1 + 960)
    p_b = integrate.quad(lambda x: b.pdf(x) * a.cdf(x), 0, 0.15, limit=200)[0]
    counts = draws((1000, 1000), (30, 40), 20000, seed=11)
    share = counts[1] / counts.sum()
    # Binomial standard error at n = 20000 is about 0.003.
    assert abs(share - p_b) < 0.015


def test_seeded_runs_are_reproducible():
    first = draws((100, 120, 90), (5, 7, 4), 500, seed=3)
    second = draws((100, 120, 90), (5, 7, 4), 500, seed=3)
    assert np.array_equal(first, second)
    assert choose((100, 120), (5, 7), np.random.default_rng(1)) in (0, 1)


@pytest.mark.parametrize(
    "impressions, clicks",
    [((10, 10), (11, 0)), ((10, 10), (-1, 0)), ((10, 10), (1,)), ((-1, 10), (0, 0))],
)
def test_impossible_counts_are_rejected(impressions, clicks):
    with pytest.raises(ValueError):
        Posterior(impressions, clicks)
