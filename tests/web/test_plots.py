"""The team page's score-over-time SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from server.web.plots import ScorePoint, _nice_ticks, score_plot_svg

SVG = "{http://www.w3.org/2000/svg}"


def _points(scores: list[float]) -> list[ScorePoint]:
    start = datetime(2026, 11, 27, 12, tzinfo=UTC)
    return [ScorePoint(start + timedelta(hours=i), s, penalized=(i == 1)) for i, s in enumerate(scores)]


def test_plot_has_one_dot_per_submission_and_a_falling_best_line():
    svg = str(score_plot_svg(_points([300.0, 250.0, 280.0, 120.0])))
    root = ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
    dots = root.findall(f"{SVG}circle")
    assert len(dots) == 4
    assert [d.get("class") for d in dots].count("dot penalized") == 1
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
