"""abtest.stats against published reference values and identities, not its own output.

Where the reference values come from (all pasted as literals; nothing here
imports R, statsmodels or mpmath):

* R, as quoted in issue #3: the examples of ``?prop.test`` and ``?chisq.test``
  and ``prop.test(48, 100, correct = FALSE)$conf.int`` (7 digits published).
* statsmodels 0.15.0, run once by hand: ``proportions_ztest``,
  ``proportion_confint(method="wilson")`` and ``multipletests(method="holm")``,
  printed with ``repr(float(...))``.  R gives the same numbers (``prop.test``
  with ``correct = FALSE``, ``p.adjust(p, "holm")``).
* mpmath at 30 digits for P(best) and expected loss (tests/test_posterior.py).
* Exact rational arithmetic (fractions) for the z-test at 10^9 impressions.
* Closed forms and seeded Monte Carlo computed in the tests themselves.
"""

from __future__ import annotations

import decimal
import itertools
import json
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from abtest import stats
from abtest.stats import analyze, build_report

#: Every number checked against R or statsmodels must match to this relative error.
REL = 1e-9


def approx(expected, rel=REL, absolute=0.0):
    return pytest.approx(expected, rel=rel, abs=absolute)


def column(document, key):
    return [row[key] for row in document["variants"]]


def pair(document, a, b):
    (found,) = [p for p in document["tests"]["pairwise"] if (p["a"], p["b"]) == (a, b)]
    return found


def posterior_means(impressions, clicks):
    return [(1 + k) / (2 + n) for n, k in zip(impressions, clicks, strict=True)]


# -- chi-square ------------------------------------------------------------------


def test_chi_square_matches_r_prop_test_smokers():
    # R ?prop.test: smokers <- c(83, 90, 129, 70); patients <- c(86, 93, 136, 82)
    # prop.test(smokers, patients): X-squared = 12.6004112971, df = 3, p = 0.00558547666163
    document = analyze([86, 93, 136, 82], [83, 90, 129, 70])
    chi_square = document["tests"]["chi_square"]
    assert chi_square["statistic"] == approx(12.6004112971)
    assert chi_square["dof"] == 3
    assert chi_square["p_value"] == approx(0.00558547666163)
    assert chi_square["note"] is None


def test_chi_square_matches_r_chisq_test():
    # R ?chisq.test: M <- as.table(rbind(c(762, 327, 468), c(484, 239, 477)))
    # chisq.test(M): X-squared = 30.0701490958, df = 2, p = 2.95358918321e-07.
    # Columns are variants: clicks (762, 327, 468), non-clicks (484, 239, 477).
    clicks = [762, 327, 468]
    impressions = [762 + 484, 327 + 239, 468 + 477]
    chi_square = analyze(impressions, clicks)["tests"]["chi_square"]
    assert chi_square["statistic"] == approx(30.0701490958)
    assert chi_square["dof"] == 2
    assert chi_square["p_value"] == approx(2.95358918321e-07)


# -- pairwise z-tests and Holm ------------------------------------------------------


def test_two_proportion_z_test_matches_statsmodels_and_r():
    # statsmodels proportions_ztest([5, 12], [83, 99]) = (-1.40783041513, 0.159181291812):
    # its z is (p1 - p2) / se.  Ours is diff / se with diff = ctr_b - ctr_a, so with
    # a = (83, 5) and b = (99, 12) the same |z| with diff's (positive) sign.
    document = analyze([83, 99], [5, 12])
    test = pair(document, 0, 1)
    assert test["diff"] == approx(12 / 99 - 5 / 83)
    assert test["diff"] > 0
    assert test["z"] == approx(1.40783041513)
    assert test["p_value"] == approx(0.159181291812)
    # One pair: Holm changes nothing.
    assert test["p_holm"] == test["p_value"]
    # R prop.test(c(5, 12), c(83, 99), correct = FALSE): X-squared is z², same p.
    chi_square = document["tests"]["chi_square"]
    assert chi_square["statistic"] == approx(1.40783041513**2)
    assert chi_square["p_value"] == approx(0.159181291812)


