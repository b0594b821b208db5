"""Thompson sampling over Beta posteriors: counts and a random generator in, a choice out.

Each variant's click-through rate has a Beta(1 + clicks, 1 + impressions -
clicks) posterior (a uniform prior updated by the counts).  For each new
visitor we draw one sample per variant and show the largest: a variant is
shown with exactly the probability that it is the best, given what we know.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["Posterior", "choose"]


class Posterior:
    """The Beta parameters of every variant, fixed for one count snapshot.

    Decisions are drawn in batches: one ``Generator.beta`` call draws
    ``BATCH`` samples per variant, and each decision takes the next column's
    argmax.  Every decision still gets its own independent draw from the
    current posterior (the same distribution as drawing on demand), at a
    fraction of the cost: numpy's per-call overhead is paid once per batch,
    not once per variant per reader (bench/bench_bandit.py).  A new count
    snapshot builds a new Posterior, so no decision uses stale counts.
    """

    __slots__ = ("alpha", "beta", "_choices")

    #: Decisions drawn per numpy call.  A busy worker rebuilds its posterior
    #: every 0.1 s (Service.COUNTS_MAX_AGE) after some dozens of readers.
    BATCH = 16

    def __init__(self, impressions: Sequence[int], clicks: Sequence[int]):
        if len(impressions) != len(clicks) or not len(impressions):
            raise ValueError("impressions and clicks must be equal-length, non-empty sequences")
        if any(k < 0 or k > n for n, k in zip(impressions, clicks, strict=True)):
            raise ValueError("counts must satisfy 0 <= clicks <= impressions")
        self.alpha = np.array([1.0 + k for k in clicks])
        self.beta = np.array([1.0 + n - k for n, k in zip(impressions, clicks, strict=True)])
        self._choices: Iterator[int] = iter(())

    def choose(self, rng: np.random.Generator) -> int:
        """Index of the variant whose posterior draw is largest (the first on a tie)."""
        # next() on a list iterator is atomic under the GIL: threads sharing a
        # posterior never get the same draw; if two refill at once, one batch
        # is simply dropped.
        choice = next(self._choices, None)
        if choice is None:
            draws = rng.beta(self.alpha[:, None], self.beta[:, None], (len(self.alpha), self.BATCH))
            self._choices = choices = iter(draws.argmax(axis=0).tolist())
            choice = next(choices)
        return choice


def choose(impressions: Sequence[int], clicks: Sequence[int], rng: np.random.Generator) -> int:
    """One Thompson-sampling decision: the index of the variant to show."""
    return Posterior(impressions, clicks).choose(rng)
