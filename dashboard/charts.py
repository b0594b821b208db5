"""The experiment page's three charts, drawn as SVG on the server.

The data is prepared by :mod:`abtest.chartdata` (buckets, intervals,
densities); this module only draws it.  Why SVG from the server rather than
a JavaScript chart library: the same markup renders without JavaScript, in a
screenshot and in the live view (the page swaps in fragments the server
re-rendered), nothing comes from a CDN, and there is no library to keep up to
date.  Hover values come from SVG ``<title>`` elements, which browsers show
as tooltips with no script.  Colours and geometry are presentation
attributes, never ``style=""``, so the Content-Security-Policy needs no
``unsafe-inline``.  Text is escaped.  Times on the axes are UTC.

Each chart is drawn at a few widths (:data:`CTR_SIZES`, :data:`SIDE_SIZES`),
each SVG marked with the widths of box it ``data-fits``; the stylesheet shows
the one made for its box (a container query), so the text stays legible from
a phone to a wide screen, with fewer ticks on the narrow drawings, instead of
everything shrinking to a third.  Headlines differ by more than colour: each
has its own dash pattern and marker shape, on the lines, in the legends and
in the tables' swatches.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from markupsafe import Markup, escape

from abtest.chartdata import Bands, Curves, Timeline, nice_step

__all__ = [
    "PALETTE",
    "DASHES",
    "MARKERS",
    "Size",
    "CTR_SIZES",
    "SIDE_SIZES",
    "colour",
    "dash",
    "marker",
    "swatch",
    "ctr_chart",
    "share_chart",
    "posterior_chart",
]

# Okabe-Ito (colour-blind safe) first, then four more distinct hues.
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#8C564B",
    "#6F6F6F",
    "#A6A21B",
    "#17A2B8",
)
#: Each headline's dash pattern (None: solid) and marker shape, so that the
#: lines tell apart without colour.  Six patterns and five shapes: the pair
#: (pattern, shape) is different for each of up to 30 headlines.
DASHES = (None, "9 4", "2 3", "9 3 2 3", "4 4", "12 3 2 3 2 3")
MARKERS = ("circle", "square", "triangle", "diamond", "triangle-down")
_TIME_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
_TIME_STEPS += (2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400)


@dataclasses.dataclass(frozen=True)
class Size:
    """One drawing of a chart: its canvas and the widths of box it is for.

    ``fits`` names the box widths the stylesheet shows it in: ``narrow``
    under 440 px, ``small`` to 680 px, ``medium`` to 1,050 px, ``wide``
    beyond.  Each drawing is as wide as its boxes' narrowest divided by about
    0.9, so its text shows at 11 to 17 px.  ``font`` is the text size in the
    drawing's own units, which the stylesheet sets to match
    (``svg.chart[data-fits~=narrow]``), used here to leave room for the text.
    """

    width: int
    height: int
    fits: str
    font: float = 13
    suffix: str = ""


#: The CTR chart spans the page.
CTR_SIZES = (
    Size(1120, 330, "wide"),
    Size(760, 320, "medium", suffix="-medium"),
    Size(500, 300, "small", suffix="-small"),
    Size(360, 300, "narrow", font=14, suffix="-narrow"),
)
#: The two charts side by side (one above the other on smaller screens).
SIDE_SIZES = (
    Size(760, 330, "medium wide"),
    Size(500, 300, "small", suffix="-small"),
    Size(360, 290, "narrow", font=14, suffix="-narrow"),
)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def dash(index: int) -> str | None:
    return DASHES[index % len(DASHES)]


def marker(index: int, x: float, y: float, radius: float = 4.0, *, title: str | None = None) -> str:
    """The headline's marker shape, centred on (x, y), filled with its colour."""
    shape = MARKERS[index % len(MARKERS)]
    r = radius
    if shape == "circle":
        arc = f"a{r:.1f},{r:.1f} 0 1,0"
        d = f"M{x - r:.1f},{y:.1f} {arc} {2 * r:.1f},0 {arc} {-2 * r:.1f},0 Z"
    elif shape == "square":
        h = r * 0.88
        d = _path([(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]) + " Z"
    elif shape == "triangle":
        d = _path([(x, y - r * 1.25), (x + r * 1.15, y + r * 0.8), (x - r * 1.15, y + r * 0.8)])
        d += " Z"
    elif shape == "diamond":
        k = r * 1.25
        d = _path([(x, y - k), (x + k, y), (x, y + k), (x - k, y)]) + " Z"
    else:  # triangle-down
        d = _path([(x, y + r * 1.25), (x + r * 1.15, y - r * 0.8), (x - r * 1.15, y - r * 0.8)])
        d += " Z"
    return _el(
        "path",
        title=title,
        d=d,
        fill=colour(index),
        stroke="#fff",
        stroke_width=1.2,
        class_="marker",
        data_shape=shape,
    )


def _key(index: int, x: float, y: float, length: float = 22) -> str:
    """A legend's sample of a headline's line: its colour, dash pattern and marker."""
    line = _el(
        "line",
        x1=x,
        x2=x + length,
        y1=y,
        y2=y,
        stroke=colour(index),
        stroke_width=2.5,
        stroke_dasharray=dash(index),
    )
    return line + marker(index, x + length / 2, y, 3.6)


def swatch(index: int) -> Markup:
    """A headline's key for tables and pages outside the charts: as in the charts' legends."""
    return Markup(
        '<svg class="swatch" width="26" height="12" viewBox="0 0 26 12" aria-hidden="true" '
        f'focusable="false">{_key(index, 1, 6, 24)}</svg>'
    )


# -- SVG --------------------------------------------------------------------------


def _el(tag: str, text: str | None = None, *, title: str | None = None, **attributes) -> str:
    """One element; ``title`` adds a hover tooltip, ``class_`` and ``text_anchor`` style names."""
    parts = [tag]
    for name, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.2f}".rstrip("0").rstrip(".")
        parts.append(f'{name.rstrip("_").replace("_", "-")}="{escape(value)}"')
    inner = (_el("title", title) if title else "") + ("" if text is None else str(escape(text)))
    return f"<{' '.join(parts)}>{inner}</{tag}>" if inner else f"<{' '.join(parts)}/>"