# statsmodels: for each pair a < b, proportions_ztest([k_b, k_a], [n_b, n_a])
# (so z has the sign of ctr_b - ctr_a), then multipletests(p_values, method="holm")[1].
THREE_VARIANTS = ((2000, 2100, 1900), (100, 140, 70))
THREE_VARIANT_PAIRS = {
    (0, 1): (2.272301996113828, 0.023068276335263718, 0.046136552670527436),
    (0, 2): (-2.0115537095151925, 0.04426700321540453, 0.046136552670527436),
    (1, 2): (-4.223390676663399, 2.4065412972342295e-05, 7.219623891702688e-05),
}
SMOKERS = ((86, 93, 136, 82), (83, 90, 129, 70))
SMOKERS_PAIRS = {
    (0, 1): (0.09751163391198005, 0.9223200957342691, 1.0),
    (0, 2): (-0.580485808699172, 0.5615870540610517, 1.0),
    (0, 3): (-2.5323847535716455, 0.01132896042468749, 0.056644802123437456),
    (1, 2): (-0.6987004595291859, 0.48473924671197544, 1.0),
    (1, 3): (-2.6901980628987006, 0.007140962270953218, 0.042845773625719306),
    (2, 3): (-2.4056597141680798, 0.016143293778635673, 0.06457317511454269),
}


@pytest.mark.parametrize(
    "counts, expected", [(THREE_VARIANTS, THREE_VARIANT_PAIRS), (SMOKERS, SMOKERS_PAIRS)]
)
def test_pairwise_tests_match_statsmodels(counts, expected):
    impressions, clicks = counts
    document = analyze(impressions, clicks)
    pairs = document["tests"]["pairwise"]
    assert [(p["a"], p["b"]) for p in pairs] == list(expected)  # every i < j, in index order
    for test in pairs:
        z, p_value, p_holm = expected[test["a"], test["b"]]
        ctr_a, ctr_b = (clicks[i] / impressions[i] for i in (test["a"], test["b"]))
        assert test["diff"] == approx(ctr_b - ctr_a)
        assert test["z"] == approx(z)
        assert test["p_value"] == approx(p_value)
        assert test["p_holm"] == approx(p_holm)
        assert test["note"] is None


@pytest.mark.parametrize(
    "p_values, expected",
    [
        # statsmodels multipletests(p, method="holm")[1]; R p.adjust(p, "holm") agrees.
        # Ties (0.04 twice) adjust to the same value; the running maximum carries
        # 0.03 up to 0.12; 0.5 * 1 stays 0.5.
        ([0.01, 0.04, 0.03, 0.005, 0.04, 0.5], [0.05, 0.12, 0.12, 0.03, 0.12, 0.5]),
        # Capped at 1 (0.2 * 3 = 0.6, then the running maximum).
        ([0.2, 0.3, 0.25], [0.6000000000000001, 0.6000000000000001, 0.6000000000000001]),
        ([0.9, 0.8], [1.0, 1.0]),
        ([], []),
    ],
)
def test_holm_matches_statsmodels(p_values, expected):
    adjusted = stats._holm(np.array(p_values, dtype=float))
    assert adjusted.tolist() == approx(expected)


def test_holm_leaves_undefined_pairs_out_like_p_adjust_with_na():
    # A fourth variant without impressions: its three pairs are undefined, and the
    # other three are adjusted as a family of three, exactly as without it
    # (R: p.adjust(c(p, NA, NA, NA), "holm") adjusts over the non-NA values).
    impressions, clicks = THREE_VARIANTS
    document = analyze([*impressions, 0], [*clicks, 0])
    for (a, b), (z, p_value, p_holm) in THREE_VARIANT_PAIRS.items():
        test = pair(document, a, b)
        assert (test["z"], test["p_value"], test["p_holm"]) == (
            approx(z),
            approx(p_value),
            approx(p_holm),
        )
    for a in range(3):
        test = pair(document, a, 3)
        assert (test["diff"], test["z"], test["p_value"], test["p_holm"]) == (None,) * 4
        assert test["note"]["code"] == "no_impressions"


