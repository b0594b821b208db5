"""Benchmark: the whole stats document, against scipy's chi-square test alone.

    python bench/bench_stats.py

Times ``abtest.stats.analyze`` (the whole document, with the decision's
simulated forecast) and ``build_report(..., forecast=False)`` (everything
else) for 3 and 26 variants, at small counts (thousands of impressions) and
at 10^8 impressions per variant with close click-through rates (the
needle-thin posteriors P(best) has to integrate).  Reports the median
milliseconds per call over the repeats and, as the baseline in the same run,
``scipy.stats.chi2_contingency`` on the same variants x (clicks, non-clicks)
table.  No thresholds: read the ratios.  The service caches a report per
counts, so these are paid once per change in the counts, not per page view.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from abtest.stats import analyze, build_report  # noqa: E402

REPEAT = 15


def median_ms(statement, number: int) -> float:
    return statistics.median(timeit.repeat(statement, number=number, repeat=REPEAT)) / number * 1e3


def counts(variants: int, impressions: int, rate: float) -> tuple[list[int], list[int]]:
    """Slightly unequal traffic and CTRs a fraction of a posterior sd apart."""
    sd = (rate * (1 - rate) / impressions) ** 0.5
    shown = [impressions - impressions // 100 * i // variants for i in range(variants)]
    clicked = [round(n * (rate + 0.3 * sd * i)) for i, n in enumerate(shown)]
    return shown, clicked


def _clear_forecast_cache() -> None:
    from abtest import decision

    decision._readers_to_call.cache_clear()


def main() -> None:
    cases = [
        (3, 5_000, 0.04),
        (26, 5_000, 0.04),
        (3, 10**8, 0.05),
        (26, 10**8, 0.05),
    ]
    print("| case | analyze ms | without forecast ms | chi2_contingency ms | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for variants, impressions, rate in cases:
        shown, clicked = counts(variants, impressions, rate)
        table = np.array([clicked, [n - k for n, k in zip(shown, clicked, strict=True)]]).T
        # The forecast is cached per counts inside abtest.decision: time a fresh one each call.
        whole = median_ms(
            lambda s=shown, c=clicked: (_clear_forecast_cache(), analyze(s, c)), number=5
        )
        quick = median_ms(lambda s=shown, c=clicked: build_report(s, c, forecast=False), number=20)
        baseline = median_ms(
            lambda t=table: scipy_stats.chi2_contingency(t, correction=False), number=200
        )
        label = f"{variants} variants x {impressions:.0e} impressions"
        print(f"| {label} | {whole:.2f} | {quick:.2f} | {baseline:.3f} | {quick / baseline:.1f} |")


if __name__ == "__main__":
    main()