def _path(points: Sequence[tuple[float, float]]) -> str:
    return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)


def _percent(value: float, step: float) -> str:
    """A tick label in percent, with as many decimals as the step needs."""
    percent_step = step * 100
    decimals = 0 if percent_step >= 1 else (1 if percent_step >= 0.1 else 2)
    if percent_step >= 1 and abs(percent_step - round(percent_step)) > 1e-9:
        decimals = 1
    return f"{value * 100:.{decimals}f}%"


def _number(value: float, step: float) -> str:
    if step >= 1:
        return f"{value:,.0f}"
    return f"{value:.{len(f'{step:.6f}'.rstrip('0').split('.')[1])}f}"


def _nice_top(value: float) -> tuple[float, float]:
    """(axis top, tick step) for an axis from 0 to at least ``value``."""
    step = nice_step(max(value, 1e-9), 5)
    return math.ceil(max(value, 1e-9) / step - 1e-9) * step, step


class _Chart:
    """A canvas with a plot area, linear scales and the usual furniture."""

    def __init__(self, chart_id: str, size: Size):
        self.id, self.size = chart_id + size.suffix, size
        self.width, self.height = size.width, size.height
        self.font = size.font
        # Room for the rotated axis title and the tick labels, in proportion to the text.
        self.x0 = round(5.1 * self.font)
        self.x1 = self.width - (12 if self.width < 600 else 20)
        self.y0, self.y1 = self.height - round(3.7 * self.font), 44
        self.parts: list[str] = []
        self.x_range, self.y_range = (0.0, 1.0), (0.0, 1.0)

    def char(self) -> float:
        """Roughly how wide a character of legend text is."""
        return 0.55 * self.font

    def x(self, value: float) -> float:
        low, high = self.x_range
        return self.x0 + (self.x1 - self.x0) * (value - low) / (high - low)

    def y(self, value: float) -> float:
        low, high = self.y_range
        return self.y0 - (self.y0 - self.y1) * (min(value, high * 1.05) - low) / (high - low)

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def y_axis(self, top: float, step: float, label: str, fmt: Callable) -> None:
        self.y_range = (0.0, top)
        count = round(top / step)
        # A label every other grid line when the labels would touch.
        stride = 2 if (self.y0 - self.y1) / max(count, 1) < 1.9 * self.font else 1
        for i in range(count + 1):
            y = self.y(i * step)
            self.add(_el("line", x1=self.x0, x2=self.x1, y1=y, y2=y, class_="grid"))
            if i % stride:
                continue
            self.add(
                _el(
                    "text",
                    fmt(i * step, step),
                    x=self.x0 - 7,
                    y=y + self.font / 3,
                    class_="tick",
                    text_anchor="end",
                )
            )
        middle = (self.y0 + self.y1) / 2
        across = round(0.3 * self.font + 10)
        self.add(
            _el(
                "text",
                label,
                x=across,
                y=middle,
                class_="axis-label",
                text_anchor="middle",
                transform=f"rotate(-90 {across} {middle:.1f})",
            )
        )

    def x_axis(self, ticks: Sequence[tuple[float, str]], label: str) -> None:
        # Labels no closer than their own width plus a gap: on a narrow drawing,
        # every other (or every third) tick keeps its label.
        widest = max((len(text) for _, text in ticks), default=0) * 0.6 * self.font
        spacing = (self.x(ticks[1][0]) - self.x(ticks[0][0])) if len(ticks) > 1 else math.inf
        stride = max(1, math.ceil((widest + self.font) / spacing)) if spacing > 0 else 1
        for number, (value, text) in enumerate(ticks):
            x = self.x(value)
            self.add(_el("line", x1=x, x2=x, y1=self.y0, y2=self.y0 + 5, class_="axis"))
            if number % stride:
                continue
            self.add(
                _el(
                    "text",
                    text,
                    x=x,
                    y=self.y0 + 7 + self.font,
                    class_="tick",
                    text_anchor="middle",
                )
            )
        self.add(_el("line", x1=self.x0, x2=self.x1, y1=self.y0, y2=self.y0, class_="axis"))
        middle = (self.x0 + self.x1) / 2
        self.add(
            _el(
                "text",
                label,
                x=middle,
                y=self.height - 6,
                class_="axis-label",
                text_anchor="middle",
            )
        )

    def time_axis(self, start: float, end: float) -> None:
        self.x_range = (start, end)
        # Ticks about 90 units apart, or as far apart as a label and a gap need.
        room = max(2.0, (self.x1 - self.x0) / max(90.0, 4.8 * self.font))
        step = next((s for s in _TIME_STEPS if (end - start) / s <= room), _TIME_STEPS[-1])
        crosses_days = (
            datetime.fromtimestamp(start, UTC).date() != datetime.fromtimestamp(end, UTC).date()
        )
        ticks = []
        for index in range(math.ceil(start / step), math.floor(end / step) + 1):
            moment = datetime.fromtimestamp(index * step, tz=UTC)
            midnight = crosses_days and (moment.hour, moment.minute) == (0, 0)
            text = f"{moment.day} {moment:%b}" if step >= 86400 or midnight else f"{moment:%H:%M}"
            ticks.append((index * step, text))
        self.x_axis(ticks, "Time (UTC)")

    def legend(self, labels: Sequence[str], note: str | None = None, boxes: bool = False) -> None:
        """Each headline's key (its line, dash pattern and marker; or its box) and
        label along the top, wrapping onto more rows if needed.  The plot area
        starts below the last row."""
        x, y = self.x0, 18
        row = round(1.45 * self.font)
        for index, text in enumerate(labels):
            room = 28 + self.char() * len(text) + 16  # key, text, gap
            if x + room > self.x1 and x > self.x0:
                x, y = self.x0, y + row
            if boxes:
                self.add(
                    _el("rect", x=x + 4, y=y - 10, width=12, height=12, rx=2, fill=colour(index))
                )
            else:
                self.add(_key(index, x, y - 4))
            self.add(_el("text", text, x=x + 28, y=y, class_="legend"))
            x += room
        if note:
            note_room = self.char() * len(note)
            if x + note_room > self.x1:
                y += row
            self.add(_el("text", note, x=self.x1, y=y, class_="note", text_anchor="end"))
        self.y1 = max(self.y1, y + 26)

    def message(self, text: str, y: float | None = None) -> None:
        """``text`` centred over the plot, broken into lines that fit the drawing's width."""
        y = (self.y0 + self.y1) / 2 if y is None else y
        x = (self.x0 + self.x1) / 2
        # Centred on the plot, a line may reach the drawing's edges only as far as
        # the nearer one, less a margin.
        room = 2 * min(x, self.width - x) - 2 * self.font
        per_line = max(8, int(room / (0.6 * self.font)))
        lines = textwrap.wrap(text, per_line) or [text]
        first = y - (len(lines) - 1) * 0.6 * self.font
        spans = "".join(
            _el("tspan", line, x=x, y=first + i * 1.2 * self.font) for i, line in enumerate(lines)
        )
        self.add(f'<text class="empty-chart" text-anchor="middle">{spans}</text>')

    def clip(self) -> str:
        self.add(
            f'<clipPath id="{self.id}-clip">'
            + _el(
                "rect",
                x=self.x0,
                y=self.y1 - 1,
                width=self.x1 - self.x0,
                height=self.y0 - self.y1 + 2,
            )
            + "</clipPath>"
        )
        return f"url(#{self.id}-clip)"

    def line(self, points, index: int, clip: str, width: float, marks: int = 0) -> None:
        """A headline's line in its colour and dash pattern, with ``marks`` of its
        markers along it (staggered between headlines so they don't sit on each other)."""
        self.add(
            _el(
                "path",
                d=_path(points),
                fill="none",
                stroke=colour(index),
                stroke_width=width,
                stroke_dasharray=dash(index),
                stroke_linejoin="round",
                clip_path=clip,
            )
        )
        if marks <= 0 or len(points) < 2:
            return
        start, end = points[0][0], points[-1][0]
        offset = ((index * 0.38) % 1 + 0.5) / 2  # between a quarter and three quarters
        shown = []
        for mark in range(marks):
            target = start + (end - start) * (mark + offset) / marks
            x, y = min(points, key=lambda point: abs(point[0] - target))
            if self.y1 <= y <= self.y0:
                shown.append(marker(index, x, y, 3.6))
        self.add(f'<g clip-path="{clip}">' + "".join(shown) + "</g>")

    def area(self, points, index: int, clip: str, opacity: float) -> None:
        d = _path(points) + " Z"
        self.add(
            _el(
                "path", d=d, fill=colour(index), fill_opacity=opacity, stroke="none", clip_path=clip
            )
        )

    def render(self, title: str, description: str) -> Markup:
        return Markup(
            f'<svg class="chart" id="{self.id}" viewBox="0 0 {self.width} {self.height}" '
            f'data-fits="{self.size.fits}" role="img" '
            f'aria-labelledby="{self.id}-title {self.id}-desc" '
            'xmlns="http://www.w3.org/2000/svg">'
            + _el("title", title, id=f"{self.id}-title")
            + _el("desc", description, id=f"{self.id}-desc")
            + "".join(self.parts)
            + "</svg>"
        )