# -- Wilson intervals -------------------------------------------------------------


def test_wilson_interval_matches_r_prop_test():
    # R prop.test(48, 100, correct = FALSE)$conf.int: 0.3846455 0.5768342 (7 digits).
    low, high = analyze([100, 100], [48, 48])["variants"][0]["ctr_ci"]
    assert low == pytest.approx(0.3846455, abs=1e-7)
    assert high == pytest.approx(0.5768342, abs=1e-7)
    # statsmodels proportion_confint(48, 100, alpha=0.05, method="wilson"), full precision.
    assert (low, high) == (approx(0.384645517580519), approx(0.5768342223477604))


@pytest.mark.parametrize(
    "clicks, impressions, alpha, expected",
    [
        # statsmodels proportion_confint(clicks, impressions, alpha, method="wilson")
        (48, 100, 0.1, (0.3994378867131725, 0.5616158221181544)),
        (7, 250, 0.1, (0.015251144207328121, 0.05085561081575676)),
        (0, 20, 0.1, (0.0, 0.11915783736096455)),
        (20, 20, 0.1, (0.8808421626390355, 1.0)),
        (160605, 1208298, 0.01, (0.132124862134893, 0.13371590816397178)),
    ],
)
def test_wilson_interval_matches_statsmodels(clicks, impressions, alpha, expected):
    row = analyze([impressions, 1], [clicks, 0], alpha=alpha)["variants"][0]
    assert row["ctr_ci"] == approx(list(expected))


# -- P(best) and expected loss (the quadrature itself: tests/test_posterior.py) -------------


def test_prob_best_and_expected_loss_in_the_document_match_mpmath():
    # mpmath, 30 digits (tests/test_posterior.py says how).
    document = analyze([1000, 1000, 1200], [30, 40, 45])
    assert column(document, "prob_best") == pytest.approx(
        [0.054921062188375745, 0.59238650573649459, 0.35269243207512966], abs=1e-9
    )
    assert column(document, "expected_loss") == pytest.approx(
        [0.01232251238432865, 0.002342472464168969, 0.0049910853880715798], abs=1e-9
    )


def test_prob_best_in_the_millions_is_one_and_zero():
    document = analyze([1_208_298, 720_473], [160_605, 68_610])
    assert column(document, "prob_best") == pytest.approx([1.0, 0.0], abs=1e-3)
    assert document["variants"][0]["expected_loss"] == pytest.approx(0.0, abs=1e-12)


# -- properties ------------------------------------------------------------------


