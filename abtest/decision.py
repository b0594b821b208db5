"""The answer to "can I stop now?", in clicks: counts in, the stop advice out.

An editor is paid in clicks, so the question is what choosing the leader now
would cost.  Under the posteriors the service already keeps (independent
Beta(1 + clicks, 1 + impressions - clicks), :mod:`abtest.posterior`):

- the leader is the headline most likely best (highest P(best); ties by CTR,
  then the lower index);
- the expected loss of choosing it now is E[max_j X_j - X_leader], clicks lost
  per reader, averaged over what we don't know (0 when it is in fact best);
- the loss if it is not best is that expected loss divided by 1 - P(best):
  the same loss, averaged only over the cases where some other headline is
  better (the unconditional figure is the one a decision should use; this
  one says how much is at stake when the choice is wrong);
- it is "safe to stop" once the expected loss is below a threshold of caring
  (a per-experiment setting; by default :data:`DEFAULT_RELATIVE_THRESHOLD` of
  the leader's CTR).  In an A/A test every choice is equally good, so the
  expected loss falls towards 0 as counts grow and stopping becomes safe,
  though no headline is ever proven better: the two questions differ.

This is the Bayesian decision rule of "expected loss below a threshold of
caring" (Stucchio 2015, "Bayesian A/B testing at VWO").  It makes no claim
that one headline is better (that is :mod:`abtest.sequential`'s proven call);
it says that choosing now is cheap whichever is truly best.

:func:`decide` also forecasts, by simulation from the posterior, how many more
readers a proven call and safe-to-stop will likely take (:class:`ReadersToCall`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from . import bandit
from .posterior import compare as _compare
from .sequential import PRIOR, proven_leader

__all__ = [
    "DEFAULT_RELATIVE_THRESHOLD",
    "FORECAST_HORIZON",
    "ReadersToCall",
    "Decision",
    "decide",
    "default_threshold",
    "readers_to_call",
]

#: Safe to stop when choosing now costs, in expectation, less than this share
#: of the leader's clicks: at a 2% CTR, 0.4 clicks per 1,000 readers.  A
#: share rather than a fixed number, so that it means the same at a 1% and a
#: 10% CTR.  An A/A test with two headlines at 2% is safe to stop after about
#: 100,000 readers; stopping at the first look where it holds loses more than
#: the threshold on average in close races (the look is chosen because the
#: loss looked small): docs/decisions.md, "The threshold of caring".
DEFAULT_RELATIVE_THRESHOLD = 0.02

#: The forecast looks this many more readers ahead.
FORECAST_HORIZON = 100_000

#: Runs of the forecast; the median of their crossing times is reported.
FORECAST_RUNS = 100

# Below this, 1 - P(best) is rounding (P(best) is integrated to ~1e-12), and
# the loss given not best is undefined.
_NOT_BEST_FLOOR = 1e-9


@dataclass(frozen=True)
class ReadersToCall:
    """Readers (more than so far) until an outcome is likely, from the current counts.

    ``proven``: until a proven call (:mod:`abtest.sequential`) has happened
    in half the simulated futures; ``safe_to_stop``: likewise for safe to
    stop.  ``None`` when it takes more than ``horizon`` readers (the words:
    "unlikely within <horizon> readers"); 0 when it holds already.  The
    forecast has the resolution of its looks: every 100 readers, or every
    5% of the readers so far once that is more.
    """

    proven: int | None
    safe_to_stop: int | None
    horizon: int


@dataclass(frozen=True)
class Decision:
    """The stop advice for one experiment.

    ``leader`` is ``None`` before any impressions (the loss is then that of
    the first headline, from the uniform prior).  ``expected_loss`` and
    ``threshold`` are clicks per reader (the dashboard shows them per 1,000
    readers).  ``loss_if_not_best`` is ``None`` when the leader is best with
    probability 1 to within 1e-9.
    """

    leader: int | None
    prob_best: float
    expected_loss: float
    loss_if_not_best: float | None
    threshold: float
    safe_to_stop: bool
    readers_to_call: ReadersToCall | None


def default_threshold(leader_mean: float) -> float:
    """The default threshold of caring for a leader whose posterior-mean CTR is ``leader_mean``."""
    return DEFAULT_RELATIVE_THRESHOLD * leader_mean


def _relative(relative_threshold: float | None) -> float:
    """The threshold of caring as a share of the leader's CTR (``None``: the default)."""
    if relative_threshold is None:
        return DEFAULT_RELATIVE_THRESHOLD
    value = float(relative_threshold)
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"relative_threshold must be strictly between 0 and 1, got {relative_threshold!r}"
        )
    return value