def _legend_labels(
    labels: Sequence[str], headlines: Sequence[str] | None, room: float, char: float
):
    """Letters with as much of each headline as fits on one legend row."""
    for limit in (60, 44, 32, 24) if headlines else ():
        texts = [
            f"{label} {h if len(h) <= limit else h[: limit - 1].rstrip() + '…'}"
            for label, h in zip(labels, headlines, strict=True)
        ]
        if sum(44 + char * len(text) for text in texts) <= room:
            return texts
    return list(labels)


def _drawings(draw: Callable[[Size], Markup], sizes: Sequence[Size]) -> Markup:
    return Markup("").join(draw(size) for size in sizes)


def describe_width(seconds: int) -> str:
    """A bucket's width in words: "minute", "5 min", "hour", "2 days"."""
    for unit, name in ((86400, "day"), (3600, "hour")):
        if seconds % unit == 0:
            return name if seconds == unit else f"{seconds // unit} {name}s"
    return "minute" if seconds == 60 else f"{seconds // 60} min"


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%H:%M UTC")


# -- the charts ------------------------------------------------------------------------


def ctr_chart(
    timeline: Timeline,
    bands: Bands,
    labels: Sequence[str],
    *,
    level: int,
    headlines: Sequence[str] | None = None,
    sizes: Sequence[Size] = CTR_SIZES,
) -> Markup:
    """Cumulative CTR of each variant over time, its anytime-valid interval as a band."""
    return _drawings(
        lambda size: _ctr(size, timeline, bands, labels, level=level, headlines=headlines), sizes
    )


