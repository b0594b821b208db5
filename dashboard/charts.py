"""Server-rendered SVG charts for the experiment page.

Why SVG built on the server: nothing to install but pip, nothing from a CDN,
no JavaScript library to keep up to date.  The same markup renders without
JavaScript, in a screenshot, and in the live view (the JSON endpoint sends
re-rendered fragments that the page swaps in).

Everything here is pure: counts and a series in, ``Markup`` out.  Text and
attribute values are escaped; colours and geometry go into SVG presentation
attributes, never ``style=""``, so the dashboard's Content-Security-Policy
needs no ``unsafe-inline``.  Times on the axes are UTC.

The intervals and densities are :mod:`abtest.stats`'s, imported inside the
functions that need them: it brings scipy, which the app loads with the first
report, not when it starts (docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from markupsafe import Markup, escape

__all__ = [
    "PALETTE",
    "Timeline",
    "build_timeline",
    "colour",
    "dash",
    "ctr_chart",
    "share_chart",
    "posterior_chart",
    "swatch",
]

# Okabe-Ito (colour-blind safe) first, then four more distinct hues; past ten
# variants the colours repeat with a dash pattern.
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
_DASHES = (None, "7 4", "2 3")

# Bucket widths, in multiples of the series interval, from which the charts
# pick the smallest that keeps the number of buckets readable.
_MINUTE_MULTIPLES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
_HOUR_MULTIPLES = (1, 2, 3, 6, 12, 24, 48, 168)
_TIME_STEPS = (
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    28 * 86400,
)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def dash(index: int) -> str | None:
    return _DASHES[(index // len(PALETTE)) % len(_DASHES)]


def swatch(index: int, size: int = 12) -> Markup:
    """A small coloured square for tables and legends outside the charts."""
    return Markup(
        f'<svg class="swatch" width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
        f'aria-hidden="true"><rect width="{size}" height="{size}" rx="2" '
        f'fill="{colour(index)}"/></svg>'
    )


# -- maths -----------------------------------------------------------------


# -- the time axis -----------------------------------------------------------


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
        impressions = list(self.baseline_impressions)
        clicks = list(self.baseline_clicks)
        points = []
        for bucket in self.buckets:
            impressions = [i + j for i, j in zip(impressions, bucket.impressions, strict=True)]
            clicks = [c + d for c, d in zip(clicks, bucket.clicks, strict=True)]
            points.append((bucket.end, tuple(impressions), tuple(clicks)))
        return points


def build_timeline(
    series: dict,
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
    impressions = [[0] * count for _ in range(n_buckets)]
    clicks = [[0] * count for _ in range(n_buckets)]
    for point in points:
        index = int((point["t"] - first) // width)
        if 0 <= index < n_buckets:
            for v in range(count):
                impressions[index][v] += int(point["impressions"][v])
                clicks[index][v] += int(point["clicks"][v])
    buckets = tuple(
        Bucket(
            start=max(first + i * width, origin),
            end=min(first + (i + 1) * width, end),
            impressions=tuple(impressions[i]),
            clicks=tuple(clicks[i]),
        )
        for i in range(n_buckets)
    )

    baseline_impressions = baseline_clicks = (0,) * count
    if truncated and totals is not None:
        seen_i = [sum(b.impressions[v] for b in buckets) for v in range(count)]
        seen_c = [sum(b.clicks[v] for b in buckets) for v in range(count)]
        baseline_impressions = tuple(max(0, t - s) for t, s in zip(totals[0], seen_i, strict=True))
        baseline_clicks = tuple(max(0, t - s) for t, s in zip(totals[1], seen_c, strict=True))

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


def _time_ticks(start: float, end: float, max_ticks: int) -> tuple[list[float], int]:
    span = max(end - start, 1)
    step = next((s for s in _TIME_STEPS if span / s <= max_ticks), _TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    ticks = []
    tick = first
    while tick <= end:
        ticks.append(tick)
        tick += step
    return ticks, step


def _time_label(t: float, step: int, crosses_days: bool) -> str:
    moment = datetime.fromtimestamp(t, tz=UTC)
    if step >= 86400:
        return f"{moment.day} {moment:%b}"
    if crosses_days and moment.hour == 0 and moment.minute == 0:
        return f"{moment.day} {moment:%b}"
    return f"{moment:%H:%M}"


def describe_width(seconds: int) -> str:
    if seconds % 86400 == 0:
        days = seconds // 86400
        return "day" if days == 1 else f"{days} days"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    minutes = seconds // 60
    return "minute" if minutes == 1 else f"{minutes} min"


# -- linear axes -------------------------------------------------------------


def _nice_step(span: float, max_ticks: int) -> float:
    raw = span / max(max_ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * magnitude
        if span / step <= max_ticks:
            return step
    return 10 * magnitude


def _nice_top(value: float, max_ticks: int = 5) -> tuple[float, float]:
    """(axis top, tick step) for an axis from 0 to at least ``value``."""
    value = max(value, 1e-9)
    step = _nice_step(value, max_ticks)
    return math.ceil(value / step - 1e-9) * step, step


def _format_percent(value: float, step: float) -> str:
    """A tick label in percent, with as many decimals as the step needs."""
    percent_step = step * 100
    decimals = 0 if percent_step >= 1 else (1 if percent_step >= 0.1 else 2)
    if percent_step >= 1 and abs(percent_step - round(percent_step)) > 1e-9:
        decimals = 1
    return f"{value * 100:.{decimals}f}%"


def _format_number(value: float, step: float) -> str:
    if step >= 1:
        return f"{value:,.0f}"
    decimals = len(f"{step:.6f}".rstrip("0").split(".")[1])  # 0.25 -> 2, 0.5 -> 1
    return f"{value:.{decimals}f}"


# -- SVG plumbing --------------------------------------------------------------


def _attrs(attributes: dict) -> str:
    parts = []
    for name, value in attributes.items():
        if value is None:
            continue
        name = name.rstrip("_").replace("_", "-")
        if isinstance(value, float):
            value = f"{value:.2f}".rstrip("0").rstrip(".")
        parts.append(f'{name}="{escape(value)}"')
    return " ".join(parts)


def _el(tag: str, text: str | None = None, **attributes) -> str:
    attrs = _attrs(attributes)
    opening = f"<{tag} {attrs}" if attrs else f"<{tag}"
    if text is None:
        return opening + "/>"
    return f"{opening}>{escape(text)}</{tag}>"


def _path(points: Sequence[tuple[float, float]]) -> str:
    return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)


@dataclasses.dataclass
class _Frame:
    """A chart's canvas: size, margins and the plot area inside them."""

    chart_id: str
    width: int
    height: int
    left: int = 64
    right: int = 20
    top: int = 44
    bottom: int = 46
    parts: list[str] = dataclasses.field(default_factory=list)

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:  # bottom of the plot area
        return self.height - self.bottom

    @property
    def y1(self) -> float:  # top of the plot area
        return self.top

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def y_axis(self, top: float, step: float, label: str, fmt) -> None:
        value = 0.0
        while value <= top + step * 1e-6:
            y = self.y0 - (self.y0 - self.y1) * value / top
            self.add(_el("line", x1=self.x0, x2=self.x1, y1=y, y2=y, class_="grid"))
            self.add(
                _el(
                    "text",
                    fmt(value, step),
                    x=self.x0 - 8,
                    y=y + 4,
                    class_="tick",
                    text_anchor="end",
                )
            )
            value += step
        middle = (self.y0 + self.y1) / 2
        self.add(
            _el(
                "text",
                label,
                x=16,
                y=middle,
                class_="axis-label",
                text_anchor="middle",
                transform=f"rotate(-90 16 {middle:.1f})",
            )
        )

    def time_axis(self, start: float, end: float, label: str) -> None:
        max_ticks = max(2, int((self.x1 - self.x0) / 90))
        ticks, step = _time_ticks(start, end, max_ticks)
        crosses_days = (
            datetime.fromtimestamp(start, UTC).date() != datetime.fromtimestamp(end, UTC).date()
        )
        for tick in ticks:
            x = self.x0 + (self.x1 - self.x0) * (tick - start) / (end - start)
            self.add(_el("line", x1=x, x2=x, y1=self.y0, y2=self.y0 + 5, class_="axis"))
            self.add(
                _el(
                    "text",
                    _time_label(tick, step, crosses_days),
                    x=x,
                    y=self.y0 + 19,
                    class_="tick",
                    text_anchor="middle",
                )
            )
        self.add(_el("line", x1=self.x0, x2=self.x1, y1=self.y0, y2=self.y0, class_="axis"))
        self.add(
            _el(
                "text",
                label,
                x=(self.x0 + self.x1) / 2,
                y=self.height - 6,
                class_="axis-label",
                text_anchor="middle",
            )
        )

    def legend(self, labels: Sequence[str], note: str | None = None, kind: str = "line") -> None:
        """Swatches with labels along the top; wraps onto a second row if needed."""
        x, y = self.x0, 18
        for index, text in enumerate(labels):
            item = _legend_width(text)
            if x + item > self.x1 and x > self.x0:
                x, y = self.x0, y + 18
            if kind == "line":
                self.add(
                    _el(
                        "line",
                        x1=x,
                        x2=x + 20,
                        y1=y - 4,
                        y2=y - 4,
                        stroke=colour(index),
                        stroke_width=3,
                        stroke_dasharray=dash(index),
                    )
                )
            else:
                self.add(
                    _el("rect", x=x + 4, y=y - 10, width=12, height=12, rx=2, fill=colour(index))
                )
            self.add(_el("text", text, x=x + 26, y=y, class_="legend"))
            x += item
        if note:
            self.add(
                _el(
                    "text",
                    note,
                    x=self.x1,
                    y=18 if y == 18 else y + 18,
                    class_="note",
                    text_anchor="end",
                )
            )

    def empty(self, message: str) -> None:
        self.add(
            _el(
                "text",
                message,
                x=(self.x0 + self.x1) / 2,
                y=(self.y0 + self.y1) / 2,
                class_="empty-chart",
                text_anchor="middle",
            )
        )

    def clip(self) -> str:
        clip_id = f"{self.chart_id}-clip"
        self.add(
            f'<clipPath id="{clip_id}">'
            + _el(
                "rect",
                x=self.x0,
                y=self.y1 - 1,
                width=self.x1 - self.x0,
                height=self.y0 - self.y1 + 2,
            )
            + "</clipPath>"
        )
        return f"url(#{clip_id})"

    def render(self, title: str, description: str) -> Markup:
        title_id, desc_id = f"{self.chart_id}-title", f"{self.chart_id}-desc"
        return Markup(
            f'<svg class="chart" id="{self.chart_id}" viewBox="0 0 {self.width} {self.height}" '
            f'role="img" aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg">'
            + _el("title", title, id=title_id)
            + _el("desc", description, id=desc_id)
            + "".join(self.parts)
            + "</svg>"
        )


