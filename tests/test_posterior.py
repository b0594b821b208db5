"""abtest.posterior: P(best) and expected loss by quadrature, against independent values.

Where the reference values come from (pasted as literals; nothing here imports mpmath):

* mpmath 1.3.0 at 30 digits, run once by hand: P(best) = ∫ f_i Π_{j≠i} F_j and
  E[max] = ∫ (1 - Π F_j) over [0, 1], ``mp.quad`` split at every posterior's
  mean ± k sd/2 (k = -12..12), with ``mp.betainc(..., regularized=True)``.
* Evan Miller's closed form for two variants, summed in mpmath (see below).
* Seeded Monte Carlo computed in the tests themselves.
"""

from __future__ import annotations

import numpy as np
import pytest

from abtest import posterior


def compare(impressions, clicks):
    return posterior.compare(np.array(impressions, dtype=float), np.array(clicks, dtype=float))


@pytest.mark.parametrize(
    "impressions, clicks, prob_best, expected_loss",
    [
        # mpmath, 30 digits (see the module docstring).
        (
            (86, 93, 136, 82),
            (83, 90, 129, 70),
            (0.3939380171154449, 0.47046226984081879, 0.13549005623173528, 0.0001096568120010313),
            (0.015054180291609563, 0.011704897994958845, 0.027570649329817732, 0.12436153959896887),
        ),
        (
            (1000, 1000, 1200),
            (30, 40, 45),
            (0.054921062188375745, 0.59238650573649459, 0.35269243207512966),
            (0.01232251238432865, 0.002342472464168969, 0.0049910853880715798),
        ),
        (
            (0, 10, 25),
            (0, 2, 3),
            (0.73370739160212844, 0.21891473516860514, 0.047377873229266418),
            (0.041296442225234795, 0.29129644222523479, 0.39314829407708665),
        ),
    ],
)
def test_prob_best_and_expected_loss_match_mpmath(impressions, clicks, prob_best, expected_loss):
    # The contract is 1e-3; the method does far better, and this would catch a
    # regression long before it mattered.
    comparison = compare(impressions, clicks)
    assert comparison.prob_best.tolist() == pytest.approx(prob_best, abs=1e-9)
    assert comparison.expected_loss.tolist() == pytest.approx(expected_loss, abs=1e-9)


@pytest.mark.parametrize(
    "a, b, expected",
    [
        # (impressions, clicks) of A and B, and P(X_B > X_A) by Evan Miller's closed
        # form ("Formulas for Bayesian A/B testing", 2015), with integer alpha_B:
        #   P = Σ_{i < alpha_B} B(alpha_A + i, beta_A + beta_B)
        #                       / ((beta_B + i) B(1 + i, beta_B) B(alpha_A, beta_A)),
        # summed in mpmath at 30 digits from T_0 = B(alpha_A, beta_A + beta_B) / B(alpha_A, beta_A)
        # by the exact ratio T_{i+1} / T_i = (alpha_A + i)(beta_B + i)
        #                                     / ((alpha_A + beta_A + beta_B + i)(1 + i)).
        # (The same sum in float64 is off by 2e-9 at a million impressions.)
        ((1000, 30), (1000, 40), 0.88666654552304498331),
        ((0, 0), (10, 3), 0.33333333333333333333),
        ((5, 0), (200, 1), 0.057267482763472632616),
        ((50_000, 2_000), (52_000, 2_150), 0.86158754469246216485),
        ((1_000_000, 100_000), (1_000_000, 100_300), 0.76010308797004823341),
        ((10, 10), (40, 39), 0.61840120663650075415),
    ],
)
def test_two_variant_prob_best_matches_closed_form(a, b, expected):
    comparison = compare([a[0], b[0]], [a[1], b[1]])
    assert comparison.prob_best.tolist() == pytest.approx([1 - expected, expected], abs=1e-9)


@pytest.mark.parametrize(
    "count, impressions, clicks",
    [
        (2, 0, 0),
        (3, 1000, 30),
        (5, 7, 7),
        (26, 0, 0),
        (26, 5000, 120),
        (26, 10**8, 5 * 10**6),
        (26, 10**8, 0),
    ],
)
def test_identical_variants_are_equally_likely_best(count, impressions, clicks):
    comparison = compare([impressions] * count, [clicks] * count)
    assert comparison.prob_best.tolist() == pytest.approx([1 / count] * count, rel=1e-12)
    assert len(set(comparison.expected_loss.tolist())) == 1


def test_prob_best_at_10_to_the_8_matches_monte_carlo():
    # 26 variants, 75M to 100M impressions, CTRs 2e-6 apart (a tenth of a
    # posterior sd): P(best) spreads over all of them.
    impressions = [10**8 - 10**6 * i for i in range(26)]
    clicks = [round(n * (0.05 + 2e-6 * i)) for i, n in enumerate(impressions)]
    comparison = compare(impressions, clicks)
    prob_best, expected_loss = comparison.prob_best, comparison.expected_loss

    # 2,000,000 exact Beta draws per variant in chunks of 200,000, seeded.  The
    # standard error of a frequency is <= sqrt(0.25 / 2e6) = 3.5e-4, so 0.002 is
    # a 5.7-sigma bound; for E[max] the standard error is ~2e-5 / sqrt(2e6) = 1.4e-8.
    rng = np.random.default_rng(20261129)
    clicks_array, impressions_array = np.array(clicks, float), np.array(impressions, float)
    alpha, beta = 1.0 + clicks_array, 1.0 + impressions_array - clicks_array
    wins = np.zeros(len(impressions))
    max_total, draws = 0.0, 0
    for _ in range(10):
        sample = rng.beta(alpha[:, None], beta[:, None], size=(len(impressions), 200_000))
        wins += np.bincount(sample.argmax(axis=0), minlength=len(impressions))
        max_total += sample.max(axis=0).sum()
        draws += sample.shape[1]
    assert prob_best == pytest.approx(wins / draws, abs=0.002)
    assert prob_best.sum() == pytest.approx(1.0, abs=1e-12)
    assert 0.1 < prob_best.max() < 0.3  # genuinely spread, not a one-horse race
    monte_carlo_loss = max_total / draws - alpha / (alpha + beta)
    assert expected_loss == pytest.approx(monte_carlo_loss, abs=1e-7)


@pytest.mark.parametrize(
    "impressions, clicks",
    [
        ([10**8 - 10**6 * i for i in range(26)], [5 * 10**6 + 3000 * i for i in range(26)]),
        ([1_208_298, 720_473], [160_605, 68_610]),
        ([0, 1, 10**8, 10**4], [0, 1, 10**7, 1000]),
        ([0] * 26, [0] * 26),
    ],
)
def test_prob_best_integrates_to_one_before_normalising(impressions, clicks):
    # Σ P(best) = ∫ d(Π F_j) = 1: the raw integrals' sum is an error estimate.
    comparison = compare(impressions, clicks)
    assert comparison.raw_total == pytest.approx(1.0, abs=1e-9)


def test_beta_density_integrates_to_one():
    steps = 20_000
    grid = (np.arange(steps) + 0.5) / steps
    densities = posterior.beta_density([1, 3, 120, 2000], [1, 40, 2000, 30000], grid)
    assert np.allclose(densities.sum(axis=1) / steps, 1.0, atol=2e-3)