def _ctr(size, timeline, bands, labels, *, level, headlines) -> Markup:
    chart = _Chart("chart-ctr", size)
    title = "Click-through rate over time"
    description = (
        "Cumulative click-through rate of each headline since the test started, with its "
        f"anytime-valid interval shaded ({level}% for all headlines together). Times in UTC."
    )
    if not bands.times or all(value is None for value in bands.ctr[-1]):
        chart.legend(labels)
        chart.message("No readers yet: the lines appear with the first impressions.")
        chart.time_axis(timeline.start, timeline.axis_end)
        return chart.render(title, description)

    # The y axis covers the final intervals and every CTR once it rests on 30
    # readers; the wild early swings (1 click out of 2 = 50%) are clipped.
    cumulative = timeline.cumulative()
    candidates = [high for high in bands.high[-1] if high is not None]
    for (_, impressions, _), rates in zip(cumulative, bands.ctr, strict=True):
        candidates += [r for r, n in zip(rates, impressions, strict=True) if n >= 30]
    top, step = _nice_top(min(1.0, max(candidates) * 1.1))
    chart.legend(_legend_labels(labels, headlines, chart.x1 - chart.x0, chart.char()))
    axis_title = "Click-through rate (cumulative)" if size.width >= 600 else "CTR (cumulative)"
    chart.y_axis(min(top, 1.0), step, axis_title, _percent)
    chart.time_axis(timeline.start, timeline.axis_end)
    clip = chart.clip()
    # A marker about every 120 units along each line, as well as the one at its end.
    marks = max(2, round((chart.x1 - chart.x0) / 120))

    for v, label in enumerate(labels):
        steps = [s for s, rates in enumerate(bands.ctr) if rates[v] is not None]
        if not steps:
            continue
        xs = [chart.x(bands.times[s]) for s in steps]
        if len(xs) == 1:  # one bucket so far: a short stub so it shows
            xs, steps = [max(chart.x0, xs[0] - 6), xs[0]], steps * 2
        upper = [(x, chart.y(bands.high[s][v])) for x, s in zip(xs, steps, strict=True)]
        lower = [(x, chart.y(bands.low[s][v])) for x, s in zip(xs, steps, strict=True)]
        chart.area(upper + lower[::-1], v, clip, 0.13)
        line = [(x, chart.y(bands.ctr[s][v])) for x, s in zip(xs, steps, strict=True)]
        chart.line(line, v, clip, 2.5, marks=marks if len(line) > 2 * marks else 0)
        last = steps[-1]
        hover = (
            f"{label}: {bands.ctr[last][v]:.2%} after {cumulative[last][1][v]:,} readers "
            f"({bands.low[last][v]:.2%} – {bands.high[last][v]:.2%})"
        )
        x, y = line[-1]
        chart.add(marker(v, x, y, 5.0, title=hover))
    return chart.render(title, description)