def _line(
    points: Sequence[tuple[float, float]],
    index: int,
    clip: str,
    *,
    width: float,
    linejoin: str | None = None,
) -> str:
    """Variant ``index``'s line through ``points``, in its colour and dash pattern."""
    return _el(
        "path",
        d=_path(points),
        fill="none",
        stroke=colour(index),
        stroke_width=width,
        stroke_dasharray=dash(index),
        stroke_linejoin=linejoin,
        clip_path=clip,
    )


def _legend_labels(
    labels: Sequence[str], headlines: Sequence[str] | None, room: float
) -> list[str]:
    """Letters with as much of each headline as fits on one legend row."""
    if headlines:
        for limit in (60, 44, 32, 24):
            texts = [
                f"{label} {_truncate(h, limit)}" for label, h in zip(labels, headlines, strict=True)
            ]
            if sum(_legend_width(t) for t in texts) <= room:
                return texts
    return list(labels)


def _legend_width(text: str) -> float:
    """Room for one legend item: swatch, label (about 6.8 px a character at 12.5 px) and a gap."""
    return 28 + 6.8 * len(text) + 18


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# -- the charts ------------------------------------------------------------------


def ctr_chart(
    timeline: Timeline,
    labels: Sequence[str],
    *,
    alpha: float = 0.05,
    headlines: Sequence[str] | None = None,
    width: int = 1120,
    height: int = 330,
) -> Markup:
    """Cumulative CTR of each variant over time, with its Wilson interval as a band."""
    frame = _Frame("chart-ctr", width, height)
    level = round(100 * (1 - alpha))
    title = "Click-through rate over time"
    description = (
        f"Cumulative click-through rate of each headline since the test started, "
        f"with its {level}% Wilson interval shaded. Times in UTC."
    )
    cumulative = timeline.cumulative()
    count = len(labels)
    if not cumulative or not any(cumulative[-1][1]):
        frame.legend(labels)
        frame.empty("No readers yet: the lines appear with the first impressions.")
        frame.time_axis(timeline.start, timeline.axis_end, "Time (UTC)")
        return frame.render(title, description)

    from abtest import stats

    # Every variant's interval at the end of every bucket: lows[bucket][variant].
    lows, highs = stats.wilson_interval(
        [impressions for _, impressions, _ in cumulative],
        [clicks for _, _, clicks in cumulative],
        alpha,
    )
    lows, highs = lows.tolist(), highs.tolist()
    # The y axis covers every line once it has some readers, and the final
    # intervals; the wild early swings (1 click out of 2 = 50%) are clipped
    # rather than allowed to flatten the part that matters.
    final_i = cumulative[-1][1]
    candidates = [highs[-1][v] for v in range(count) if final_i[v]]
    for _, impressions, clicks in cumulative:
        for v in range(count):
            if impressions[v] >= 30:
                candidates.append(clicks[v] / impressions[v])
    top, step = _nice_top(min(1.0, max(candidates) * 1.1))
    top = min(top, 1.0)

    frame.legend(_legend_labels(labels, headlines, frame.x1 - frame.x0))
    frame.y_axis(top, step, "Click-through rate (cumulative)", _format_percent)
    frame.time_axis(timeline.start, timeline.axis_end, "Time (UTC)")
    clip = frame.clip()

    def x_of(t: float) -> float:
        return frame.x0 + (frame.x1 - frame.x0) * (t - timeline.start) / (
            timeline.axis_end - timeline.start
        )

    def y_of(rate: float) -> float:
        return frame.y0 - (frame.y0 - frame.y1) * min(rate, top * 1.05) / top

    for v in range(count):
        line, upper, lower = [], [], []
        for step, (t, impressions, clicks) in enumerate(cumulative):
            if impressions[v] == 0:
                continue
            x = x_of(t)
            line.append((x, y_of(clicks[v] / impressions[v])))
            upper.append((x, y_of(highs[step][v])))
            lower.append((x, y_of(lows[step][v])))
        if not line:
            continue
        if len(line) == 1:  # one bucket so far: widen to a short stub so it shows
            x, y = line[0]
            line.insert(0, (max(frame.x0, x - 6), y))
            upper.insert(0, (max(frame.x0, x - 6), upper[0][1]))
            lower.insert(0, (max(frame.x0, x - 6), lower[0][1]))
        band = _path(upper + lower[::-1]) + " Z"
        frame.add(
            _el("path", d=band, fill=colour(v), fill_opacity=0.13, stroke="none", clip_path=clip)
        )
    for v in range(count):
        line = [
            (x_of(t), y_of(clicks[v] / impressions[v]))
            for t, impressions, clicks in cumulative
            if impressions[v]
        ]
        if not line:
            continue
        if len(line) == 1:
            line.insert(0, (max(frame.x0, line[0][0] - 6), line[0][1]))
        frame.add(_line(line, v, clip, width=2.5, linejoin="round"))
        x, y = line[-1]
        frame.add(_el("circle", cx=x, cy=y, r=4, fill=colour(v), stroke="#fff", stroke_width=1.5))
    return frame.render(title, description)


