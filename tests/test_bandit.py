"""Thompson sampling: fair when nothing is known, greedy when one variant is clearly ahead;
top-two sampling keeps half the traffic for the challengers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from abtest.bandit import MAX_REDRAWS, Posterior, choose, decisions


def draws(impressions, clicks, n, seed, mode="clicks"):
    rng = np.random.default_rng(seed)
    posterior = Posterior(impressions, clicks, mode)
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


def test_an_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        Posterior((10, 10), (1, 1), mode="fastest")
    with pytest.raises(ValueError, match="mode"):
        decisions(np.ones(2), np.ones(2), 4, np.random.default_rng(1), mode="fastest")


# -- top-two ("winner" mode) ---------------------------------------------------


def prob_best(impressions, clicks):
    """P(best) of each Beta(1 + k, 1 + n - k) posterior, by scipy's quad."""
    from scipy import integrate

    posteriors = [stats.beta(1 + k, 1 + n - k) for n, k in zip(impressions, clicks, strict=True)]

    def integrand(x, i):
        others = [p.cdf(x) for j, p in enumerate(posteriors) if j != i]
        return posteriors[i].pdf(x) * np.prod(others)

    return np.array(
        [
            integrate.quad(integrand, 0, 1, args=(i,), limit=400, points=[0.02, 0.04])[0]
            for i in range(len(posteriors))
        ]
    )


def top_two_probabilities(best):
    """Russo's top-two with beta = 1/2: the leader i with P(best_i), then the
    challenger j != i with P(best_j) / (1 - P(best_i))."""
    chosen = 0.5 * best.copy()
    for i, p_i in enumerate(best):
        for j, p_j in enumerate(best):
            if j != i:
                chosen[j] += 0.5 * p_i * p_j / (1 - p_i)
    return chosen


@pytest.mark.parametrize("variants", [3, 26])
def test_top_two_shows_a_clear_leader_about_half_the_time(variants):
    clicks = [100] * variants
    clicks[1] = 250
    counts = draws([5000] * variants, clicks, 20000, seed=8, mode="winner")
    share = counts[1] / counts.sum()
    # Binomial standard error at n = 20000 is 0.0035.
    assert 0.48 < share < 0.52
    assert counts.sum() - counts[1] > 0.45 * counts.sum()


def test_top_two_frequencies_match_russos_probabilities():
    impressions, clicks = (1000, 1000, 1000), (33, 37, 40)
    best = prob_best(impressions, clicks)
    assert best.sum() == pytest.approx(1.0, abs=1e-6)
    expected = top_two_probabilities(best)
    alpha = 1.0 + np.array(clicks)
    beta = 1.0 + np.array(impressions) - np.array(clicks)
    # With room to re-draw, the sampler is exactly top-two Thompson sampling.
    choices = decisions(alpha, beta, 40000, np.random.default_rng(2026), "winner", max_redraws=500)
    counts = np.bincount(choices, minlength=3)
    assert stats.chisquare(counts, 40000 * expected).pvalue > 0.001
    # The default cap changes it by at most P(leader tops MAX_REDRAWS draws in a row).
    assert best.max() ** MAX_REDRAWS < 0.01
    counts = draws(impressions, clicks, 40000, seed=2027, mode="winner")
    assert stats.chisquare(counts, 40000 * expected).pvalue > 0.001


def test_top_two_falls_back_to_the_runner_up():
    # The leader tops every draw: with no re-draws at all, the challenger is
    # the runner-up of the one draw, which here is always variant 2.
    alpha, beta = np.array([1.0, 5000.0, 400.0]), np.array([1e6, 5000.0, 5000.0])
    choices = decisions(alpha, beta, 4000, np.random.default_rng(3), "winner", max_redraws=0)
    counts = np.bincount(choices, minlength=3)
    assert counts[0] == 0 and counts[1] + counts[2] == 4000
    assert abs(counts[1] / 4000 - 0.5) < 0.03


@pytest.mark.parametrize("mode", ["clicks", "winner"])
def test_a_batch_of_posteriors_draws_from_each_its_own(mode):
    # Leading axis: independent experiments, each with its own clear leader.
    alpha = np.array([[300.0, 100.0, 100.0], [100.0, 100.0, 300.0]])
    beta = np.full((2, 3), 5000.0)
    choices = decisions(alpha, beta, 5000, np.random.default_rng(4), mode)
    assert choices.shape == (2, 5000)
    first, second = (np.bincount(row, minlength=3) / 5000 for row in choices)
    share = 0.99 if mode == "clicks" else 0.5
    assert first[0] == pytest.approx(share, abs=0.03) and second[2] == pytest.approx(
        share, abs=0.03
    )
    single = decisions(alpha[0], beta[0], 7, np.random.default_rng(4), mode)
    assert single.shape == (7,)