@st.composite
def experiments(draw, max_variants=8):
    """(impressions, clicks): small, huge, empty and evenly matched counts."""
    count = draw(st.integers(2, max_variants))
    scale = draw(st.sampled_from([0, 20, 2_000, 200_000, 10**8]))
    if scale and draw(st.booleans()):
        # Close CTRs at one scale: the case where P(best) is hard.
        rate = draw(st.floats(0.001, 0.999))
        impressions = [draw(st.integers(scale // 2, scale)) for _ in range(count)]
        spread = 3 * np.sqrt(rate * (1 - rate) / scale)
        rates = [draw(st.floats(rate - spread, rate + spread)) for _ in range(count)]
        clicks = [min(n, max(0, round(n * r))) for n, r in zip(impressions, rates, strict=True)]
        return impressions, clicks
    impressions = [draw(st.integers(0, max(scale, 3))) for _ in range(count)]
    clicks = [draw(st.integers(0, n)) for n in impressions]
    return impressions, clicks


PROPERTIES = settings(max_examples=80, deadline=None)


def stats_document(impressions, clicks, alpha=0.05):
    """The stats document without the decision's forecast (a simulation, tested on its own)."""
    return build_report(impressions, clicks, alpha, forecast=False).to_json()


@PROPERTIES
@given(experiments(max_variants=26))
def test_prob_best_is_a_distribution(counts):
    prob_best = column(stats_document(*counts), "prob_best")
    assert sum(prob_best) == pytest.approx(1.0, abs=1e-9)
    assert all(0.0 <= p <= 1.0 for p in prob_best)


@PROPERTIES
@given(experiments())
def test_expected_loss_differences_are_posterior_mean_differences(counts):
    impressions, clicks = counts
    loss = column(stats_document(impressions, clicks), "expected_loss")
    means = posterior_means(impressions, clicks)
    assert all(value >= 0.0 for value in loss)
    for i, j in itertools.combinations(range(len(loss)), 2):
        assert loss[i] - loss[j] == pytest.approx(means[j] - means[i], abs=1e-9)
    # E[max] >= the best mean, so the variant with the best mean loses least.
    assert loss[int(np.argmax(means))] == min(loss)


@PROPERTIES
@given(experiments(), st.floats(1e-300, 0.999))
def test_ctr_lies_in_its_interval(counts, alpha):
    for row in stats_document(*counts, alpha=alpha)["variants"]:
        if row["impressions"] == 0:
            assert row["ctr_ci"] is None and row["ctr"] == 0.0
            continue
        low, high = row["ctr_ci"]
        assert 0.0 <= low <= row["ctr"] <= high <= 1.0


@PROPERTIES
@given(
    st.integers(1, 10**8).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))),
    st.sampled_from([0.05, 0.1, 0.01, 0.2, 0.001]),
)
def test_wilson_interval_is_scipys(counts, alpha):
    n, k = counts
    row = stats_document([n, n], [k, k], alpha=alpha)["variants"][0]
    interval = scipy_stats.binomtest(k, n).proportion_ci(1 - alpha, method="wilson")
    assert row["ctr_ci"] == approx([interval.low, interval.high], rel=1e-12, absolute=1e-300)


@pytest.mark.parametrize("alpha", [1e-300, 1e-17, 1 - 1e-16])
def test_extreme_alpha_still_gives_finite_intervals(alpha):
    document = analyze([100, 10**8], [48, 0], alpha=alpha)
    json.dumps(document, allow_nan=False)
    for row in document["variants"]:
        low, high = row["ctr_ci"]
        assert 0.0 <= low <= row["ctr"] <= high <= 1.0


@PROPERTIES
@given(experiments(), st.floats(0.001, 0.3), st.floats(0.001, 0.3))
def test_larger_alpha_gives_narrower_intervals(counts, first, second):
    narrow_alpha, wide_alpha = max(first, second), min(first, second)
    narrow = stats_document(*counts, alpha=narrow_alpha)["variants"]
    wide = stats_document(*counts, alpha=wide_alpha)["variants"]
    for narrow_row, wide_row in zip(narrow, wide, strict=True):
        if narrow_row["ctr_ci"] is None:
            continue
        (low, high), (wide_low, wide_high) = narrow_row["ctr_ci"], wide_row["ctr_ci"]
        assert high - low <= wide_high - wide_low + 1e-15


@PROPERTIES
@given(experiments())
def test_p_values_are_probabilities_and_holm_only_raises_them(counts):
    tests = stats_document(*counts)["tests"]
    chi_p = tests["chi_square"]["p_value"]
    assert chi_p is None or 0.0 <= chi_p <= 1.0
    defined = [p for p in tests["pairwise"] if p["p_value"] is not None]
    for test in defined:
        assert 0.0 <= test["p_value"] <= test["p_holm"] <= 1.0
    # Holm keeps the order of the raw p-values (p.adjust's running maximum).
    ordered = sorted(defined, key=lambda p: p["p_value"])
    assert [p["p_holm"] for p in ordered] == sorted(p["p_holm"] for p in ordered)