def share_chart(
    timeline: Timeline,
    labels: Sequence[str],
    *,
    width: int = 550,
    height: int = 300,
) -> Markup:
    """Each variant's share of the new readers in each bucket: what the bandit did."""
    frame = _Frame("chart-share", width, height)
    every = describe_width(timeline.bucket_seconds)
    title = "Share of traffic over time"
    description = (
        f"Stacked bars: the share of new readers shown each headline, per {every}. "
        "The bandit shifts traffic towards headlines that look better. Times in UTC."
    )
    frame.legend(labels, note=f"per {every}", kind="box")
    frame.y_axis(1.0, 0.25, "Share of new readers", _format_percent)
    frame.time_axis(timeline.start, timeline.axis_end, "Time (UTC)")
    if not any(sum(b.impressions) for b in timeline.buckets):
        frame.empty("No readers yet.")
        return frame.render(title, description)
    span = timeline.axis_end - timeline.start
    plot_width = frame.x1 - frame.x0
    gap = 1.0 if plot_width * timeline.bucket_seconds / span > 4 else 0.0
    for bucket in timeline.buckets:
        total = sum(bucket.impressions)
        if total == 0:
            continue
        x = frame.x0 + plot_width * (bucket.start - timeline.start) / span
        bar_width = max(1.0, plot_width * (bucket.end - bucket.start) / span - gap)
        y = frame.y0
        for v, impressions in enumerate(bucket.impressions):
            if not impressions:
                continue
            height_px = (frame.y0 - frame.y1) * impressions / total
            y -= height_px
            frame.add(
                _el(
                    "rect",
                    x=x,
                    y=y,
                    width=bar_width,
                    height=height_px,
                    fill=colour(v),
                    fill_opacity=0.9 if dash(v) is None else 0.6,
                )
            )
    return frame.render(title, description)


