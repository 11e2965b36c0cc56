"""Score-over-time plot for the team page as inline SVG: no image files, no JavaScript, crisp at any size.

The score axis covers the unpenalized scores only: a memorization penalty multiplies a FID by up to 10^15, and one
such point on the axis would squash every honest score onto zero. Penalized submissions are drawn apart, in a band
above the plot at their time. The axis turns logarithmic when the scores span more than a decade. Each score with a
standard error gets its 95% interval as an error bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from submissions.results import interval_95, plus_minus

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 56, 40
BAND_Y = 40  # the penalized band, above the score axis
LOG_ABOVE = 10.0  # highest / lowest score beyond which the axis is logarithmic


@dataclass(frozen=True)
class ScorePoint:
    when: datetime
    score: float
    penalized: bool = False
    se: float | None = None  # standard error of the score: the bar spans +- Z_95 se


@dataclass(frozen=True)
class ScoreAxis:
    """The vertical axis: its range, its ticks, and whether it is logarithmic."""

    low: float
    high: float
    ticks: list[float]
    log: bool

    @classmethod
    def covering(cls, values: list[float]) -> ScoreAxis:
        low, high = min(values), max(values)
        if low > 0 and high / low > LOG_ABOVE:
            ticks = _log_ticks(low, high)
            return cls(ticks[0], ticks[-1], ticks, log=True)
        ticks = _nice_ticks(low, high)
        return cls(ticks[0], ticks[-1] if ticks[-1] > ticks[0] else ticks[0] + 1, ticks, log=False)

    def fraction(self, value: float) -> float:
        """Where a value sits from the bottom (0) to the top (1), clipped to the axis."""
        if self.log:
            value = max(value, self.low)
            share = math.log10(value / self.low) / math.log10(self.high / self.low)
        else:
            share = (value - self.low) / (self.high - self.low)
        return min(max(share, 0.0), 1.0)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 5 x 10^k steps), so axis labels read naturally."""
    if high <= low:
        high = low + 1.0
    raw_step = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """Decades covering [low, high], with 2 and 5 between them when there are few decades to label."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    steps = (1,) if last - first > 3 else (1, 2, 5)
    ticks = [m * 10.0**k for k in range(first, last) for m in steps] + [10.0**last]
    # Trim to the last tick below low and the first tick above high, so the data fill the axis.
    below = max(t for t in ticks if t <= low)
    above = min(t for t in ticks if t >= high)
    return [t for t in ticks if below <= t <= above]


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _interval(point: ScorePoint) -> tuple[float, float] | None:
    if point.se is None or point.penalized:
        return None
    return interval_95(point.score, point.se)


def score_plot_svg(points: list[ScorePoint]) -> Markup:
    """Every scored submission as a dot with its 95% interval (lower is better), the running best as a step line,
    and penalized submissions marked apart in a band above the axis."""
    if not points:
        return Markup("")
    points = sorted(points, key=lambda p: p.when)
    honest = [p for p in points if not p.penalized]
    penalized = [p for p in points if p.penalized]
    t_low, t_high = points[0].when.timestamp(), points[-1].when.timestamp()
    span = (t_high - t_low) or 1.0

    def x(p: ScorePoint) -> float:
        return LEFT + (p.when.timestamp() - t_low) / span * (WIDTH - LEFT - RIGHT) if len(points) > 1 else WIDTH / 2

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Score over time, lower is better">']
    if honest:
        parts += _scored_part(honest, x)
    else:
        parts.append(f'<text class="label" x="{WIDTH / 2}" y="{(TOP + HEIGHT - BOTTOM) / 2}" text-anchor="middle">'
                     f'No unpenalized score yet</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}"/>')
    ends = (("start", points[0]), ("end", points[-1])) if len(points) > 1 else (("middle", points[0]),)
    for anchor, point in ends:
        label = escape(point.when.strftime("%b %d %H:%M UTC"))
        parts.append(f'<text class="label" x="{x(point):.1f}" y="{HEIGHT - 18}" text-anchor="{anchor}">{label}</text>')
    if penalized:
        parts += _penalized_band(penalized, x)
    # SVG collapses runs of spaces: the legend's items are separated by middle dots.
    parts.append(f'<text class="legend" x="{LEFT}" y="16">● public score, bar: 95% interval · — best so far'
                 f'{" · ✕ penalized" if penalized else ""} · lower is better'
                 f'{" · log scale" if honest and _axis(honest).log else ""}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _axis(honest: list[ScorePoint]) -> ScoreAxis:
    values = [p.score for p in honest]
    for point in honest:
        interval = _interval(point)
        if interval:
            values += [v for v in interval if v > 0]  # a log axis cannot hold 0; the bar is clipped instead
    return ScoreAxis.covering(values)


def _scored_part(honest: list[ScorePoint], x: Callable[[ScorePoint], float]) -> list[str]:
    axis = _axis(honest)

    def y(value: float) -> float:
        return HEIGHT - BOTTOM - axis.fraction(value) * (HEIGHT - TOP - BOTTOM)

    parts = []
    for tick in axis.ticks:
        parts.append(f'<line class="gridline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>')
        parts.append(f'<text class="label" x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                     f'{_number(tick)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
    series = " ".join(f"{x(p):.1f},{y(p.score):.1f}" for p in honest)
    parts.append(f'<polyline class="series" points="{series}"/>')
    best_path: list[str] = []
    best = math.inf
    for p in honest:
        if p.score < best:
            if best_path:
                best_path.append(f"{x(p):.1f},{y(best):.1f}")
            best = p.score
        best_path.append(f"{x(p):.1f},{y(best):.1f}")
    best_path.append(f"{WIDTH - RIGHT},{y(best):.1f}")
    parts.append(f'<polyline class="best" points="{" ".join(best_path)}"/>')
    for p in honest:
        interval = _interval(p)
        cx, cy = x(p), y(p.score)
        if interval:
            low, high = y(interval[0]), y(interval[1])
            parts.append(f'<line class="errorbar" x1="{cx:.1f}" x2="{cx:.1f}" y1="{low:.1f}" y2="{high:.1f}"/>')
            for cap in (low, high):
                parts.append(f'<line class="errorbar" x1="{cx - 3:.1f}" x2="{cx + 3:.1f}" y1="{cap:.1f}" '
                             f'y2="{cap:.1f}"/>')
        # With an interval, the score as the submission page shows it: one decimal, like its ±.
        shown = f"{plus_minus(p.score, p.se, decimals=1)} (95%)" if interval else f"{p.score:.2f}"
        title = escape(f"{p.when:%Y-%m-%d %H:%M} UTC: {shown}")
        parts.append(f'<circle class="dot" cx="{cx:.1f}" cy="{cy:.1f}" r="4"><title>{title}</title></circle>')
    return parts


def _penalized_band(penalized: list[ScorePoint], x: Callable[[ScorePoint], float]) -> list[str]:
    """A cross per penalized submission at its time, above the axis: its score is not comparable, only its date."""
    parts = [f'<text class="label penalized-label" x="{LEFT - 6}" y="{BAND_Y + 4}" text-anchor="end">'
             f'penalized</text>',
             f'<line class="band" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{BAND_Y}" y2="{BAND_Y}"/>']
    for p in penalized:
        cx = x(p)
        title = escape(f"{p.when:%Y-%m-%d %H:%M} UTC: penalized for memorization (score {p.score:,.1f})")
        parts.append(f'<g class="dot penalized"><title>{title}</title>'
                     f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{BAND_Y - 4}" y2="{BAND_Y + 4}"/>'
                     f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{BAND_Y + 4}" y2="{BAND_Y - 4}"/></g>')
    return parts
