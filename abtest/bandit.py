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
    """The Beta parameters of every variant, precomputed once per count snapshot.

    Building the arrays once and reusing them keeps a decision to one numpy
    call (``Generator.beta`` broadcasts over the parameter arrays).
    """

    __slots__ = ("alpha", "beta")

    def __init__(self, impressions: Sequence[int], clicks: Sequence[int]):
        clicks_array = np.asarray(clicks, dtype=np.float64)
        impressions_array = np.asarray(impressions, dtype=np.float64)
        if clicks_array.shape != impressions_array.shape or clicks_array.ndim != 1:
            raise ValueError("impressions and clicks must be equal-length sequences")
        if np.any(clicks_array < 0) or np.any(clicks_array > impressions_array):
            raise ValueError("counts must satisfy 0 <= clicks <= impressions")
        self.alpha = 1.0 + clicks_array
        self.beta = 1.0 + impressions_array - clicks_array

    def choose(self, rng: np.random.Generator) -> int:
        """Index of the variant whose posterior draw is largest."""
        return int(rng.beta(self.alpha, self.beta).argmax())


def choose(impressions: Sequence[int], clicks: Sequence[int], rng: np.random.Generator) -> int:
    """One Thompson-sampling decision: the index of the variant to show."""
    return Posterior(impressions, clicks).choose(rng)