@PROPERTIES
@given(experiments(), st.randoms(use_true_random=False))
def test_permuting_variants_permutes_the_document(counts, random):
    impressions, clicks = counts
    order = list(range(len(impressions)))
    random.shuffle(order)  # new position p holds old variant order[p]
    before = stats_document(impressions, clicks)
    after = stats_document([impressions[i] for i in order], [clicks[i] for i in order])

    for position, old in enumerate(order):
        row, old_row = after["variants"][position], before["variants"][old]
        for key in ("impressions", "clicks", "ctr", "ctr_ci", "allocation"):
            assert row[key] == old_row[key]
        # Messages name variants by position; the reason is the same.
        assert (row["note"] or {}).get("code") == (old_row["note"] or {}).get("code")
        assert row["prob_best"] == pytest.approx(old_row["prob_best"], abs=1e-9)
        assert row["expected_loss"] == pytest.approx(old_row["expected_loss"], abs=1e-12)

    for test in after["tests"]["pairwise"]:
        a, b = order[test["a"]], order[test["b"]]
        old = pair(before, min(a, b), max(a, b))
        sign = 1 if a < b else -1
        for key in ("diff", "z"):
            assert test[key] == (None if old[key] is None else sign * old[key])
        assert (test["p_value"], test["p_holm"]) == (old["p_value"], old["p_holm"])
        assert (test["note"] or {}).get("code") == (old["note"] or {}).get("code")

    chi, old_chi = after["tests"]["chi_square"], before["tests"]["chi_square"]
    if old_chi["statistic"] is None:
        assert chi["statistic"] is None and chi["note"]["code"] == old_chi["note"]["code"]
    else:
        assert chi["statistic"] == approx(old_chi["statistic"], rel=1e-12)
        assert chi["p_value"] == approx(old_chi["p_value"], rel=1e-9)


@PROPERTIES
@given(experiments(max_variants=26))
def test_document_is_strict_json(counts):
    document = stats_document(*counts)
    text = json.dumps(document, allow_nan=False)
    assert json.loads(text) == document


# -- undefined cases --------------------------------------------------------------


def test_a_variant_without_impressions():
    document = analyze([0, 50, 60], [0, 5, 9])
    empty = document["variants"][0]
    assert (empty["ctr"], empty["ctr_ci"], empty["allocation"]) == (0.0, None, 0.0)
    assert empty["note"] == {"code": "no_impressions", "message": "variant A has no impressions"}
    # Its posterior is the uniform prior: defined, and likely best against ~10% CTRs.
    assert 0.0 < empty["prob_best"] < 1.0
    assert document["variants"][1]["note"] is None

    chi_square = document["tests"]["chi_square"]
    assert (chi_square["statistic"], chi_square["dof"], chi_square["p_value"]) == (None, 2, None)
    assert chi_square["note"]["code"] == "no_impressions"
    assert [p["p_value"] is None for p in document["tests"]["pairwise"]] == [True, True, False]
    assert pair(document, 1, 2)["p_holm"] == pair(document, 1, 2)["p_value"]
    assert document["notes"] == [
        {"code": "no_impressions", "message": "variant A has no impressions"}
    ]


def test_no_impressions_at_all():
    document = analyze([0, 0, 0], [0, 0, 0])
    assert column(document, "allocation") == [0.0, 0.0, 0.0]
    assert column(document, "prob_best") == approx([1 / 3] * 3, rel=1e-12)
    # E[max of three uniforms] = 3/4, each mean 1/2.
    assert column(document, "expected_loss") == approx([0.25] * 3, rel=1e-12)
    assert document["notes"] == [
        {"code": "no_impressions", "message": "variants A, B and C have no impressions"}
    ]
    assert all(p["note"]["code"] == "no_impressions" for p in document["tests"]["pairwise"])