def share_chart(
    timeline: Timeline, labels: Sequence[str], *, sizes: Sequence[Size] = SIDE_SIZES
) -> Markup:
    """Each variant's share of the new readers in each bucket: what the bandit did."""
    return _drawings(lambda size: _share(size, timeline, labels), sizes)


def _share(size: Size, timeline: Timeline, labels: Sequence[str]) -> Markup:
    chart = _Chart("chart-share", size)
    every = describe_width(timeline.bucket_seconds)
    title = "Share of traffic over time"
    description = (
        f"Stacked bars: the share of new readers shown each headline, per {every}, "
        f"{labels[0]} at the bottom. The bandit shifts traffic towards headlines that look "
        "better. Times in UTC."
    )
    chart.legend(labels, note=f"per {every}", boxes=True)
    chart.y_axis(1.0, 0.25, "Share of new readers", _percent)
    chart.time_axis(timeline.start, timeline.axis_end)
    if not any(sum(bucket.impressions) for bucket in timeline.buckets):
        chart.message("No readers yet.")
        return chart.render(title, description)
    span = timeline.axis_end - timeline.start
    gap = 1.0 if (chart.x1 - chart.x0) * timeline.bucket_seconds / span > 4 else 0.0
    for bucket in timeline.buckets:
        total = sum(bucket.impressions)
        x = chart.x(bucket.start)
        bar = max(1.0, chart.x(bucket.end) - x - gap)
        below = 0
        for v, impressions in enumerate(bucket.impressions):
            if not impressions:
                continue
            top = chart.y((below + impressions) / total)
            hover = (
                f"{labels[v]}: {impressions / total:.0%} of {total:,} new readers, "
                f"{_clock(bucket.start)} – {_clock(bucket.end)}"
            )
            chart.add(
                _el(
                    "rect",
                    title=hover,
                    x=x,
                    y=top,
                    width=bar,
                    height=chart.y(below / total) - top,
                    fill=colour(v),
                    fill_opacity=0.9,
                )
            )
            below += impressions
    return chart.render(title, description)


