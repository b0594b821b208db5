"""Chart data for the dashboard: counts over time regrouped into buckets, the
anytime-valid interval of each CTR along the way, and the posterior densities.

Pure data preparation, no drawing (that is ``abtest.dashboard.charts``) and
no I/O: a series from :meth:`abtest.service.Service.series` and counts in,
frozen values out.  Times are Unix seconds, UTC.

The maths comes from :mod:`abtest.sequential` and :mod:`abtest.posterior`,
imported by the functions that need them: they bring scipy, which the app
loads with the first report rather than when it starts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Bucket", "Timeline", "Bands", "Curves", "build_timeline", "bands", "curves"]

# Bucket widths, in multiples of the series interval, from which the charts
# pick the smallest that keeps the number of buckets readable.
_MINUTE_MULTIPLES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
_HOUR_MULTIPLES = (1, 2, 3, 6, 12, 24, 48, 168)


@dataclasses.dataclass(frozen=True)
class Bucket:
    start: float
    end: float  # already clipped to the timeline's end
    impressions: tuple[int, ...]
    clicks: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Timeline:
    """A series regrouped into at most a few hundred buckets, from start to end.

    ``baseline`` holds counts from before the series' window (only for
    experiments older than the series retention), so cumulative values end
    at the test's totals.
    """

    start: float
    end: float  # the last data (now, or when counting stopped)
    axis_end: float  # at least a minimum span, so a young test isn't one dot
    bucket_seconds: int
    buckets: tuple[Bucket, ...]
    baseline_impressions: tuple[int, ...]
    baseline_clicks: tuple[int, ...]

    def cumulative(self) -> list[tuple[float, tuple[int, ...], tuple[int, ...]]]:
        """(time, impressions so far, clicks so far) at each bucket's end."""
        impressions = np.cumsum(
            [self.baseline_impressions, *(b.impressions for b in self.buckets)], axis=0
        )[1:]
        clicks = np.cumsum([self.baseline_clicks, *(b.clicks for b in self.buckets)], axis=0)[1:]
        return [
            (bucket.end, tuple(n.tolist()), tuple(k.tolist()))
            for bucket, n, k in zip(self.buckets, impressions, clicks, strict=True)
        ]

    def readers_per_second(self, window: float = 3600.0) -> float | None:
        """New readers per second over the last ``window`` seconds (whole buckets), or ``None``."""
        recent = [bucket for bucket in self.buckets if bucket.end > self.end - window]
        readers = sum(sum(bucket.impressions) for bucket in recent)
        if not readers:
            return None
        return readers / max(self.end - recent[0].start, 1.0)