def test_no_clicks_anywhere():
    document = analyze([10, 20], [0, 0])
    chi_square = document["tests"]["chi_square"]
    assert (chi_square["statistic"], chi_square["p_value"]) == (None, None)
    assert chi_square["note"]["code"] == "no_clicks"
    test = pair(document, 0, 1)
    assert (test["diff"], test["z"], test["p_value"], test["p_holm"]) == (0.0, None, None, None)
    assert test["note"]["code"] == "no_clicks"
    assert [row["ctr_ci"][0] for row in document["variants"]] == [0.0, 0.0]
    assert document["notes"] == [{"code": "no_clicks", "message": "no clicks so far"}]


def test_every_impression_clicked():
    document = analyze([10, 20], [10, 20])
    assert document["tests"]["chi_square"]["note"]["code"] == "all_clicked"
    assert pair(document, 0, 1)["note"]["code"] == "all_clicked"
    assert [row["ctr_ci"][1] for row in document["variants"]] == [1.0, 1.0]


def test_a_pair_without_clicks_among_others_that_have_them():
    document = analyze([100, 100, 100], [0, 0, 5])
    assert document["tests"]["chi_square"]["p_value"] is not None
    undefined = pair(document, 0, 1)
    assert undefined["note"] == {"code": "no_clicks", "message": "neither A nor B has a click"}
    # Holm over the two defined pairs only.
    defined = [pair(document, 0, 2), pair(document, 1, 2)]
    assert defined[0]["p_value"] == defined[1]["p_value"]
    assert defined[0]["p_holm"] == approx(min(1.0, 2 * defined[0]["p_value"]))
    assert document["notes"] == [undefined["note"]]


def test_small_counts_never_raise():
    for impressions, clicks in [([1, 1], [0, 1]), ([1, 2], [1, 0]), ([1] * 26, [1] + [0] * 25)]:
        document = analyze(impressions, clicks)
        json.dumps(document, allow_nan=False)


def test_numpy_integers_are_counts():
    as_lists = analyze([1000, 1200], [30, 45])
    as_numpy = analyze(np.array([1000, 1200], dtype=np.int64), [np.int32(30), np.uint16(45)])
    assert as_numpy == as_lists
    assert type(as_numpy["variants"][0]["impressions"]) is int


