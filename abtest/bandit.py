"""Thompson sampling over Beta posteriors: counts and a random generator in, a choice out.

Each variant's click-through rate has a Beta(1 + clicks, 1 + impressions -
clicks) posterior (a uniform prior updated by the counts).  For each new
visitor we draw one sample per variant and show the largest: a variant is
shown with exactly the probability that it is the best, given what we know.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Posterior", "choose"]


class Posterior:
    """The Beta parameters of every variant, and decisions drawn ahead from them.

    One posterior serves one count snapshot (a worker rebuilds it when fresh
    counts arrive, every 0.1 s or so under traffic).  Decisions are drawn in
    batches, one broadcast ``Generator.beta`` call for all variants, and
    handed out one per call; a posterior's first batch is small (a quiet
    story's snapshot is replaced before it uses many) and each next one
    twice the last, up to ``BATCH``.  Each decision is still an
    independent draw from exactly this posterior, so the choice frequencies
    are those of drawing per visitor, for a fraction of numpy's per-call cost
    (bench/bench_bandit.py).  A decision drawn but never handed out (the
    snapshot moved on) is simply dropped, which biases nothing.
    """

    __slots__ = ("alpha", "beta", "_decisions", "_batch")

    #: The most decisions drawn in one numpy call, and the first batch's size.
    BATCH, FIRST_BATCH = 64, 4

    def __init__(self, impressions: Sequence[int], clicks: Sequence[int]):
        if len(impressions) != len(clicks) or not len(impressions):
            raise ValueError("impressions and clicks must be equal-length, non-empty sequences")
        if any(k < 0 or k > n for n, k in zip(impressions, clicks, strict=True)):
            raise ValueError("counts must satisfy 0 <= clicks <= impressions")
        # One row per variant: a batch's draws broadcast along the columns.
        alpha = [[1.0 + k] for k in clicks]
        beta = [[1.0 + n - k] for n, k in zip(impressions, clicks, strict=True)]
        self.alpha, self.beta = np.array(alpha), np.array(beta)
        self._decisions: list[int] = []
        self._batch = self.FIRST_BATCH

    def choose(self, rng: np.random.Generator) -> int:
        """Index of the variant whose posterior draw is largest (the first on a tie).

        ``rng`` draws the next batch when this one is used up.  ``list.pop``
        is atomic, so threads (gthread workers) may share a posterior: each
        decision goes to one caller.
        """
        try:
            return self._decisions.pop()
        except IndexError:
            size = self._batch
            self._batch = min(2 * size, self.BATCH)
            batch = self.draw(rng, size)
            choice = batch.pop()  # before sharing it: another thread may empty it
            self._decisions = batch
            return choice

    def draw(self, rng: np.random.Generator, size: int) -> list[int]:
        """``size`` independent decisions: per column, the index of the largest draw."""
        samples = rng.beta(self.alpha, self.beta, size=(len(self.alpha), size))
        return samples.argmax(axis=0).tolist()


def choose(impressions: Sequence[int], clicks: Sequence[int], rng: np.random.Generator) -> int:
    """One Thompson-sampling decision: the index of the variant to show."""
    return Posterior(impressions, clicks).choose(rng)
