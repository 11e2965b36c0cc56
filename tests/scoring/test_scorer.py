"""Scoring a submission: the report, totals, the MiFID penalty, input checks (random FID weights)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from server.scoring import ScoreReport, fid_of_images
from server.scoring.memorization import memorization_distance, normalized, penalize
from tests.utils.competition import random_images


def generated(competition, n=2, seed=100):
    return {cls: random_images(n, seed=seed + i, brightness=70 + 110 * i) for i, cls in enumerate(competition.classes)}


def test_report_totals_and_metadata(random_competition):
    competition, scorer = random_competition
    images = generated(competition)
    report = scorer.score(competition, images)
    assert set(report.classes) == set(competition.classes)
    for split in ("public", "private", "all"):
        total = sum(getattr(c, f"fid_{split}") for c in report.classes.values())
        assert getattr(report, f"score_{split}") == pytest.approx(total, rel=1e-12)
    for cls_score in report.classes.values():
        assert cls_score.n_images == 2 and cls_score.raw_fid_all > 0
        # random weights make every image look alike, so whether the penalty applies is not the point here
        divisor = cls_score.memorization_distance if cls_score.penalized else 1.0
        assert cls_score.penalized == (cls_score.memorization_distance < cls_score.memorization_eps)
        assert cls_score.fid_all == pytest.approx(cls_score.raw_fid_all / divisor, rel=1e-12)
    assert {"decode", "features", "distance", "total"} <= set(report.timings)
    assert (report.device, report.precision) == ("cpu", "exact")
    assert report.weights_sha256 == scorer.extractor.weights_sha256
    assert ScoreReport.model_validate(report.model_dump(mode="json")) == report

    reference = scorer.prepare(competition).classes["with_mask"].stats["all"]
    assert fid_of_images(reference, images["with_mask"], scorer.extractor) == pytest.approx(
        report.classes["with_mask"].raw_fid_all, rel=1e-9)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ({"with_mask": np.zeros((3, 8, 8), np.uint8)}, "exactly the classes"),
        ({"with_mask": np.zeros((3, 8, 8), np.float32), "without_mask": np.zeros((3, 8, 8), np.uint8)}, "uint8"),
        ({"with_mask": np.zeros((1, 8, 8), np.uint8), "without_mask": np.zeros((3, 8, 8), np.uint8)}, "at least 2"),
    ],
)
def test_bad_images_are_refused(random_competition, images, message):
    competition, scorer = random_competition
    with pytest.raises(ValueError, match=message):
        scorer.score(competition, images)


def test_memorization_distance_uses_absolute_cosine():
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(10, 16))
    assert memorization_distance(memory[:4], normalized(memory)) == pytest.approx(0, abs=1e-6)
    assert memorization_distance(-memory[:4], normalized(memory)) == pytest.approx(0, abs=1e-6)  # 1 - |cos|
    orthogonal = np.eye(16)
    assert memorization_distance(orthogonal[8:], normalized(orthogonal[:8])) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("raw", "distance", "eps", "expected"),
    [(100.0, 0.2, 0.1, (100.0, False)), (100.0, 0.05, 0.1, (2000.0, True)), (100.0, 0.0, 0.1, (1e17, True)),
     (100.0, 0.1, 0.1, (100.0, False))],
)
def test_penalty_divides_by_the_distance_below_eps(raw, distance, eps, expected):
    value, applied = penalize(raw, distance, eps)
    assert applied == expected[1] and value == pytest.approx(expected[0])


def test_arena_score_images_folder_prints_the_report(random_competition, random_weights, tmp_path):
    from typer.testing import CliRunner

    from server.cli import app

    competition, scorer = random_competition
    images = generated(competition)
    for cls, arrays in images.items():
        (tmp_path / cls).mkdir()
        for i, image in enumerate(arrays):
            Image.fromarray(image, mode="L").save(tmp_path / cls / f"{i}.png")
    result = CliRunner().invoke(app, ["score", "--images", str(tmp_path), "--competition", str(competition.root),
                                      "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = ScoreReport.model_validate_json(result.output)
    assert report.score_all == pytest.approx(scorer.score(competition, images).score_all, rel=1e-9)
