"""The stats report: counts in, a typed :class:`~abtest.report.Report` out (pure numpy/scipy).

:func:`build_report` takes each variant's impressions and clicks and computes
per variant the click-through rate with its Wilson interval, its share of
traffic, and the Bayesian P(best) and expected loss (:mod:`abtest.posterior`);
then the fixed-sample tests (a chi-square test of independence over all
variants and a pooled two-proportion z-test for every pair, Holm-adjusted).
:func:`analyze` is the same as the JSON-ready dict of SPEC ("The stats
document"), which also carries ``alpha``, a ``note`` on every variant and
test (``None`` when all is well) and a top-level ``notes`` list.

Nothing in the document is ever NaN or infinite.  A number that can't be
computed is ``None`` (JSON ``null``), and the object it belongs to carries a
``note``, ``{"code": ..., "message": ...}``, saying why.  The codes are stable:

``no_impressions``
    a variant has no impressions (its interval, the chi-square test and every
    pair it is in are undefined);
``no_clicks``
    nobody clicked, overall (chi-square) or in either variant of a pair;
``all_clicked``
    every impression was clicked, overall or in both variants of a pair.

Messages are phrases for editors ("variant C has no impressions") and name
variants A, B, C, ... by position, as the product's variant ids ``a``, ``b``,
``c``, ... do.  The top-level ``notes`` summarise: one note naming every
variant without impressions, the chi-square's reason if it has another, and
the reasons only some pairs are undefined.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence, Set
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as scipy_stats

from . import decision, posterior, sequential
from .report import (
    ChiSquareTest,
    DecisionReport,
    Note,
    PairEvidence,
    PairwiseTest,
    ReadersToCall,
    Report,
    SeenCheck,
    SequentialReport,
    VariantStats,
    variant_name,
)
from .verdicts import join_words

__all__ = ["analyze", "build_report", "wilson_interval", "seen_check"]

#: An experiment compares at least two and at most 26 headlines (ids a..z).
_MIN_VARIANTS = 2
_MAX_VARIANTS = 26

# Counts above 2**53 are no longer exact as float64, which every formula below
# works in; no experiment comes near (that is 10**6 readers a second for 285 years).
_MAX_COUNT = 2**53


def analyze(
    impressions: Sequence[int], clicks: Sequence[int], alpha: float = 0.05
) -> dict[str, Any]:
    """The stats document for one experiment, as a plain JSON-ready dict (SPEC's order).

    The same as ``build_report(impressions, clicks, alpha).to_json()``.
    """
    return build_report(impressions, clicks, alpha).to_json()


def build_report(
    impressions: Sequence[int],
    clicks: Sequence[int],
    alpha: float = 0.05,
    *,
    threshold: float | None = None,
    mode: str = "clicks",
    forecast: bool = True,
    relative_threshold: float | None = None,
) -> Report:
    """The stats report for one experiment.

    ``impressions`` and ``clicks`` are equal-length sequences of non-negative
    integers (Python or numpy integers; bools and floats are refused), one per
    variant, 2 to 26 variants, with ``clicks[i] <= impressions[i]``.  ``alpha``
    (0 < alpha < 1) sets the interval level ``1 - alpha``.  Invalid input
    raises :class:`ValueError` saying what is wrong; small or empty counts
    never raise, they give ``None`` numbers with a note.

    Per variant: ``ctr`` is 0.0 without impressions; ``ctr_ci`` is the Wilson
    score interval (no continuity correction), ``None`` without impressions;
    ``allocation`` is the share of all impressions, 0.0 for every variant
    while there are none at all; ``prob_best`` (they sum to 1) and
    ``expected_loss`` come from independent Beta(1 + clicks, 1 + impressions -
    clicks) posteriors, so they are defined (from the uniform prior) even
    before any data.

    Then the anytime-valid tests (:mod:`abtest.sequential`: each variant's
    confidence sequence at level 1 - alpha / K, the pairwise e-values and the
    proven call) and the stop advice (:mod:`abtest.decision`: the leader's
    expected loss against ``threshold``, clicks per reader, by default the
    share ``relative_threshold`` (default 2%) of the leader's CTR; with
    ``forecast``, the readers until a proven call and a safe stop are likely,
    simulated under the allocation ``mode``).
    """
    alpha = _check_alpha(alpha)
    impressions_list, clicks_list = _check_counts(impressions, clicks)
    impressions_array = np.array(impressions_list, dtype=np.float64)
    clicks_array = np.array(clicks_list, dtype=np.float64)

    posteriors = posterior.compare(impressions_array, clicks_array)
    lows, highs = wilson_interval(impressions_array, clicks_array, alpha)
    total = sum(impressions_list)

    variants = tuple(
        VariantStats(
            impressions=n,
            clicks=k,
            ctr=k / n if n else 0.0,
            ctr_ci=(float(lows[index]), float(highs[index])) if n else None,
            allocation=n / total if total else 0.0,
            prob_best=float(posteriors.prob_best[index]),
            expected_loss=float(posteriors.expected_loss[index]),
            note=None if n else _no_impressions([index]),
        )
        for index, (n, k) in enumerate(zip(impressions_list, clicks_list, strict=True))
    )

    chi_square = _chi_square(impressions_list, clicks_list)
    pairwise = _pairwise(impressions_list, clicks_list)

    # The summary: one note naming every variant without impressions, then the
    # overall reason the chi-square is missing, then what only some pairs lack.
    empty = [index for index, n in enumerate(impressions_list) if n == 0]
    summary = [_no_impressions(empty)] if empty else []
    overall = chi_square.note.code if chi_square.note else None
    summary += [
        test.note
        for test in (chi_square, *pairwise)
        if test.note is not None
        and test.note.code != "no_impressions"
        and (test is chi_square or test.note.code != overall)
    ]
    notes = tuple(dict.fromkeys(summary))  # frozen dataclasses hash: dedupe, keep order

    return Report(
        alpha=alpha,
        variants=variants,
        chi_square=chi_square,
        pairwise=tuple(pairwise),
        notes=notes,
        sequential=_sequential(impressions_list, clicks_list, alpha),
        decision=_decision(
            impressions_list,
            clicks_list,
            alpha,
            threshold=threshold,
            mode=mode,
            forecast=forecast,
            relative_threshold=relative_threshold,
        ),
    )


def _sequential(impressions: list[int], clicks: list[int], alpha: float) -> SequentialReport:
    tests = sequential.sequential_tests(impressions, clicks, alpha)
    count = len(impressions)
    return SequentialReport(
        alpha=alpha,
        cs=tests.intervals,
        pairs=tuple(
            PairEvidence(a, b, tests.e_values[a][b], tests.e_values[b][a])
            for a in range(count)
            for b in range(a + 1, count)
        ),
        threshold=tests.threshold,
        winner=tests.winner,
    )


def _decision(
    impressions: list[int],
    clicks: list[int],
    alpha: float,
    *,
    threshold: float | None,
    mode: str,
    forecast: bool,
    relative_threshold: float | None = None,
) -> DecisionReport:
    decided = decision.decide(
        impressions,
        clicks,
        threshold=threshold,
        mode=mode,
        alpha=alpha,
        forecast=forecast,
        relative_threshold=relative_threshold,
    )
    forecast_result = decided.readers_to_call
    return DecisionReport(
        leader=decided.leader,
        expected_loss=decided.expected_loss,
        loss_if_not_best=decided.loss_if_not_best,
        threshold=decided.threshold,
        safe_to_stop=decided.safe_to_stop,
        readers_to_call=None
        if forecast_result is None
        else ReadersToCall(
            forecast_result.proven, forecast_result.safe_to_stop, forecast_result.horizon
        ),
    )


def _no_impressions(indices: list[int]) -> Note:
    names = [variant_name(index) for index in indices]
    if len(names) == 1:
        return Note("no_impressions", f"variant {names[0]} has no impressions")
    return Note("no_impressions", f"variants {join_words(names)} have no impressions")


# -- input ---------------------------------------------------------------------


def _check_alpha(alpha: object) -> float:
    if (
        isinstance(alpha, bool | np.bool_)
        or not isinstance(alpha, numbers.Real)
        or not 0.0 < float(alpha) < 1.0
    ):
        raise ValueError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}")
    return float(alpha)


def _as_list(name: str, values: object) -> list[object]:
    # Any ordered iterable of counts (list, tuple, numpy array); not text, and
    # not sets or mappings, whose order says nothing about which variant is which.
    if isinstance(values, str | bytes | Set | Mapping) or not isinstance(values, Iterable):
        raise ValueError(
            f"{name} must be a sequence of integers, one per variant, got {type(values).__name__}"
        )
    return list(values)


def _check_counts(impressions: object, clicks: object) -> tuple[list[int], list[int]]:
    impressions_list = _as_list("impressions", impressions)
    clicks_list = _as_list("clicks", clicks)
    if len(impressions_list) != len(clicks_list):
        raise ValueError(
            "impressions and clicks must have one entry per variant each, got "
            f"{len(impressions_list)} and {len(clicks_list)} entries"
        )
    if not _MIN_VARIANTS <= len(impressions_list) <= _MAX_VARIANTS:
        raise ValueError(
            f"an experiment has {_MIN_VARIANTS} to {_MAX_VARIANTS} variants, "
            f"got {len(impressions_list)}"
        )
    checked: dict[str, list[int]] = {}
    for name, values in (("impressions", impressions_list), ("clicks", clicks_list)):
        checked[name] = []
        for index, value in enumerate(values):
            # bool is an int subclass and np.bool_ is not np.integer; neither is a count.
            if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
                raise ValueError(
                    f"{name}[{index}] must be an integer, got {value!r} ({type(value).__name__})"
                )
            if value < 0:
                raise ValueError(f"{name}[{index}] must not be negative, got {value}")
            if value > _MAX_COUNT:
                raise ValueError(f"{name}[{index}] = {value} is too large (at most 2**53)")
            checked[name].append(int(value))
    for index, (n, k) in enumerate(zip(checked["impressions"], checked["clicks"], strict=True)):
        if k > n:
            raise ValueError(
                f"clicks[{index}] = {k} is above impressions[{index}] = {n}: "
                "a variant can't have more clicks than impressions"
            )
    return checked["impressions"], checked["clicks"]


# -- frequentist ---------------------------------------------------------------


def wilson_interval(
    impressions: np.ndarray | Sequence[int], clicks: np.ndarray | Sequence[int], alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score intervals (no continuity correction) at level ``1 - alpha``, elementwise.

    ``impressions`` and ``clicks`` are arrays (any equal shape) of counts;
    returns the arrays ``(low, high)``.  Where there are no impressions the
    interval is the whole [0, 1]; :func:`analyze` gives ``None`` there instead.
    """
    impressions = np.asarray(impressions, dtype=np.float64)
    clicks = np.asarray(clicks, dtype=np.float64)
    # The formula of scipy's binomtest(k, n).proportion_ci(1 - alpha,
    # method="wilson") and R's prop.test(correct = FALSE)$conf.int (Newcombe
    # 1998, method 3), vectorised: scipy builds a binomtest per variant and
    # computes an exact binomial p-value we don't need, about 1 ms each.  The
    # tests check agreement with scipy to 1e-12.  One deliberate difference:
    # z = -ndtri(alpha / 2) rather than ndtri(1 - alpha / 2), the same number
    # but accurate for small alpha and finite even where 1 - alpha / 2 rounds to 1.
    n = np.where(impressions > 0, impressions, 1.0)
    p = clicks / n
    q = 1 - p
    z = -special.ndtri(alpha / 2)
    denominator = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denominator
    delta = z / denominator * np.sqrt(4 * n * p * q + z**2)
    # Exactly 0 and 1 at the edges (scipy and R do the same): p is then an endpoint.
    low = np.where(clicks == 0, 0.0, center - delta)
    high = np.where(clicks == impressions, 1.0, center + delta)
    # Inside, the interval contains p strictly; when alpha is near 1 (z near 0)
    # the margin is below rounding, so keep p inside and the ends in [0, 1].
    return np.clip(np.minimum(low, p), 0.0, 1.0), np.clip(np.maximum(high, p), 0.0, 1.0)


def _chi_square(impressions: list[int], clicks: list[int]) -> ChiSquareTest:
    dof = len(impressions) - 1
    empty = [index for index, n in enumerate(impressions) if n == 0]
    note = None
    if empty:
        note = _no_impressions(empty)
    elif sum(clicks) == 0:
        note = Note("no_clicks", "no clicks so far")
    elif sum(clicks) == sum(impressions):
        note = Note("all_clicked", "every impression so far was clicked")
    if note:
        # A zero row or column makes an expected count zero: X² is 0/0.
        return ChiSquareTest(None, dof, None, note)
    table = np.array([clicks, [n - k for n, k in zip(impressions, clicks, strict=True)]]).T
    result = scipy_stats.chi2_contingency(table, correction=False)
    return ChiSquareTest(float(result.statistic), dof, float(result.pvalue))


def _pairwise(impressions: list[int], clicks: list[int]) -> list[PairwiseTest]:
    """Every pair i < j in index order, Holm-adjusted over the pairs whose test is defined."""
    first, second = np.triu_indices(len(impressions), k=1)
    n = np.array(impressions, dtype=np.float64)
    k = np.array(clicks, dtype=np.float64)
    n_a, n_b, k_a, k_b = n[first], n[second], k[first], k[second]

    # Pooled two-proportion z-test, as statsmodels' proportions_ztest and
    # R's prop.test(correct = FALSE) (whose X-squared is z²):
    #   p = (k_a + k_b) / (n_a + n_b),  se = sqrt(p (1 - p) (1/n_a + 1/n_b)),
    #   z = (ctr_b - ctr_a) / se,       p-value = 2 P(Z > |z|).
    # se is zero exactly when a side has no impressions or the pooled rate is 0 or 1;
    # those pairs are undefined and left out below.
    defined = (n_a > 0) & (n_b > 0) & (k_a + k_b > 0) & (k_a + k_b < n_a + n_b)
    # ctr_b - ctr_a from the integers: in floats the two rates cancel (at 10^9
    # impressions a difference of one click keeps only 8 of its digits).
    diff = np.array(
        [
            float(
                Fraction(
                    impressions[a] * clicks[b] - impressions[b] * clicks[a],
                    impressions[a] * impressions[b],
                )
            )
            if impressions[a] and impressions[b]
            else (clicks[b] / impressions[b] if impressions[b] else 0.0)
            - (clicks[a] / impressions[a] if impressions[a] else 0.0)
            for a, b in zip(first.tolist(), second.tolist(), strict=True)
        ]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (k_a + k_b) / (n_a + n_b)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
        z = np.where(defined, diff / se, 0.0)
    p_value = 2 * scipy_stats.norm.sf(np.abs(z))
    p_holm = np.zeros_like(p_value)
    p_holm[defined] = _holm(p_value[defined])

    tests = []
    for pair, (a, b) in enumerate(zip(first.tolist(), second.tolist(), strict=True)):
        if defined[pair]:
            values = (diff[pair], z[pair], p_value[pair], p_holm[pair])
            tests.append(PairwiseTest(a, b, *(float(value) for value in values)))
            continue
        empty = [i for i in (a, b) if impressions[i] == 0]
        has_impressions = not empty
        if empty:
            note = _no_impressions(empty)
        elif clicks[a] + clicks[b] == 0:
            note = Note("no_clicks", f"neither {variant_name(a)} nor {variant_name(b)} has a click")
        else:
            note = Note(
                "all_clicked",
                f"every impression of {variant_name(a)} and {variant_name(b)} was clicked",
            )
        pair_diff = float(diff[pair]) if has_impressions else None
        tests.append(PairwiseTest(a, b, pair_diff, None, None, None, note))
    return tests


#: The seen-share check's thresholds: a headline is flagged when its share of
#: readers who saw the slot differs from every other headline's by more than
#: SEEN_RELATIVE (a relative difference) and beyond chance at SEEN_ALPHA after
#: Holm's adjustment over the pairs.  The alpha is strict because editors look
#: all day (every look is another test), and the relative margin keeps a huge
#: test from flagging a trivial difference.
SEEN_ALPHA = 0.001
SEEN_RELATIVE = 0.10
#: The check applies once beacons reported this many seen impressions, and at
#: least twice as many as there were clicks (a counted click also counts its
#: impression as seen: without beacons on the page, seen impressions are just
#: the clickers, whose share says nothing of the slot).
SEEN_MINIMUM = 100


def seen_check(served: Sequence[int], seen: Sequence[int], clicks: Sequence[int]) -> SeenCheck:
    """Flag each headline whose seen share (seen / served) differs from every other's.

    Each pair's shares are compared by the 2x2 chi-square test without
    continuity correction (R's ``prop.test(..., correct = FALSE)``),
    Holm-adjusted over the pairs.  Against every other headline, not the
    others pooled: one headline far off would make the pooled rest look off
    to the others.  With two headlines both are flagged (nothing says which
    slot moved).  ``p_values`` gives, per headline, the largest adjusted
    p-value of its comparisons (how sure the weakest of them is).
    """
    variants = len(served)
    total_seen = sum(seen)
    if total_seen < SEEN_MINIMUM or total_seen < 2 * sum(clicks) or variants < 2:
        return SeenCheck()
    pairs = [(i, j) for i in range(variants) for j in range(i + 1, variants)]
    raw: list[float] = []
    defined: list[tuple[int, int]] = []
    for i, j in pairs:
        table = np.array([[seen[i], served[i] - seen[i]], [seen[j], served[j] - seen[j]]])
        if table.sum(axis=1).min() == 0 or table.sum(axis=0).min() == 0:
            continue
        raw.append(float(scipy_stats.chi2_contingency(table, correction=False).pvalue))
        defined.append((i, j))
    adjusted = dict(zip(defined, _holm(np.array(raw)).tolist(), strict=True))

    def apart(i: int, j: int) -> tuple[bool, float | None]:
        p = adjusted.get((min(i, j), max(i, j)))
        if p is None or not seen[j]:
            return False, p
        share = (seen[i] / served[i]) / (seen[j] / served[j])
        return p < SEEN_ALPHA and abs(share - 1.0) > SEEN_RELATIVE, p

    flagged, p_values = [], []
    for i in range(variants):
        found = [apart(i, j) for j in range(variants) if j != i]
        flagged.append(all(far for far, _ in found))
        known = [p for _, p in found if p is not None]
        p_values.append(max(known) if len(known) == len(found) else None)
    return SeenCheck(True, tuple(flagged), tuple(p_values))


def _holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values, as R's ``p.adjust(p, "holm")``."""
    # With the m p-values sorted ascending, p_(i) becomes
    #   min(1, max_{j <= i} (m - j + 1) p_(j)),
    # the running maximum keeping the adjusted values in the same order as
    # the raw ones.  Ties get equal adjusted values whatever their order.
    m = len(p_values)
    if m == 0:
        return p_values
    order = np.argsort(p_values, kind="stable")
    scaled = np.maximum.accumulate((m - np.arange(m)) * p_values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, scaled)
    return adjusted
