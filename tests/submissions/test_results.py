"""The typed result: splits, the 95% interval and its text, sample-set statistics, the one visibility rule."""

from __future__ import annotations

import statistics

import pytest

from submissions.results import (
    PRIVATE_CLASS_FIELDS,
    Z_95,
    ClassResult,
    Neighbour,
    SampleSets,
    ScoreReport,
    SubmissionResult,
    Viewer,
    interval_95,
    plus_minus,
)


def class_result(public: float, *, penalized: bool = False, se: float | None = 1.0) -> ClassResult:
    return ClassResult(fid_public=public, fid_private=public + 1, fid_all=public + 0.5, raw_fid_public=public,
                       raw_fid_private=public + 1, raw_fid_all=public + 0.5, memorization_distance=0.2,
                       memorization_eps=0.03, penalized=penalized, n_images=8, se_public=se, se_private=se,
                       nearest_train=[Neighbour(image=1, split="train", file="train/a.png", distance=0.1)],
                       nearest_any=[Neighbour(image=2, split="private", file="test/b.png", distance=0.05)])


def report(public: float) -> ScoreReport:
    classes = {"a": class_result(public), "b": class_result(public * 2)}
    return ScoreReport(classes=classes, score_public=public * 3, score_private=public * 3 + 2,
                       score_all=public * 3 + 1, se_public=0.5, se_private=0.7, timings={"total": 1.0},
                       device="cpu", precision="exact", weights_sha256="0" * 64, scorer_version="test")


def test_the_interval_and_its_text_agree():
    assert Z_95 == pytest.approx(1.959964, abs=1e-6)
    low, high = interval_95(10.0, 1.0) or (0.0, 0.0)
    assert (low, high) == pytest.approx((10 - Z_95, 10 + Z_95))
    assert plus_minus(10.0, 1.0) == "10.000 ± 1.960" and plus_minus(10.0, 1.0, decimals=1) == "10.0 ± 2.0"
    assert plus_minus(10.0, None) == "10.000" and interval_95(10.0, None) is None


def test_a_report_becomes_the_columns_and_reads_back_unchanged():
    result = report(10.0).result()
    columns = result.columns()
    assert columns["score_public_se"] == 0.5 and columns["score_all_se"] is None and not columns["penalized"]
    assert "se_all" not in columns["class_scores"]["a"]  # unknown: left out of the row, as it always was
    assert SubmissionResult.model_validate(columns) == result


def test_sample_sets_measure_the_spread_and_replace_the_standard_errors():
    reports = [report(10.0), report(11.0), report(13.0)]
    sets = SampleSets.of_reports(reports, seeds=[5, 6, 7])
    assert sets.public == [30.0, 33.0, 39.0] and sets.std("public") == pytest.approx(statistics.stdev(sets.public))
    assert sets.class_std["b"]["all"] == pytest.approx(statistics.stdev([20.5, 22.5, 26.5]))
    result = reports[0].result().with_sample_sets(sets)
    assert result.interval_sets == 3 and result.interval_label == "over 3 sample sets"
    assert result.se("public") == sets.std("public") and result.se("all") == sets.std("all")
    assert result.class_scores["a"].se("all") == sets.class_std["a"]["all"]
    assert result.sample_sets is not None and result.sample_sets.estimated_se is not None
    assert result.sample_sets.estimated_se.public == 0.5  # what half-sampling said for set 1: kept for calibration
    stored = result.columns()["sample_sets"]
    assert stored["interval"] == "sample sets" and "class_std" not in stored and stored["public_mean"] == 34.0
    one = reports[0].result().with_sample_sets(SampleSets.of_reports(reports[:1], seeds=[5]))
    assert one.interval_sets is None and one.se("public") == 0.5  # one set: no spread, the half-sampling stays


@pytest.mark.parametrize(("organizer", "revealed"), [(False, False), (False, True), (True, False)])
def test_one_rule_decides_what_a_viewer_sees(organizer, revealed):
    reports = [report(10.0), report(12.0)]
    result = reports[0].result().with_sample_sets(SampleSets.of_reports(reports, seeds=[1, 2]))
    view = result.seen_by(Viewer(organizer=organizer, private_revealed=revealed))
    private = organizer or revealed
    assert (view.score("private") is not None, view.se("private") is not None) == (private, private)
    assert view.score("public") == 30.0
    classes = view.class_scores()
    assert all(bool(PRIVATE_CLASS_FIELDS & set(values)) == private for values in classes.values())
    assert all(("nearest_any" in values) == organizer for values in classes.values())
    sets = view.sample_sets() or {}
    assert ("private" in sets, "all_std" in sets, "public" in sets) == (private, private, True)
    # Evidence: a team sees only penalized classes, and only their training neighbours; organizers everything.
    assert set(view.evidence(["a", "b"])) == ({"a", "b"} if organizer else set())
    if organizer:
        assert [which for which, _, _ in view.evidence(["a"])["a"]] == ["train", "any"]
        assert view.neighbour("a", "any", 0) == result.class_scores["a"].nearest_any[0]
    else:
        with pytest.raises(PermissionError):
            view.neighbour("a", "any", 0)
    assert view.neighbour("a", "train", 5) is None


def test_a_team_sees_the_training_evidence_of_a_penalized_class():
    result = report(10.0).result()
    result.class_scores["a"] = class_result(10.0, penalized=True)
    view = result.seen_by(Viewer(organizer=False, private_revealed=False))
    assert [(which, n.split) for which, _, n in view.evidence(["a", "b"])["a"]] == [("train", "train")]
    assert view.viewer.sees_real_image(result.class_scores["a"].nearest_train[0])
    assert not view.viewer.sees_real_image(result.class_scores["a"].nearest_any[0])
