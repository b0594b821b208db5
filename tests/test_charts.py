"""abtest.dashboard.charts: the SVG the experiment page shows."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter

import pytest

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
    for svg, sizes in ((ctr, charts.CTR_SIZES), (share, charts.SIDE_SIZES), (posterior, ())):
        assert ' style="' not in svg
        assert svg.count("<svg") == len(sizes or charts.SIDE_SIZES) and svg.endswith("</svg>")
    assert re.search(r"<text [^>]*>A One</text>", ctr)


def test_text_is_escaped():
    line = timeline([{"t": START, "impressions": [5, 5], "clicks": [1, 1]}])
    svg = charts.ctr_chart(
        line, chartdata.bands(line, 0.05), ["A", "B"], level=95, headlines=["<b>", "&"]
    )
    assert "<b>" not in svg and "&lt;b&gt;" in svg


# -- one drawing per width; headlines told apart without colour --------------------------

SVG = ""  # drawings() drops the SVG namespace from the tags


def drawings(markup) -> list[ET.Element]:
    """Each <svg> in a chart's markup (it is well-formed XML)."""
    root = ET.fromstring(f"<root>{markup}</root>")
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]
    return list(root)


def three_headlines():
    points = [
        {"t": START + 60 * m, "impressions": [20, 30, 25], "clicks": [1, 2, 1]} for m in range(60)
    ]
    series = {"interval_seconds": 60, "variants": ["a", "b", "c"], "points": points}
    line = chartdata.build_timeline(series, created_at=START, now=START + 3600, counting=True)
    labels = ["A", "B", "C"]
    return {
        "ctr": charts.ctr_chart(
            line, chartdata.bands(line, 0.05), labels, level=95, headlines=["One", "Two", "Three"]
        ),
        "posterior": charts.posterior_chart(
            chartdata.curves([1200, 1800, 1500], [60, 120, 70]), labels
        ),
    }


def test_each_chart_is_drawn_for_each_width_it_is_shown_at():
    for name, markup in three_headlines().items():
        svgs = drawings(markup)
        sizes = charts.CTR_SIZES if name == "ctr" else charts.SIDE_SIZES
        assert [svg.get("data-fits") for svg in svgs] == [size.fits for size in sizes]
        # Every box width gets exactly one drawing.
        fits = Counter(word for svg in svgs for word in svg.get("data-fits").split())
        assert set(fits) == {"narrow", "small", "medium", "wide"} and set(fits.values()) == {1}
        ids = [element.get("id") for svg in svgs for element in svg.iter() if element.get("id")]
        assert len(ids) == len(set(ids)), "ids repeat across the drawings"
        assert svgs[0].get("id") == f"chart-{name}"  # the wide drawing keeps the plain id
        widths = [float(svg.get("viewBox").split()[2]) for svg in svgs]
        assert widths == [size.width for size in sizes]


def _line_styles(svg: ET.Element) -> list[tuple[str | None, str]]:
    """(dash pattern, marker shape) of each headline's line, in order.

    A line is a path with no fill in a headline's colour; its markers are the
    marker paths of the same colour."""
    styles = {}
    for path in svg.iter(f"{SVG}path"):
        colour = path.get("stroke")
        if path.get("fill") == "none" and colour in charts.PALETTE:
            styles.setdefault(colour, [path.get("stroke-dasharray"), set()])
    for path in svg.iter(f"{SVG}path"):
        if path.get("class") == "marker" and path.get("fill") in styles:
            styles[path.get("fill")][1].add(path.get("data-shape"))
    assert all(len(shapes) == 1 for _, shapes in styles.values()), styles
    return [(dash, shapes.pop()) for dash, shapes in styles.values()]


def _legend_styles(svg: ET.Element) -> dict[str, tuple[str | None, str]]:
    """Each legend entry's text and its key's (dash pattern, marker shape)."""
    children = list(svg)
    keys = {}
    for index, element in enumerate(children):
        if element.tag == f"{SVG}text" and element.get("class") == "legend":
            line, mark = children[index - 2], children[index - 1]
            assert line.tag == f"{SVG}line" and mark.get("class") == "marker"
            keys[element.text] = (line.get("stroke-dasharray"), mark.get("data-shape"))
    return keys


@pytest.mark.parametrize("name", ["ctr", "posterior"])
def test_lines_differ_by_dash_and_marker_as_well_as_colour(name):
    for svg in drawings(three_headlines()[name]):
        lines = _line_styles(svg)
        assert len(lines) == 3
        assert len({dash for dash, _ in lines}) == 3, lines  # three dash patterns
        assert len({shape for _, shape in lines}) == 3, lines  # three marker shapes
        # The legend shows each headline's line as drawn.
        assert list(_legend_styles(svg).values()) == lines


def test_up_to_26_headlines_never_share_a_dash_and_marker():
    pairs = {
        (charts.dash(index), charts.MARKERS[index % len(charts.MARKERS)]) for index in range(26)
    }
    assert len(pairs) == 26


def test_the_tables_swatch_is_the_legends_key():
    for index in range(4):
        (svg,) = drawings(charts.swatch(index))
        (line,) = svg.iter(f"{SVG}line")
        (mark,) = (p for p in svg.iter(f"{SVG}path") if p.get("class") == "marker")
        assert line.get("stroke") == charts.colour(index) == mark.get("fill")
        assert line.get("stroke-dasharray") == charts.dash(index)
        assert mark.get("data-shape") == charts.MARKERS[index]


def _labels(svg: ET.Element, y_at_least: float) -> list[tuple[float, str]]:
    """The time axis's tick labels: (x, text), left to right."""
    return sorted(
        (float(text.get("x")), text.text)
        for text in svg.iter(f"{SVG}text")
        if text.get("class") == "tick"
        and text.get("text-anchor") == "middle"
        and float(text.get("y")) >= y_at_least
    )


@pytest.mark.parametrize("name", ["ctr", "posterior"])
def test_narrow_drawings_keep_their_axis_labels_apart(name):
    """On a phone the narrow drawing is shown near its own size: its labels, in
    their own units, must not run into each other (fewer ticks, not smaller text)."""
    svgs = drawings(three_headlines()[name])
    sizes = charts.CTR_SIZES if name == "ctr" else charts.SIDE_SIZES
    counts = []
    for svg, size in zip(svgs, sizes, strict=True):
        bottom = float(svg.get("viewBox").split()[3]) - 4 * size.font
        labels = _labels(svg, bottom)
        assert len(labels) >= 2
        for (x1, text1), (x2, text2) in zip(labels, labels[1:], strict=False):
            room = 0.6 * size.font * (len(text1) + len(text2)) / 2 + 0.5 * size.font
            assert x2 - x1 >= room, (size.fits, text1, text2)
        counts.append(len(labels))
    assert counts[-1] <= counts[0]  # never more labels on the narrow drawing than the wide
