"""Time-stratified CTRs (abtest.stratified) against values computed independently:
exact rational arithmetic, R, and a fixed-seed simulation of Simpson's paradox.

``python tests/test_stratified.py`` prints the simulation's figures (docs/decisions.md).
"""

from __future__ import annotations

import math
import random
import re
from fractions import Fraction

import numpy as np
import pytest
from helpers import SLUG
from test_dashboard import sign_in

from abtest.report import ExperimentReport
from abtest.stratified import stratify

# Three variants over five hours; hour 4 has no impressions of B and hour 5 none of A,
# so only hours 1-3 are common.
IMPRESSIONS = [[120, 300, 50, 0, 80], [400, 100, 60, 10, 0], [200, 200, 200, 5, 9]]
CLICKS = [[9, 12, 1, 0, 2], [20, 3, 2, 1, 0], [11, 9, 6, 0, 1]]

# From R 4 (r-base-core), written out independently of the code under test:
#   n <- rbind(c(120,300,50,0,80), c(400,100,60,10,0), c(200,200,200,5,9))
#   x <- rbind(c(9,12,1,0,2), c(20,3,2,1,0), c(11,9,6,0,1))
#   H <- which(colSums(n > 0) == nrow(n)); w <- colSums(n[, H]) / sum(n[, H])
#   p <- x[, H] / n[, H]; p %*% w; sqrt((p * (1 - p) / n[, H]) %*% w^2)
#   rowSums(x) / rowSums(n)
R_CTR = [0.051656441717791407, 0.039468302658486713, 0.046564417177914104]
R_SE = [0.012013441729569842, 0.009056703854048432, 0.0092240391023448512]
R_POOLED = [0.04363636363636364, 0.045614035087719301, 0.043973941368078175]


def exact(impressions, clicks):
    """Stratified CTR and variance per variant in exact rationals, from the definition."""
    periods = range(len(impressions[0]))
    common = [h for h in periods if all(row[h] for row in impressions)]
    total = sum(row[h] for row in impressions for h in common)
    weights = {h: Fraction(sum(row[h] for row in impressions), total) for h in common}
    out = []
    for shown, clicked in zip(impressions, clicks, strict=True):
        rates = {h: Fraction(clicked[h], shown[h]) for h in common}
        ctr = sum(weights[h] * rates[h] for h in common)
        variance = sum(weights[h] ** 2 * rates[h] * (1 - rates[h]) / shown[h] for h in common)
        pooled = Fraction(sum(clicked), sum(shown)) if sum(shown) else None
        out.append((ctr, variance, pooled))
    return out


def test_against_r():
    result = stratify(IMPRESSIONS, CLICKS)
    for row, ctr, se, pooled in zip(result.variants, R_CTR, R_SE, R_POOLED, strict=True):
        assert row.ctr == pytest.approx(ctr, rel=1e-12)
        assert row.se == pytest.approx(se, rel=1e-12)
        assert row.pooled == pytest.approx(pooled, rel=1e-12)
        assert row.periods == 3
    # This table is itself a Simpson's paradox: A leads within the hours, B pooled.
    assert (result.leader, result.pooled_leader, result.simpson) == (0, 1, True)


@pytest.mark.parametrize("seed", range(20))
def test_against_exact_rationals(seed):
    rng = random.Random(seed)
    variants, periods = rng.randint(2, 5), rng.randint(1, 8)
    impressions = [[rng.choice([0, 1, 2, 7, rng.randint(0, 5000)]) for _ in range(periods)]]
    impressions += [[rng.randint(0, 5000) for _ in range(periods)] for _ in range(variants - 1)]
    clicks = [[rng.randint(0, n) for n in row] for row in impressions]
    result = stratify(impressions, clicks)
    for row, (ctr, variance, pooled) in zip(
        result.variants, exact(impressions, clicks), strict=True
    ):
        if row.periods == 0:
            assert row.ctr is None and row.se is None
        else:
            assert row.ctr == pytest.approx(float(ctr), rel=1e-12, abs=1e-15)
            assert row.se == pytest.approx(math.sqrt(variance), rel=1e-12, abs=1e-15)
        assert row.pooled == (None if pooled is None else pytest.approx(float(pooled), rel=1e-12))