def posterior_chart(
    curves: Curves, labels: Sequence[str], *, sizes: Sequence[Size] = SIDE_SIZES
) -> Markup:
    """Posterior density of each variant's CTR: Beta(1 + clicks, 1 + impressions - clicks)."""
    return _drawings(lambda size: _posterior(size, curves, labels), sizes)


def _posterior(size: Size, curves: Curves, labels: Sequence[str]) -> Markup:
    chart = _Chart("chart-posterior", size)
    title = "What the click-through rates could be"
    description = (
        "Posterior density of each headline's click-through rate, Beta(1 + clicks, "
        "1 + non-clicks). Narrow peaks mean a rate is well measured; overlapping "
        "curves mean the headlines are not yet told apart."
    )
    top, step = _nice_top(max(max(row) for row in curves.densities) * 1.05)
    chart.legend(labels, note="higher = more likely")
    flat = (curves.low, curves.high) == (0.0, 1.0) and all(
        max(row) == min(row) for row in curves.densities
    )
    if flat:
        chart.message("No readers yet: every rate is equally likely.", y=chart.y1 + 24)
    chart.y_axis(top, step, "Probability density", _number)
    chart.x_range = (curves.low, curves.high)
    ticks = []
    for index in range(round((curves.high - curves.low) / curves.tick) + 1):
        value = curves.low + index * curves.tick
        ticks.append((value, _percent(value, curves.tick)))
    chart.x_axis(ticks, "Click-through rate")
    clip = chart.clip()
    for v, row in enumerate(curves.densities):
        line = [(chart.x(x), chart.y(d)) for x, d in zip(curves.grid, row, strict=True)]
        chart.area([(line[0][0], chart.y0), *line, (line[-1][0], chart.y0)], v, clip, 0.12)
        chart.line(line, v, clip, 2.2)
        if not flat:  # each curve's peak carries its headline's marker
            x, y = min(line, key=lambda point: point[1])
            chart.add(marker(v, x, y, 4.2))
    return chart.render(title, description)
