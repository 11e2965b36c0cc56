"""Scoring a submission: the report, totals, the MiFID penalty, input checks (random FID weights)."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from server.cli import app
from server.competition_dir import Competition, write_config
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


def test_report_carries_intervals_diagnostics_and_evidence(random_competition):
    competition, scorer = random_competition
    images = generated(competition, n=6)
    report = scorer.score(competition, images)
    for split in ("public", "private"):  # the splits a board ranks; "all" is not bootstrapped
        total_se = getattr(report, f"se_{split}")
        class_se = [getattr(c, f"se_{split}") for c in report.classes.values()]
        assert total_se is not None and np.isfinite(total_se) and total_se >= 0
        assert all(se is not None and np.isfinite(se) for se in class_se)
    assert "se_all" not in report.model_dump() and "se_all" not in report.classes["with_mask"].model_dump()
    for score in report.classes.values():
        assert set(score.diagnostics) >= {"kid_mean", "kid_std", "precision", "recall", "density", "coverage"}
        assert score.diagnostics["n_images"] == 6
        assert [n.split for n in score.nearest_train] == ["train"] * len(score.nearest_train)
        assert 1 <= len(score.nearest_any) <= 4
        assert [n.distance for n in score.nearest_any] == sorted(n.distance for n in score.nearest_any)
        assert min(n.distance for n in score.nearest_any) <= min(n.distance for n in score.nearest_train)
        assert all((competition.root / n.file).is_file() for n in score.nearest_any + score.nearest_train)
    assert {"uncertainty", "diagnostics"} <= set(report.timings)
    again = scorer.score(competition, images)
    assert again.se_public == report.se_public  # seeded by the images: a rescore reproduces the interval


def test_constant_and_duplicate_images_get_finite_numbers(random_competition):
    competition, scorer = random_competition
    images = {cls: np.full((4, 64, 64), 128, np.uint8) for cls in competition.classes}
    report = scorer.score(competition, images)
    dumped = report.model_dump(mode="json")
    values = [dumped["score_public"], dumped["se_public"]] + [
        v for c in dumped["classes"].values() for v in c["diagnostics"].values()]
    assert all(np.isfinite(v) for v in values)
    assert all(c.diagnostics["distinct_images"] == 1 for c in report.classes.values())


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


@pytest.fixture
def two_image_competition(random_competition, tmp_path):
    """The tiny competition with submissions of 2 images per class (its reference cache comes along)."""
    competition, scorer = random_competition
    root = tmp_path / "competition"
    shutil.copytree(competition.root, root)
    write_config(root, competition.config.model_copy(update={"images_per_class": 2}))
    return Competition.load(root), scorer


def test_arena_score_reads_the_zip_through_the_submissions_package(two_image_competition, random_weights, tmp_path):
    from submissions import pack

    competition, scorer = two_image_competition
    images = generated(competition)
    pack(images, tmp_path / "entry.zip", competition.classes)
    result = CliRunner().invoke(app, ["score", str(tmp_path / "entry.zip"), "--competition", str(competition.root),
                                      "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = ScoreReport.model_validate_json(result.output)
    assert report.score_all == pytest.approx(scorer.score(competition, images).score_all, rel=1e-9)


def test_arena_score_refuses_an_invalid_zip_with_the_problems(two_image_competition, tmp_path):
    competition, _ = two_image_competition
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as bad:
        bad.writestr("with_mask/0.png", b"not a png")
    result = CliRunner().invoke(app, ["score", str(tmp_path / "bad.zip"), "--competition", str(competition.root)])
    assert result.exit_code == 2
    assert "with_mask/0.png" in result.output and "problems" in result.output


def test_arena_score_samples_a_model_and_gives_the_interval_over_sample_sets(two_image_competition, random_weights,
                                                                             tmp_path, monkeypatch):
    """`arena score model.onnx`: validated, sampled with the server's seed, scored over fresh sample sets."""
    import hashlib
    import json
    import statistics

    from server.config import Settings
    from server.jobs.sampling_seeds import submission_seed
    from submissions.results import Z_95
    from tests.utils import onnx_models

    competition, _ = two_image_competition
    write_config(competition.root, competition.config.model_copy(update={"submission_kinds": "both"}))
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "data"))  # where the server's salt lives
    model = onnx_models.generator(tmp_path / "g.onnx")
    command = ["score", str(model), "--competition", str(competition.root), "--device", "cpu", "--sets", "3"]
    result = CliRunner().invoke(app, [*command, "--json"])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output)
    sets = scored["sample_sets"]
    assert scored["score_public"] == sets["public"][0] and len(set(sets["public"])) == 3
    assert scored["se_public"] == pytest.approx(statistics.stdev(sets["public"]))
    assert sets["seeds"][0] == submission_seed(Settings(), hashlib.sha256(model.read_bytes()).hexdigest())
    table = CliRunner().invoke(app, command).output
    assert "a 95% interval over 3 sample sets" in table
    assert f"{sets['public'][0]:.3f} ± {Z_95 * statistics.stdev(sets['public']):.3f}" in table

    broken = onnx_models.nan_images(tmp_path / "nan.onnx")  # passes nothing: the dry run finds the NaN
    failed = CliRunner().invoke(app, ["score", str(broken), "--competition", str(competition.root)])
    assert failed.exit_code == 2 and "dry_run_failed" in failed.output
    write_config(competition.root, competition.config.model_copy(update={"submission_kinds": "images"}))
    refused = CliRunner().invoke(app, ["score", str(model), "--competition", str(competition.root)])
    assert refused.exit_code == 2 and "kind_not_accepted" in refused.output and "takes images only" in refused.output