def test_weights_are_the_same_for_every_variant():
    # Equal CTRs in every hour give equal stratified CTRs however traffic was split,
    # while the pooled CTRs differ.
    impressions = [[900, 100], [100, 900]]
    clicks = [[90, 1], [10, 9]]
    result = stratify(impressions, clicks)
    assert result.variants[0].ctr == result.variants[1].ctr == pytest.approx(0.055)
    assert result.leader is None and result.pooled_leader == 0 and not result.simpson


def test_no_common_period():
    result = stratify([[10, 0], [0, 10]], [[1, 0], [0, 2]])
    assert [(r.ctr, r.se, r.periods) for r in result.variants] == [(None, None, 0)] * 2
    assert result.leader is None and result.pooled_leader == 1 and not result.simpson


def test_no_impressions_at_all():
    result = stratify([[], []], [[], []])
    assert [r.pooled for r in result.variants] == [None, None]
    assert result.leader is None and result.pooled_leader is None and not result.simpson


@pytest.mark.parametrize(
    ("impressions", "clicks"),
    [([[1, 2]], [[1, 2], [0, 0]]), ([[1, 2], [1]], [[0, 0], [0]]), ([[1]], [[2]]), ([[-1]], [[0]])],
)
def test_bad_counts_are_refused(impressions, clicks):
    with pytest.raises(ValueError):
        stratify(impressions, clicks)


# -- in the stats document, from the hourly series in Redis ---------------------------


def _count(service, hour_start, variant, shown, clicked):
    service.store.record_impressions([(SLUG, variant)] * shown, now=hour_start + 60)
    for i in range(clicked):
        service.store.record_click(
            SLUG, variant, f"{variant}{hour_start}-{i}", 3600, hour_start + 90
        )


