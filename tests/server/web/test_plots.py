"""The team page's score-over-time SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from server.web.plots import ScorePoint, _nice_ticks, score_plot_svg

SVG = "{http://www.w3.org/2000/svg}"


def _points(scores: list[float]) -> list[ScorePoint]:
    start = datetime(2026, 11, 27, 12, tzinfo=UTC)
    return [ScorePoint(start + timedelta(hours=i), s, penalized=(i == 1)) for i, s in enumerate(scores)]


def test_plot_has_one_dot_per_submission_and_a_falling_best_line():
    svg = str(score_plot_svg(_points([300.0, 250.0, 280.0, 120.0])))
    root = ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
    dots = root.findall(f"{SVG}circle")
    assert len(dots) == 3  # the penalized one is marked apart (test_a_penalized_outlier_...)
    assert len([g for g in root.findall(f"{SVG}g") if g.get("class") == "dot penalized"]) == 1
    best = next(p for p in root.findall(f"{SVG}polyline") if p.get("class") == "best")
    ys = [float(xy.split(",")[1]) for xy in best.get("points").split()]
    # The score axis grows upwards (SVG y grows downwards): the best-so-far score only ever falls, so its y never
    # decreases, and it ends at the best score (120), below the first one.
    assert all(b >= a for a, b in zip(ys, ys[1:], strict=False))
    assert ys[-1] > ys[0]


def test_single_point_and_empty_plot():
    assert str(score_plot_svg([])) == ""
    svg = str(score_plot_svg(_points([42.0])))
    assert svg.count("<circle") == 1 and "nan" not in svg


def test_ticks_are_round_and_cover_the_range():
    ticks = _nice_ticks(113.0, 587.0)
    assert ticks[0] <= 113.0 and ticks[-1] >= 587.0
    steps = {round(b - a, 6) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert steps == {100.0}


def test_single_point_gets_one_date_label():
    svg = str(score_plot_svg(_points([42.0])))
    assert svg.count("UTC</text>") == 1


def _parsed(points: list[ScorePoint]) -> ET.Element:
    svg = str(score_plot_svg(points))
    return ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def _axis_labels(root: ET.Element) -> dict[float, float]:
    """Tick value -> its y, from the labels left of the axis."""
    return {float(t.text.replace(",", "")): float(t.get("y")) for t in root.findall(f"{SVG}text")
            if t.get("text-anchor") == "end" and t.text and t.text[0].isdigit()}


def _series(scores: list[float], penalized: set[int] = frozenset(), se: float | None = None) -> list[ScorePoint]:
    start = datetime(2026, 11, 27, 12, tzinfo=UTC)
    return [ScorePoint(start + timedelta(hours=i), s, penalized=i in penalized, se=None if i in penalized else se)
            for i, s in enumerate(scores)]


def test_a_penalized_outlier_is_marked_apart_and_the_axis_covers_the_honest_scores():
    # 4e9 is what copying training images scores after the penalty; on a shared axis 600-700 would sit on zero.
    root = _parsed(_series([688.0, 650.0, 4e9, 640.0, 700.0], penalized={2}, se=8.0))
    labels = _axis_labels(root)
    assert max(labels) <= 1000 and min(labels) >= 500, labels  # linear: 600-700 span less than a decade
    dots = [float(c.get("cy")) for c in root.findall(f"{SVG}circle")]
    assert len(dots) == 4  # the four honest scores on the axis
    plot_height = max(labels.values()) - min(labels.values())
    assert max(dots) - min(dots) > 0.3 * plot_height  # they use the plot, not a sliver of it
    marked = [g for g in root.findall(f"{SVG}g") if g.get("class") == "dot penalized"]
    assert len(marked) == 1 and "penalized for memorization" in marked[0].find(f"{SVG}title").text
    band_y = {float(line.get("y1")) for line in marked[0].findall(f"{SVG}line")}
    assert max(band_y) < min(labels.values())  # above the score axis, apart from it
    assert "✕ penalized" in ET.tostring(root, encoding="unicode")


def test_scores_spanning_more_than_a_decade_get_a_log_axis():
    root = _parsed(_series([3000.0, 800.0, 120.0]))
    labels = _axis_labels(root)
    assert {100.0, 1000.0} <= set(labels) and "log scale" in ET.tostring(root, encoding="unicode")
    # Equal ratios, equal distances: 100 -> 1,000 is as tall as 1,000 -> 10,000 would be, and 200 sits at log10(2).
    ys = labels
    decade = ys[100.0] - ys[1000.0]
    assert ys[100.0] - ys[200.0] == pytest.approx(decade * np.log10(2), abs=0.2)
    linear = _axis_labels(_parsed(_series([700.0, 650.0, 600.0])))
    steps = sorted(linear)
    assert len({round(b - a, 6) for a, b in zip(steps, steps[1:], strict=False)}) == 1  # within a decade: linear


def test_intervals_are_drawn_as_error_bars_centred_on_their_dots():
    root = _parsed(_series([688.0, 650.0, 640.0], se=10.0))
    bars = [line for line in root.findall(f"{SVG}line") if line.get("class") == "errorbar"
            and line.get("x1") == line.get("x2")]
    dots = root.findall(f"{SVG}circle")
    assert len(bars) == 3 and len(dots) == 3
    labels = _axis_labels(root)
    (v1, y1), (v2, y2) = sorted(labels.items())[:2]
    per_unit = (y1 - y2) / (v2 - v1)
    for bar, dot in zip(bars, dots, strict=True):
        low, high = float(bar.get("y1")), float(bar.get("y2"))
        assert bar.get("x1") == dot.get("cx")
        assert (low + high) / 2 == pytest.approx(float(dot.get("cy")), abs=0.2)
        assert low - high == pytest.approx(2 * 1.96 * 10.0 * per_unit, abs=0.3)  # the 95% interval, to scale
    assert "± 19.6 (95%)" in dots[0].find(f"{SVG}title").text


def test_only_penalized_entries_still_plot_their_times():
    root = _parsed(_series([4e9, 3e9], penalized={0, 1}))
    assert not root.findall(f"{SVG}circle") and "No unpenalized score yet" in ET.tostring(root, encoding="unicode")
    assert len([g for g in root.findall(f"{SVG}g") if g.get("class") == "dot penalized"]) == 2
