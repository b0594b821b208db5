"""abtest.chartdata: timelines, the anytime-valid bands and the posterior curves."""

from __future__ import annotations

import numpy as np
import pytest

from abtest import chartdata
from abtest.sequential import sequential_tests


def test_timeline_regroups_long_series_into_few_buckets():
    start = 1_700_000_000.0
    points = [{"t": start + 60 * m, "impressions": [2, 1], "clicks": [1, 0]} for m in range(2000)]
    series = {"interval_seconds": 60, "variants": ["a", "b"], "points": points}
    timeline = chartdata.build_timeline(
        series, created_at=start, now=start + 60 * 2000, counting=True
    )
    assert len(timeline.buckets) <= 120
    assert sum(b.impressions[0] for b in timeline.buckets) == 4000
    assert timeline.cumulative()[-1][1] == (4000, 2000)
    # 3 readers a minute, whatever the bucket width.
    assert timeline.readers_per_second() == pytest.approx(3 / 60, rel=0.02)


def test_a_test_older_than_the_series_starts_from_a_baseline():
    start = 1_700_000_000.0
    points = [{"t": start + 3600 * h, "impressions": [5, 5], "clicks": [1, 0]} for h in range(10)]
    series = {"interval_seconds": 3600, "variants": ["a", "b"], "points": points}
    timeline = chartdata.build_timeline(
        series,
        created_at=start - 86400 * 200,
        now=start + 36000,
        counting=True,
        totals=((90, 80), (12, 3)),
        window_start=start,
    )
    assert timeline.baseline_impressions == (40, 30)
    assert timeline.cumulative()[-1][1:] == ((90, 80), (12, 3))


def test_an_empty_series():
    series = {"interval_seconds": 60, "variants": ["a", "b"], "points": []}
    timeline = chartdata.build_timeline(series, created_at=1000.0, now=1030.0, counting=True)
    assert timeline.readers_per_second() is None
    bands = chartdata.bands(timeline, 0.05)
    assert all(value is None for value in bands.ctr[-1])


@pytest.mark.parametrize(
    ("impressions", "clicks"),
    [([3000, 3100, 2900], [60, 70, 50]), ([0, 10, 1], [0, 0, 1]), ([50, 7], [50, 0])],
)
def test_the_bands_are_the_reports_confidence_sequences(impressions, clicks):
    # The vectorised bisection against abtest.sequential's root finder.
    low, high = chartdata.confidence_sequences(
        np.array([impressions], float), np.array([clicks], float), 0.05
    )
    expected = np.array(sequential_tests(impressions, clicks, 0.05).intervals)
    assert low[0] == pytest.approx(expected[:, 0], abs=1e-10)
    assert high[0] == pytest.approx(expected[:, 1], abs=1e-10)


def test_curves_cover_every_bulk_and_integrate_to_one():
    curves = chartdata.curves([5000, 8000], [100, 240])
    assert curves.low <= 0.02 - 5 * 0.002 and curves.high >= 0.03 + 5 * 0.002
    step = curves.grid[1] - curves.grid[0]
    for row in curves.densities:
        assert sum(row) * step == pytest.approx(1.0, abs=0.01)
    flat = chartdata.curves([0, 0], [0, 0])
    assert (flat.low, flat.high) == (0.0, 1.0)
    assert flat.densities[0][10] == pytest.approx(1.0)