def build_timeline(
    series: Mapping[str, Any],
    *,
    created_at: float,
    now: float,
    counting: bool,
    totals: tuple[Sequence[int], Sequence[int]] | None = None,
    window_start: float | None = None,
    max_buckets: int = 120,
) -> Timeline:
    """Regroup ``Service.series`` output into evenly spaced buckets.

    ``counting`` is whether the test still counts (running or paused): the
    axis then runs to ``now``; a decided test's axis ends at its last count.
    ``totals`` (impressions, clicks) and ``window_start`` (the oldest time the
    series still holds) let a test older than the series retention start
    from a baseline, so its cumulative values still end at its totals.
    """
    interval = int(series["interval_seconds"])
    count = len(series["variants"])
    points = series["points"]
    origin = math.floor(created_at / interval) * interval
    truncated = window_start is not None and created_at < window_start
    if truncated:
        origin = math.floor(window_start / interval) * interval
    if counting or not points:
        end = max(now, origin + 1)
    else:
        end = max(points[-1]["t"] + interval, origin + 1)
    end = min(end, max(now, origin + 1))

    span = end - origin
    multiples = _MINUTE_MULTIPLES if interval < 3600 else _HOUR_MULTIPLES
    multiple = next(
        (m for m in multiples if math.ceil(span / (interval * m)) <= max_buckets), multiples[-1]
    )
    width = interval * multiple
    first = math.floor(origin / width) * width
    n_buckets = max(1, math.ceil((end - first) / width))
    impressions = np.zeros((n_buckets, count), dtype=np.int64)
    clicks = np.zeros((n_buckets, count), dtype=np.int64)
    for point in points:
        index = int((point["t"] - first) // width)
        if 0 <= index < n_buckets:
            impressions[index] += point["impressions"]
            clicks[index] += point["clicks"]
    buckets = tuple(
        Bucket(
            start=max(first + i * width, origin),
            end=min(first + (i + 1) * width, end),
            impressions=tuple(impressions[i].tolist()),
            clicks=tuple(clicks[i].tolist()),
        )
        for i in range(n_buckets)
    )

    baseline_impressions = baseline_clicks = (0,) * count
    if truncated and totals is not None:
        seen_impressions, seen_clicks = impressions.sum(axis=0), clicks.sum(axis=0)
        baseline_impressions = tuple(
            max(0, int(t - s)) for t, s in zip(totals[0], seen_impressions, strict=True)
        )
        baseline_clicks = tuple(
            max(0, int(t - s)) for t, s in zip(totals[1], seen_clicks, strict=True)
        )

    minimum = 10 * 60 if interval < 3600 else 12 * 3600
    return Timeline(
        start=origin,
        end=end,
        axis_end=max(end, origin + minimum),
        bucket_seconds=width,
        buckets=buckets,
        baseline_impressions=baseline_impressions,
        baseline_clicks=baseline_clicks,
    )


# -- the CTR over time, with its anytime-valid interval -----------------------------


@dataclasses.dataclass(frozen=True)
class Bands:
    """Each variant's cumulative CTR at each bucket's end, with its interval.

    ``ctr[t][v]``, ``low[t][v]`` and ``high[t][v]`` are ``None`` while
    variant v has no impressions.  The intervals are the confidence sequences
    the table shows (level 1 - alpha / K each), so the band at every time is
    as valid as the one at the end.
    """

    times: tuple[float, ...]
    ctr: tuple[tuple[float | None, ...], ...]
    low: tuple[tuple[float | None, ...], ...]
    high: tuple[tuple[float | None, ...], ...]


def bands(timeline: Timeline, alpha: float) -> Bands:
    cumulative = timeline.cumulative()
    if not cumulative:
        return Bands((), (), (), ())
    impressions = np.array([n for _, n, _ in cumulative], dtype=np.float64)
    clicks = np.array([k for _, _, k in cumulative], dtype=np.float64)
    low, high = confidence_sequences(impressions, clicks, alpha)
    seen = impressions > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ctr = clicks / np.where(seen, impressions, 1.0)

    def rows(values: np.ndarray) -> tuple[tuple[float | None, ...], ...]:
        return tuple(
            tuple(float(x) if s else None for x, s in zip(row, mask, strict=True))
            for row, mask in zip(values, seen, strict=True)
        )

    return Bands(tuple(t for t, _, _ in cumulative), rows(ctr), rows(low), rows(high))


#: Bisection steps: each halves the bracket, so 48 steps resolve a rate to 2^-48 (4e-15).
_BISECTIONS = 48


def confidence_sequences(
    impressions: np.ndarray, clicks: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """{p : M(p) < K / alpha} for every count at once (the last axis is the K variants).

    The same intervals as :func:`abtest.sequential.sequential_tests` (which
    finds each with a root finder), for a whole timeline in one vectorised
    bisection: log M is convex in p with its minimum (<= 0) at the observed
    rate, so each end is the one crossing of the level on its side.  The
    whole [0, 1] where there are no impressions.
    """
    from .sequential import PRIOR, log_mixture_martingale

    level = math.log(impressions.shape[-1] / alpha)
    seen = impressions > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(seen, clicks / np.where(seen, impressions, 1.0), 0.0)

    def inside(p: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return log_mixture_martingale(impressions, clicks, p, PRIOR) < level

    def crossing(outer: float) -> np.ndarray:
        # Bracket [rate, outer] on one side: `near` stays inside the set, `far` outside.
        far = np.full_like(rate, outer)
        near = rate.copy()
        edge_inside = inside(far)
        for _ in range(_BISECTIONS):
            middle = (near + far) / 2
            is_inside = inside(middle)
            near = np.where(is_inside, middle, near)
            far = np.where(is_inside, far, middle)
        return np.where(edge_inside, outer, near)

    low = np.where(seen, crossing(0.0), 0.0)
    high = np.where(seen, crossing(1.0), 1.0)
    return low, high


# -- what each CTR could be ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Curves:
    """Each variant's posterior density of its CTR over a common grid of rates."""

    grid: tuple[float, ...]
    densities: tuple[tuple[float, ...], ...]
    low: float  # the grid's range, rounded outwards to the chart's ticks
    high: float
    tick: float


def curves(impressions: Sequence[int], clicks: Sequence[int], samples: int = 240) -> Curves:
    """Beta(1 + clicks, 1 + non-clicks) densities over a range that shows every bulk.

    The range covers mean +- 5 sd of every variant with readers (all of
    [0, 1] before any), rounded outwards to a tick step.
    """
    from .posterior import beta_density

    n = np.asarray(impressions, dtype=np.float64)
    k = np.asarray(clicks, dtype=np.float64)
    a, b = 1.0 + k, 1.0 + n - k
    seen = n > 0
    if seen.any():
        mean = a / (a + b)
        sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        low = max(0.0, float((mean - 5 * sd)[seen].min()))
        high = min(1.0, float((mean + 5 * sd)[seen].max()))
    else:
        low, high = 0.0, 1.0
    tick = nice_step(high - low, 5)
    low = math.floor(low / tick) * tick
    high = min(1.0, math.ceil(high / tick) * tick)
    grid = np.clip(np.linspace(low, high, samples), 1e-9, 1 - 1e-9)
    densities = beta_density(a, b, grid)
    return Curves(
        grid=tuple(grid.tolist()),
        densities=tuple(tuple(row) for row in densities.tolist()),
        low=low,
        high=high,
        tick=tick,
    )


def nice_step(span: float, max_ticks: int) -> float:
    """The tick step (1, 2, 2.5 or 5 times a power of ten) that fits ``span`` in ``max_ticks``."""
    raw = span / max(max_ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * magnitude
        if span / step <= max_ticks:
            return step
    return 10 * magnitude
