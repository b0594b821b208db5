"""Thompson sampling over Beta posteriors: counts and a random generator in, a choice out.

Each variant's click-through rate has a Beta(1 + clicks, 1 + impressions -
clicks) posterior (a uniform prior updated by the counts).  Two allocation
modes, chosen per experiment:

``"clicks"`` (maximize clicks)
    Thompson sampling: draw one sample per variant and show the largest, so
    a variant is shown with exactly the probability that it is the best,
    given what we know.  Traffic flows to the leader fast, which wins clicks
    but starves the challengers, so a proven call comes late.
``"winner"`` (find the winner)
    Top-two Thompson sampling (Russo 2016, "Simple Bayesian algorithms for
    best-arm identification", COLT; Operations Research 68, 2020) with
    beta = 1/2: half the time the Thompson choice; otherwise draw again
    until another variant tops the draw and show that one (the "challenger").
    The leader keeps about half the traffic and its closest rivals share the
    rest, so the evidence a proven call needs accrues several times faster,
    at the cost of clicks.  Re-drawing stops after :data:`MAX_REDRAWS` draws
    and falls back to the runner-up of the last one: once the leader tops
    nearly every draw, the variant second in a draw is the natural rival.

:func:`decisions` is the one implementation of both, over a batch of
posteriors (a leading axis of independent experiments): the service draws
from one posterior, the simulator (:mod:`abtest.simulate`) from thousands at
once, with the very same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["MODES", "MAX_REDRAWS", "TOP_TWO_BETA", "Posterior", "choose", "decisions"]

#: The allocation modes: "clicks" (Thompson sampling), "winner" (top-two Thompson sampling).
MODES = ("clicks", "winner")

#: In "winner" mode, the probability of showing the Thompson choice itself.
TOP_TWO_BETA = 0.5

#: In "winner" mode, how many fresh draws may look for a challenger.
MAX_REDRAWS = 10


def decisions(
    alpha: np.ndarray,
    beta: np.ndarray,
    size: int,
    rng: np.random.Generator,
    mode: str = "clicks",
    *,
    top_two: float = TOP_TWO_BETA,
    max_redraws: int = MAX_REDRAWS,
) -> np.ndarray:
    """``size`` independent decisions from each posterior: shape (..., size).

    ``alpha`` and ``beta`` hold the Beta parameters, shape (..., variants);
    the leading axes are independent experiments.  A decision is the index of
    the variant to show (ties in a draw go to the first).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    alpha = np.asarray(alpha, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    lead, variants = alpha.shape[:-1], alpha.shape[-1]
    samples = rng.beta(alpha[..., None, :], beta[..., None, :], size=(*lead, size, variants))
    first = samples.argmax(axis=-1)
    if mode == "clicks" or variants < 2:
        return first

    # Top-two: the decisions that look for a challenger, flattened to rows.
    flat_first = first.reshape(-1)
    rows = np.flatnonzero(rng.random(flat_first.shape) >= top_two)
    experiment = rows // size  # which posterior each row draws from
    alpha_rows = alpha.reshape(-1, variants)[experiment]
    beta_rows = beta.reshape(-1, variants)[experiment]
    leaders = flat_first[rows]
    last = samples.reshape(-1, variants)[rows]
    choice = flat_first.copy()
    for _ in range(max_redraws):
        if not len(rows):
            break
        last = rng.beta(alpha_rows, beta_rows)
        top = last.argmax(axis=-1)
        found = top != leaders
        choice[rows[found]] = top[found]
        waiting = ~found
        rows, leaders, last = rows[waiting], leaders[waiting], last[waiting]
        alpha_rows, beta_rows = alpha_rows[waiting], beta_rows[waiting]
    if len(rows):
        # The runner-up of the last draw (in which the leader topped again).
        last[np.arange(len(rows)), leaders] = -np.inf
        choice[rows] = last.argmax(axis=-1)
    return choice.reshape(first.shape)


class Posterior:
    """The Beta parameters of every variant, and decisions drawn ahead from them.

    One posterior serves one count snapshot (a worker rebuilds it when fresh
    counts arrive, every 0.1 s or so under traffic).  Decisions are drawn in
    batches by :func:`decisions` and handed out one per call; a posterior's
    first batch is small (a quiet story's snapshot is replaced before it uses
    many) and each next one twice the last, up to ``BATCH``.  Each decision
    is still an independent draw from exactly this posterior, so the choice
    frequencies are those of drawing per visitor, for a fraction of numpy's
    per-call cost (bench/bench_bandit.py).  A decision drawn but never
    handed out (the snapshot moved on) is simply dropped, which biases nothing.
    """

    __slots__ = ("alpha", "beta", "mode", "_decisions", "_batch")

    #: The most decisions drawn in one numpy call, and the first batch's size.
    BATCH, FIRST_BATCH = 64, 4

    def __init__(self, impressions: Sequence[int], clicks: Sequence[int], mode: str = "clicks"):
        if len(impressions) != len(clicks) or not len(impressions):
            raise ValueError("impressions and clicks must be equal-length, non-empty sequences")
        if any(k < 0 or k > n for n, k in zip(impressions, clicks, strict=True)):
            raise ValueError("counts must satisfy 0 <= clicks <= impressions")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.alpha = np.array([1.0 + k for k in clicks])
        self.beta = np.array([1.0 + n - k for n, k in zip(impressions, clicks, strict=True)])
        self.mode = mode
        self._decisions: list[int] = []
        self._batch = self.FIRST_BATCH

    def choose(self, rng: np.random.Generator) -> int:
        """Index of the variant to show the next reader.

        ``rng`` draws the next batch when this one is used up.  ``list.pop``
        is atomic, so a worker's threads may share a posterior: each
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
        """``size`` independent decisions from this posterior."""
        return decisions(self.alpha, self.beta, size, rng, self.mode).tolist()


def choose(
    impressions: Sequence[int],
    clicks: Sequence[int],
    rng: np.random.Generator,
    mode: str = "clicks",
) -> int:
    """One decision: the index of the variant to show."""
    return Posterior(impressions, clicks, mode).choose(rng)
