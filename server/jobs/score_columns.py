"""The columns a scored entry stores: a scorer's report mapped to them (`score_fields`), and for a model its
score over several fresh sample sets, whose spread becomes its standard errors (`with_sample_set_interval`)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from server.jobs.queue import ScoreFields
from server.scoring.references import SPLITS

if TYPE_CHECKING:
    from server.scoring import ScoreReport


def sample_set_summary(reports: list[ScoreReport], *, seeds: list[int]) -> dict[str, Any]:
    """Each split's scores over the sets with mean and standard deviation, and each class's standard deviation
    (`class_std`, moved into the class scores by `with_sample_set_interval`)."""
    summary: dict[str, Any] = {"method": "fresh sample sets", "seeds": seeds}
    for split in SPLITS:
        summary |= spread(split, [getattr(r, f"score_{split}") for r in reports])
    summary["class_std"] = {
        cls: {split: standard_deviation([getattr(r.classes[cls], f"fid_{split}") for r in reports]) for split in SPLITS}
        for cls in reports[0].classes}
    return summary


def with_sample_set_interval(scores: ScoreFields, summary: dict[str, Any]) -> ScoreFields:
    """A model submission's columns: the score stays the first set's (the kept images: grids, per-class table,
    memorization evidence and rescoring all describe that set), its standard errors become the standard deviation
    of the score over the sample sets: how far one set's score moves when the model is sampled again, the very
    quantity the bootstrap estimates for an image submission, so the boards' tie rule compares like with like.
    With one set there is no spread to measure and the bootstrap stays.

    Every model submission is also a calibration sample: `estimated_se` keeps what the half-sampling estimator
    (server/scoring/uncertainty.py) said for set 1, per split and class, beside the sets' measured spread."""
    sets = {key: value for key, value in summary.items() if key != "class_std"}
    sets["estimated_se"] = {
        **{split: getattr(scores, f"score_{split}_se") for split in SPLITS if split != "all"},
        "classes": {cls: {split: values.get(f"se_{split}") for split in SPLITS if split != "all"}
                    for cls, values in scores.class_scores.items()}}
    if len(sets["seeds"]) < 2:
        return replace(scores, sample_sets=sets)
    classes = {cls: {**values, **{f"se_{split}": summary["class_std"][cls][split] for split in SPLITS}}
               for cls, values in scores.class_scores.items()}
    return replace(scores, class_scores=classes, sample_sets={**sets, "interval": "sample sets"},
                   **{f"score_{split}_se": sets[f"{split}_std"] for split in SPLITS})


def standard_deviation(values: list[float]) -> float:
    """The sample standard deviation (n - 1); 0 for one value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def spread(name: str, scores: list[float]) -> dict[str, Any]:
    """{name: scores, name_mean, name_std} over the sample sets."""
    return {name: [float(v) for v in scores], f"{name}_mean": float(np.mean(scores)),
            f"{name}_std": standard_deviation(scores)}


def score_fields(report: dict[str, Any]) -> ScoreFields:
    """The database columns of a scorer's report (`ScoreReport.model_dump(mode="json")`)."""
    classes = report["classes"]
    return ScoreFields(
        score_public=float(report["score_public"]), score_private=float(report["score_private"]),
        score_all=float(report["score_all"]), penalized=any(c["penalized"] for c in classes.values()),
        class_scores=classes, timings=report.get("timings", {}), device=str(report.get("device", "")),
        precision=str(report.get("precision", "")), scorer_version=str(report.get("scorer_version", "")),
        weights_sha256=str(report.get("weights_sha256", "")),
        **{f"score_{split}_se": report.get(f"se_{split}") for split in ("public", "private", "all")},
    )