def posterior_chart(
    impressions: Sequence[int],
    clicks: Sequence[int],
    labels: Sequence[str],
    *,
    width: int = 550,
    height: int = 300,
    samples: int = 240,
) -> Markup:
    """Posterior density of each variant's CTR: Beta(1 + clicks, 1 + impressions - clicks)."""
    frame = _Frame("chart-posterior", width, height)
    title = "What the click-through rates could be"
    description = (
        "Posterior density of each headline's click-through rate, Beta(1 + clicks, "
        "1 + non-clicks). Narrow peaks mean a rate is well measured; overlapping "
        "curves mean the headlines are not yet told apart."
    )
    count = len(labels)
    params = [(1 + clicks[v], 1 + impressions[v] - clicks[v]) for v in range(count)]
    # The x range covers mean +- 5 sd of every variant with readers (all of
    # [0, 1] before any), so each curve's bulk is in view.
    low, high = 1.0, 0.0
    for (a, b), n in zip(params, impressions, strict=True):
        if n == 0:
            continue
        mean = a / (a + b)
        sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        low, high = min(low, mean - 5 * sd), max(high, mean + 5 * sd)
    if high <= low:
        low, high = 0.0, 1.0
    low, high = max(low, 0.0), min(high, 1.0)
    x_step = _nice_step(high - low, 5)
    low = math.floor(low / x_step) * x_step
    high = min(1.0, math.ceil(high / x_step) * x_step)
    epsilon = 1e-9
    grid = [low + (high - low) * i / (samples - 1) for i in range(samples)]
    grid = [min(max(x, epsilon), 1 - epsilon) for x in grid]

    from abtest import stats

    curves = stats.beta_density([a for a, _ in params], [b for _, b in params], grid).tolist()
    peak = max(max(curve) for curve in curves)
    top, y_step = _nice_top(peak * 1.05)

    frame.legend(labels, note="higher = more likely")
    if not any(impressions):
        frame.add(
            _el(
                "text",
                "No readers yet: every rate is equally likely.",
                x=(frame.x0 + frame.x1) / 2,
                y=frame.y1 + 24,
                class_="empty-chart",
                text_anchor="middle",
            )
        )
    frame.y_axis(top, y_step, "Probability density", _format_number)
    # x axis: CTR in percent.
    tick = math.ceil(low / x_step - 1e-9) * x_step
    while tick <= high + x_step * 1e-6:
        x = frame.x0 + (frame.x1 - frame.x0) * (tick - low) / (high - low)
        frame.add(_el("line", x1=x, x2=x, y1=frame.y0, y2=frame.y0 + 5, class_="axis"))
        frame.add(
            _el(
                "text",
                _format_percent(tick, x_step),
                x=x,
                y=frame.y0 + 19,
                class_="tick",
                text_anchor="middle",
            )
        )
        tick += x_step
    frame.add(_el("line", x1=frame.x0, x2=frame.x1, y1=frame.y0, y2=frame.y0, class_="axis"))
    frame.add(
        _el(
            "text",
            "Click-through rate",
            x=(frame.x0 + frame.x1) / 2,
            y=frame.height - 6,
            class_="axis-label",
            text_anchor="middle",
        )
    )
    clip = frame.clip()

    def point(x: float, density: float) -> tuple[float, float]:
        return (
            frame.x0 + (frame.x1 - frame.x0) * (x - low) / (high - low),
            frame.y0 - (frame.y0 - frame.y1) * density / top,
        )

    for v, curve in enumerate(curves):
        line = [point(x, d) for x, d in zip(grid, curve, strict=True)]
        area = _path([(line[0][0], frame.y0), *line, (line[-1][0], frame.y0)]) + " Z"
        frame.add(
            _el("path", d=area, fill=colour(v), fill_opacity=0.12, stroke="none", clip_path=clip)
        )
        frame.add(_line(line, v, clip, width=2.2))
    return frame.render(title, description)
