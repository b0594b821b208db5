"""Micro-benchmark: one Thompson-sampling decision, against a bare numpy draw.

    python bench/bench_bandit.py

Reports microseconds per decision (the best of several repeats) for 3 and 26
variants, beside the baseline of a single ``rng.random()`` call in the same
run: a decision as the reader path makes it (drawn ahead in batches, so this
is the amortized cost), one batch of ``Posterior.BATCH`` decisions, and the
rebuild of a posterior when fresh counts arrive.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from abtest.bandit import Posterior  # noqa: E402

NUMBER, REPEAT = 20_000, 7


def per_call_us(statement) -> float:
    return min(timeit.repeat(statement, number=NUMBER, repeat=REPEAT)) / NUMBER * 1e6


def main() -> None:
    rng = np.random.default_rng(1)
    baseline = per_call_us(rng.random)
    print("| case | us per decision | baseline rng.random() us | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for variants in (3, 26):
        impressions = [10_000 + 37 * i for i in range(variants)]
        clicks = [150 + i for i in range(variants)]
        posterior = Posterior(impressions, clicks)
        decision = per_call_us(lambda p=posterior: p.choose(rng))
        batch = per_call_us(lambda p=posterior: p.draw(rng, Posterior.BATCH))
        rebuild = per_call_us(lambda i=impressions, c=clicks: Posterior(i, c))
        rows = (
            ("choose (amortized)", decision),
            (f"draw a batch of {Posterior.BATCH}", batch),
            ("rebuild posterior", rebuild),
        )
        for name, us in rows:
            ratio = us / baseline
            print(f"| {variants} variants: {name} | {us:.2f} | {baseline:.2f} | {ratio:.1f} |")


if __name__ == "__main__":
    main()