def _paradox(service) -> None:
    """Hour 1, the story fresh: A 3 of 10, B 18 of 90.  Hour 2: A 9 of 90, B 0 of 10.
    C 0 of 10 in both.  Pooled B leads (18% against 12%); within each hour A does."""
    first = (int(service.store.get(SLUG).created_at) // 3600 + 1) * 3600
    for hour, counts in enumerate([{"a": (10, 3), "b": (90, 18)}, {"a": (90, 9), "b": (10, 0)}]):
        for variant, (shown, clicked) in {**counts, "c": (10, 0)}.items():
            _count(service, first + 3600 * hour, variant, shown, clicked)
    service.clock = lambda: first + 2 * 3600 - 1


def test_the_stats_document_carries_the_stratified_ctrs(service):
    _paradox(service)
    document = service.report(SLUG).to_json()
    rows = [row["stratified"] for row in document["variants"]]
    # Weights 110/220 for each hour: A 0.3/2 + 0.1/2, B 0.2/2 + 0/2, C 0.
    assert [row["ctr"] for row in rows] == pytest.approx([0.2, 0.1, 0.0])
    assert [row["pooled"] for row in rows] == pytest.approx([0.12, 0.18, 0.0])
    assert [row["periods"] for row in rows] == [2, 2, 2]
    se_a = math.sqrt(0.25 * 0.3 * 0.7 / 10 + 0.25 * 0.1 * 0.9 / 90)
    assert rows[0]["se"] == pytest.approx(se_a)
    assert [row["ctr"] for row in document["variants"]] == pytest.approx([0.12, 0.18, 0.0])
    assert document["simpson"] is True
    # Read back from JSON (as an audit entry keeps it), the flag stands.
    assert ExperimentReport.from_json(document).to_json() == document


def test_the_dashboard_shows_the_ctr_by_hour_and_warns(client, service):
    _paradox(service)
    assert sign_in(client).status_code == 303
    page = client.get(f"/dashboard/{SLUG}").text
    half_a = 1.959964 * math.sqrt(0.25 * 0.3 * 0.7 / 10 + 0.25 * 0.1 * 0.9 / 90)
    assert 'id="by-hour-a"' in page and f"by hour 20.00% ± {100 * half_a:.2f}%" in page
    assert "by hour 10.00% ±" in page and "by hour 0.00% ± 0.00%" in page
    warning = re.search(r'<p class="warning" id="simpson">(.*?)</p>', page, re.S).group(1)
    assert "Hour by hour, headline A is clicked more" in warning
    assert "over all readers together headline B is" in warning


def test_no_warning_when_they_agree(client, service):
    first = (int(service.store.get(SLUG).created_at) // 3600 + 1) * 3600
    for variant, shown, clicked in [("a", 50, 10), ("b", 50, 2), ("c", 50, 1)]:
        _count(service, first, variant, shown, clicked)
    service.clock = lambda: first + 3599
    assert service.report(SLUG).simpson is False
    assert sign_in(client).status_code == 303
    page = client.get(f"/dashboard/{SLUG}").text
    assert "by hour 20.00% ±" in page and 'id="simpson"' not in page


def test_no_impressions_no_stratified_ctr(service):
    document = service.report(SLUG).to_json()
    assert all(row["stratified"]["periods"] == 0 for row in document["variants"])
    assert all(row["stratified"]["ctr"] is None for row in document["variants"])
    assert document["simpson"] is False


# -- Simpson's paradox, simulated ---------------------------------------------------

HOURS = 6
#: The story's CTR decays by 40% an hour; A is 20% better than B at every age.
CTR_A = [0.06 * 0.6**h for h in range(HOURS)]
CTR_B = [0.05 * 0.6**h for h in range(HOURS)]
#: Readers an hour, falling as the story ages, and A's share: the bandit starts on B
#: and moves traffic to A as it learns, so A's readers come when the story is older.
READERS = [20000, 16000, 12000, 9000, 7000, 5000]
SHARE_A = [0.1, 0.3, 0.5, 0.7, 0.85, 0.95]


def simulate(runs: int, seed: int):
    """Per run: (stratified leader, pooled leader, A's and B's intervals cover the truth)."""
    rng = np.random.default_rng(seed)
    n_a = [round(r * s) for r, s in zip(READERS, SHARE_A, strict=True)]
    n_b = [r - a for r, a in zip(READERS, n_a, strict=True)]
    weights = [r / sum(READERS) for r in READERS]
    truth = [sum(w * p for w, p in zip(weights, ctr, strict=True)) for ctr in (CTR_A, CTR_B)]
    out = []
    for _ in range(runs):
        x_a = rng.binomial(n_a, CTR_A).tolist()
        x_b = rng.binomial(n_b, CTR_B).tolist()
        result = stratify([n_a, n_b], [x_a, x_b])
        covered = tuple(
            abs(row.ctr - true) <= 1.959964 * row.se
            for row, true in zip(result.variants, truth, strict=True)
        )
        out.append((result.leader, result.pooled_leader, covered))
    return out, truth


def test_simpson_simulation():
    runs = 400
    results, _ = simulate(runs, seed=17)
    stratified_right = sum(leader == 0 for leader, _, _ in results)
    pooled_wrong = sum(pooled == 1 for _, pooled, _ in results)
    flagged = sum(leader == 0 and pooled == 1 for leader, pooled, _ in results)
    # A is better at every age: stratified names it, pooled names B.
    assert stratified_right >= 0.95 * runs
    assert pooled_wrong >= 0.95 * runs
    assert flagged >= 0.9 * runs
    # The standard error is right: the 95% intervals cover the stratified truth
    # (binomial 95% range for 800 intervals at 0.95 is about 0.935-0.965).
    coverage = sum(sum(covered) for _, _, covered in results) / (2 * runs)
    assert 0.92 <= coverage <= 0.98


if __name__ == "__main__":
    runs = 1000
    results, truth = simulate(runs, seed=17)
    n_a = sum(round(r * s) for r, s in zip(READERS, SHARE_A, strict=True))
    n_b = sum(READERS) - n_a
    pooled_a = sum(r * s * p for r, s, p in zip(READERS, SHARE_A, CTR_A, strict=True)) / n_a
    pooled_b = sum(r * (1 - s) * p for r, s, p in zip(READERS, SHARE_A, CTR_B, strict=True)) / n_b
    print(f"expected pooled CTR  A {pooled_a:.3%}  B {pooled_b:.3%}")
    print(f"stratified truth     A {truth[0]:.3%}  B {truth[1]:.3%}")
    print(f"runs {runs}: stratified names A {sum(r[0] == 0 for r in results)}, ", end="")
    print(f"pooled names B {sum(r[1] == 1 for r in results)}, ", end="")
    print(f"flagged {sum(r[0] == 0 and r[1] == 1 for r in results)}")
    coverage = sum(sum(r[2]) for r in results) / (2 * runs)
    print(f"95% interval coverage {coverage:.3f}")
