"""Score-over-time plot for the team page as inline SVG: no image files, no JavaScript, crisp at any size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 40


@dataclass(frozen=True)
class ScorePoint:
    when: datetime
    score: float
    penalized: bool = False


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 5 x 10^k steps), so axis labels read naturally."""
    if high <= low:
        high = low + 1.0
    raw_step = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def score_plot_svg(points: list[ScorePoint]) -> Markup:
    """Every scored submission as a dot (lower is better) and the running best as a step line."""
    if not points:
        return Markup("")
    points = sorted(points, key=lambda p: p.when)
    ticks = _nice_ticks(min(p.score for p in points), max(p.score for p in points))
    y_low, y_high = ticks[0], ticks[-1] if ticks[-1] > ticks[0] else ticks[0] + 1
    t_low, t_high = points[0].when.timestamp(), points[-1].when.timestamp()
    span = (t_high - t_low) or 1.0

    def x(p: ScorePoint) -> float:
        return LEFT + (p.when.timestamp() - t_low) / span * (WIDTH - LEFT - RIGHT) if len(points) > 1 else WIDTH / 2

    def y(value: float) -> float:
        return TOP + (y_high - value) / (y_high - y_low) * (HEIGHT - TOP - BOTTOM)

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Score over time, lower is better">']
    for tick in ticks:
        parts.append(f'<line class="gridline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>')
        label_y = y(tick) + 4
        parts.append(f'<text class="label" x="{LEFT - 6}" y="{label_y:.1f}" text-anchor="end">{_number(tick)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}"/>')
    ends = (("start", points[0]), ("end", points[-1])) if len(points) > 1 else (("middle", points[0]),)
    for anchor, point in ends:
        label = escape(point.when.strftime("%b %d %H:%M UTC"))
        parts.append(f'<text class="label" x="{x(point):.1f}" y="{HEIGHT - 18}" text-anchor="{anchor}">{label}</text>')

    series = " ".join(f"{x(p):.1f},{y(p.score):.1f}" for p in points)
    parts.append(f'<polyline class="series" points="{series}"/>')
    best_path: list[str] = []
    best = math.inf
    for p in points:
        if p.score < best:
            if best_path:
                best_path.append(f"{x(p):.1f},{y(best):.1f}")
            best = p.score
        best_path.append(f"{x(p):.1f},{y(best):.1f}")
    best_path.append(f"{WIDTH - RIGHT},{y(best):.1f}")
    parts.append(f'<polyline class="best" points="{" ".join(best_path)}"/>')
    for p in points:
        css = "dot penalized" if p.penalized else "dot"
        note = " (memorization penalty)" if p.penalized else ""
        title = escape(f"{p.when:%Y-%m-%d %H:%M} UTC: {p.score:.2f}{note}")
        cx, cy = x(p), y(p.score)
        parts.append(f'<circle class="{css}" cx="{cx:.1f}" cy="{cy:.1f}" r="4"><title>{title}</title></circle>')
    parts.append(f'<text class="legend" x="{LEFT}" y="16">● each submission (public score)   '
                 f'— best so far · lower is better</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