def _check(impressions: Sequence[int], clicks: Sequence[int], mode: str, alpha: float) -> None:
    if len(impressions) != len(clicks) or len(impressions) < 2:
        raise ValueError("impressions and clicks need one entry per headline, at least two")
    if any(k < 0 or k > n for n, k in zip(impressions, clicks, strict=True)):
        raise ValueError("counts must satisfy 0 <= clicks <= impressions")
    if mode not in bandit.MODES:
        raise ValueError(f"mode must be one of {', '.join(bandit.MODES)}, got {mode!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")


def decide(
    impressions: Sequence[int],
    clicks: Sequence[int],
    *,
    threshold: float | None = None,
    mode: str = "clicks",
    alpha: float = 0.05,
    forecast: bool = True,
    horizon: int = FORECAST_HORIZON,
    relative_threshold: float | None = None,
) -> Decision:
    """The leader, its expected loss, and whether stopping now is safe.

    ``threshold`` is the threshold of caring in clicks per reader (``None``:
    ``relative_threshold``, by default :data:`DEFAULT_RELATIVE_THRESHOLD`, of
    the leader's posterior-mean CTR: the experiment's own setting).  ``mode``
    is the experiment's allocation mode and ``alpha`` the proven call's
    level, both for the forecast, which ``forecast=False`` skips.
    """
    _check(impressions, clicks, mode, alpha)
    if threshold is not None and not (threshold >= 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
    relative = _relative(relative_threshold)
    n = np.array(impressions, dtype=np.float64)
    k = np.array(clicks, dtype=np.float64)
    comparison = _compare(n, k)
    prob_best = comparison.prob_best
    with np.errstate(invalid="ignore", divide="ignore"):
        ctr = np.where(n > 0, k / np.where(n > 0, n, 1.0), 0.0)
    leader = max(range(len(n)), key=lambda i: (prob_best[i], ctr[i], -i))
    expected_loss = float(comparison.expected_loss[leader])
    not_best = 1.0 - float(prob_best[leader])
    loss_if_not_best = expected_loss / not_best if not_best > _NOT_BEST_FLOOR else None
    leader_mean = (1.0 + k[leader]) / (2.0 + n[leader])
    limit = relative * float(leader_mean) if threshold is None else float(threshold)
    forecast_result = None
    if forecast:
        forecast_result = readers_to_call(
            impressions,
            clicks,
            mode=mode,
            alpha=alpha,
            threshold=threshold,
            horizon=horizon,
            relative_threshold=relative_threshold,
        )
        if expected_loss < limit and forecast_result.safe_to_stop != 0:
            # The forecast's approximate loss may disagree at the margin; now is now.
            forecast_result = dataclasses.replace(forecast_result, safe_to_stop=0)
    return Decision(
        leader=leader if n.sum() > 0 else None,
        prob_best=float(prob_best[leader]),
        expected_loss=expected_loss,
        loss_if_not_best=loss_if_not_best,
        threshold=limit,
        safe_to_stop=expected_loss < limit,
        readers_to_call=forecast_result,
    )


# -- the forecast ------------------------------------------------------------------
#
# Draw each headline's true CTR from its posterior (one draw per simulated
# future), send future readers by the experiment's allocation mode
# (bandit.decisions, the service's sampler, with the posterior refreshed at
# every look), and note at which look each future first has a proven call and
# first is safe to stop.  The answer is the median over the futures.  To stay
# cheap enough for a dashboard refresh, looks come every 100 readers and
# every 5% of the readers so far once that is more (so a forecast of 40,000
# readers is good to ~2,000), each look's readers are split by the shares of
# 16 decisions drawn from that look's posterior, and the expected loss is
# that of normal approximations to the posteriors (at the counts where a stop
# is near, the Beta posteriors are close to normal).

_LOOK_EVERY = 100
_LOOK_GROWTH = 0.05
_ALLOCATION_DRAWS = 16
_LOSS_NODES, _LOSS_WEIGHTS = np.polynomial.legendre.leggauss(48)


def normal_expected_loss(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E[max_j X_j] - max_j mean_j for independent normals, over the last axis.

    E[max] = L + ∫_L^U (1 - prod_j Phi((x - mean_j) / sd_j)) dx, over the
    range where the product moves from ~0 (L: every mean less 8 sd, the
    largest) to 1 (U: every mean plus 8 sd, the largest), by 48-point
    Gauss-Legendre.
    """
    low = (mean - 8 * sd).max(axis=-1)
    high = (mean + 8 * sd).max(axis=-1)
    half = (high - low) / 2
    x = low[..., None] + half[..., None] * (_LOSS_NODES + 1)  # (..., nodes)
    z = (x[..., None, :] - mean[..., :, None]) / sd[..., :, None]  # (..., K, nodes)
    log_cdf = special.log_ndtr(z).sum(axis=-2)
    above = -np.expm1(log_cdf)
    expected_max = low + half * (above @ _LOSS_WEIGHTS)
    return np.maximum(expected_max - mean.max(axis=-1), 0.0)


def _posterior_moments(n: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = 1.0 + k, 1.0 + n - k
    total = a + b
    return a / total, np.sqrt(a * b / (total * total * (total + 1.0)))


def _top_two_shares(best: np.ndarray) -> np.ndarray:
    """Top-two Thompson sampling's traffic shares from P(best), over the last axis."""
    beta = bandit.TOP_TWO_BETA
    leader_left = np.clip(1.0 - best, 1e-12, None)  # a certain leader: no challenger share
    challenger = best * ((best / leader_left).sum(axis=-1, keepdims=True) - best / leader_left)
    shares = beta * best + (1.0 - beta) * challenger
    return shares / shares.sum(axis=-1, keepdims=True)


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def readers_to_call(
    impressions: Sequence[int],
    clicks: Sequence[int],
    *,
    mode: str = "clicks",
    alpha: float = 0.05,
    threshold: float | None = None,
    horizon: int = FORECAST_HORIZON,
    runs: int = FORECAST_RUNS,
    relative_threshold: float | None = None,
) -> ReadersToCall:
    """The forecast of :class:`ReadersToCall`, deterministic for the same arguments.

    Its random stream is seeded by a hash of the arguments, and the result
    is cached per arguments (a dashboard polling a quiet test reuses it).
    """
    _check(impressions, clicks, mode, alpha)
    return _readers_to_call(
        tuple(int(n) for n in impressions),
        tuple(int(k) for k in clicks),
        mode,
        float(alpha),
        None if threshold is None else float(threshold),
        int(horizon),
        int(runs),
        _relative(relative_threshold),
    )


@functools.lru_cache(maxsize=256)
def _readers_to_call(
    impressions: tuple[int, ...],
    clicks: tuple[int, ...],
    mode: str,
    alpha: float,
    threshold: float | None,
    horizon: int,
    runs: int,
    relative: float = DEFAULT_RELATIVE_THRESHOLD,
) -> ReadersToCall:
    # The seed leaves out the default share, so default forecasts stay as they were.
    parts = (impressions, clicks, mode, alpha, threshold, horizon, runs)
    if relative != DEFAULT_RELATIVE_THRESHOLD:
        parts += (relative,)
    rng = np.random.default_rng(_seed("readers_to_call", *parts))
    variants = len(impressions)
    n = np.tile(np.array(impressions, dtype=np.float64), (runs, 1))
    k = np.tile(np.array(clicks, dtype=np.float64), (runs, 1))
    truth = rng.beta(1.0 + k, 1.0 + n - k)

    def proven(n: np.ndarray, k: np.ndarray) -> np.ndarray:
        return proven_leader(n, k, alpha, PRIOR) >= 0

    def safe(n: np.ndarray, k: np.ndarray) -> np.ndarray:
        mean, sd = _posterior_moments(n, k)
        limit = relative * mean.max(axis=-1) if threshold is None else threshold
        return normal_expected_loss(mean, sd) < limit

    never = horizon + 1
    first_proven = np.where(proven(n, k), 0, never)
    first_safe = np.where(safe(n, k), 0, never)
    added = 0
    start = float(sum(impressions))
    while added < horizon and ((first_proven > horizon) | (first_safe > horizon)).any():
        so_far = start + added
        step = max(_LOOK_EVERY, _LOOK_EVERY * int(_LOOK_GROWTH * so_far / _LOOK_EVERY))
        step = min(step, horizon - added)
        # Thompson sampling's shares (each headline's P(best)) from a few draws;
        # top-two's follow from them: the leader i with P(best_i), then the
        # challenger j with P(best_j) / (1 - P(best_i)).
        choices = bandit.decisions(1.0 + k, 1.0 + n - k, _ALLOCATION_DRAWS, rng, "clicks")
        shares = (choices[..., None] == np.arange(variants)).mean(axis=1)
        if mode == "winner":
            shares = _top_two_shares(shares)
        shown = rng.multinomial(step, shares).astype(np.float64)
        n += shown
        k += rng.binomial(shown.astype(np.int64), truth)
        added += step
        for first, rule in ((first_proven, proven), (first_safe, safe)):
            waiting = np.flatnonzero(first > horizon)
            if len(waiting):
                fired = rule(n[waiting], k[waiting])
                first[waiting[fired]] = added

    def median(first: np.ndarray) -> int | None:
        value = float(np.median(first))
        return None if value > horizon else int(value)

    return ReadersToCall(
        proven=median(first_proven), safe_to_stop=median(first_safe), horizon=horizon
    )
