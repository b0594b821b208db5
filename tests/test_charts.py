"""abtest.dashboard.charts: the SVG the experiment page shows."""

from __future__ import annotations

import re

from abtest import chartdata
from abtest.dashboard import charts

START = 1_700_000_000.0


def timeline(points):
    series = {"interval_seconds": 60, "variants": ["a", "b"], "points": points}
    return chartdata.build_timeline(series, created_at=START, now=START + 3600, counting=True)


def test_charts_before_any_reader_say_so():
    empty = timeline([])
    svg = charts.ctr_chart(empty, chartdata.bands(empty, 0.05), ["A", "B"], level=95)
    assert "No readers yet" in svg and "Time (UTC)" in svg
    assert "No readers yet" in charts.share_chart(empty, ["A", "B"])
    posterior = charts.posterior_chart(chartdata.curves([0, 0], [0, 0]), ["A", "B"])
    assert "every rate is equally likely" in posterior and "<path" in posterior


def test_charts_carry_hover_values_and_no_inline_style():
    points = [{"t": START + 60 * m, "impressions": [20, 30], "clicks": [1, 2]} for m in range(50)]
    line = timeline(points)
    ctr = charts.ctr_chart(
        line, chartdata.bands(line, 0.05), ["A", "B"], level=95, headlines=["One", "Two"]
    )
    share = charts.share_chart(line, ["A", "B"])
    posterior = charts.posterior_chart(chartdata.curves([1000, 1500], [50, 100]), ["A", "B"])
    assert "<title>A: 5.00% after 1,000 readers (" in ctr
    assert "<title>B: 60% of 50 new readers," in share
    for svg in (ctr, share, posterior):
        assert ' style="' not in svg
        assert svg.count("<svg") == 1 and svg.endswith("</svg>")
    assert re.search(r"<text [^>]*>A One</text>", ctr)


def test_text_is_escaped():
    line = timeline([{"t": START, "impressions": [5, 5], "clicks": [1, 1]}])
    svg = charts.ctr_chart(
        line, chartdata.bands(line, 0.05), ["A", "B"], level=95, headlines=["<b>", "&"]
    )
    assert "<b>" not in svg and "&lt;b&gt;" in svg