# -- invalid input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "impressions, clicks, message",
    [
        ([10, 10], [1], "impressions and clicks must have one entry per variant each, got 2 and 1"),
        ([10], [1], "an experiment has 2 to 26 variants, got 1"),
        ([], [], "an experiment has 2 to 26 variants, got 0"),
        ([10] * 27, [1] * 27, "an experiment has 2 to 26 variants, got 27"),
        ([10, -1], [1, 0], "impressions[1] must not be negative, got -1"),
        ([10, 10], [-3, 0], "clicks[0] must not be negative, got -3"),
        ([10, 5], [1, 6], "clicks[1] = 6 is above impressions[1] = 5"),
        ([10, 1.5], [1, 0], "impressions[1] must be an integer, got 1.5 (float)"),
        ([10, 10.0], [1, 0], "impressions[1] must be an integer, got 10.0 (float)"),
        ([10, 10], [True, 0], "clicks[0] must be an integer, got True (bool)"),
        ([10, 10], [np.bool_(True), 0], "clicks[0] must be an integer, got np.True_ (bool)"),
        ([10, "3"], [1, 0], "impressions[1] must be an integer, got '3' (str)"),
        ([10, None], [1, 0], "impressions[1] must be an integer, got None (NoneType)"),
        ([10, 2**60], [1, 0], "impressions[1] = 1152921504606846976 is too large"),
        (None, [1, 0], "impressions must be a sequence of integers, one per variant, got NoneType"),
        ([10, 10], "10", "clicks must be a sequence of integers, one per variant, got str"),
        ({10, 20}, [1, 0], "impressions must be a sequence of integers, one per variant, got set"),
    ],
)
def test_invalid_counts_raise_value_error_saying_what_is_wrong(impressions, clicks, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        analyze(impressions, clicks)


@pytest.mark.parametrize("alpha", [0, 1, 0.0, 1.0, -0.1, 1.5, True, "0.05", None, float("nan")])
def test_invalid_alpha_raises_value_error(alpha):
    with pytest.raises(ValueError, match="alpha must be a number strictly between 0 and 1"):
        analyze([10, 10], [1, 2], alpha=alpha)


# -- precision ----------------------------------------------------------------------


def test_the_z_test_at_a_billion_impressions_is_exact():
    # One click apart at 10^9 impressions each: ctr_b - ctr_a cancels in floats.
    # Exact: diff = 1/10^9, pooled p = (10^9 + 1) / (2 10^9), z = diff / sqrt(p (1 - p) 2 / 10^9),
    # evaluated in rationals and 40-digit decimals.
    n, k = 10**9, 5 * 10**8
    diff = Fraction(k + 1, n) - Fraction(k, n)
    pooled = Fraction(2 * k + 1, 2 * n)
    variance = pooled * (1 - pooled) * Fraction(2, n)
    with decimal.localcontext() as context:
        context.prec = 40
        exact_z = (Decimal(diff.numerator) / Decimal(diff.denominator)) / (
            Decimal(variance.numerator) / Decimal(variance.denominator)
        ).sqrt()
    test = pair(analyze([n, n], [k, k + 1]), 0, 1)
    assert test["diff"] == float(diff)
    assert test["z"] == pytest.approx(float(exact_z), rel=1e-13)
    assert float(exact_z) == pytest.approx(4.4721359550e-05, rel=1e-10)  # issue #13's figure


# -- the anytime-valid tests and the decision in the document --------------------------


def test_the_document_carries_the_sequential_tests_and_the_decision_in_order():
    document = analyze([30000] * 3, [600, 640, 570])
    assert list(document) == ["variants", "tests", "decision", "alpha", "notes"]
    assert list(document["tests"]) == ["chi_square", "pairwise", "sequential"]
    sequential = document["tests"]["sequential"]
    assert list(sequential) == ["cs", "e_values", "threshold", "call"]
    assert sequential["threshold"] == pytest.approx(2 / 0.05)
    assert [(p["a"], p["b"]) for p in sequential["e_values"]] == [(0, 1), (0, 2), (1, 2)]
    assert sequential["call"] == {"winner": None, "proven": False}
    for (low, high), row in zip(sequential["cs"], document["variants"], strict=True):
        # The anytime interval at alpha / K is wider than the fixed-sample one at alpha.
        assert low < row["ctr_ci"][0] <= row["ctr"] <= row["ctr_ci"][1] < high
    assert list(document["decision"]) == [
        "leader",
        "expected_loss",
        "loss_if_not_best",
        "safe_to_stop",
        "threshold",
        "readers_to_call",
    ]
    json.dumps(document, allow_nan=False)


def test_the_decision_s_two_losses_are_issue_13s():
    # Issue #13: B has P(best) 0.864, costs 0.08 clicks per 1,000 readers
    # unconditionally and 0.57 given it is not the best (E[loss] / (1 - P(best))).
    report = build_report([30000] * 3, [600, 640, 570], forecast=False)
    decision = report.decision
    assert decision.leader == 1
    assert report.variants[1].prob_best == pytest.approx(0.864, abs=5e-4)
    assert 1000 * decision.expected_loss == pytest.approx(0.08, abs=0.005)
    assert 1000 * decision.loss_if_not_best == pytest.approx(0.57, abs=0.005)
    assert report.variants[1].loss_if_not_best == pytest.approx(decision.loss_if_not_best)


def test_a_clear_winner_is_proven_and_named_by_index():
    document = analyze([1500, 1500, 1500], [30, 120, 35])
    assert document["tests"]["sequential"]["call"] == {"winner": 1, "proven": True}
    assert document["decision"]["leader"] == 1 and document["decision"]["safe_to_stop"]
