"""A score as the scorer reports it, the server stores it and every reader shows it: one set of types.

    ScoreReport (scorer) --.result()--> SubmissionResult (the submission's columns) --.seen_by(viewer)--> ResultView
    (API schema, pages, CSV)

It lives beside the zip spec because the report is part of what server and client exchange: the server (scorer,
queue, API, pages) and the upload client read the same names, splits, interval and `±` rule from here, and this
package imports nothing from the server.

Splits: `public` ranks the public board, `private` the private board after the reveal, `all` (public + private) is
an organizer figure no board ranks. Every FID and standard error is read through `fid(split)` / `se(split)`, never
by building a key.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

from pydantic import BaseModel, Field

Split = Literal["public", "private", "all"]
SPLITS: tuple[Split, ...] = ("public", "private", "all")
# The splits a leaderboard ranks (public now, private after the reveal): the only ones whose interval is shown, so
# the only ones the scorer half-samples.
RANKED_SPLITS: tuple[Split, ...] = ("public", "private")
# What a team may not see before the reveal: the private split, and "all", which mixes it in.
PRIVATE_SPLITS: tuple[Split, ...] = ("private", "all")
Z_95 = NormalDist().inv_cdf(0.975)  # a 95% interval is the score +- Z_95 standard errors
Neighbours = Literal["train", "any"]  # nearest among the training images, or among all real images (test included)


def interval_95(score: float | None, se: float | None) -> tuple[float, float] | None:
    """(low, high) of the 95% interval (score +- Z_95 se); None when either is unknown."""
    if score is None or se is None:
        return None
    return score - Z_95 * se, score + Z_95 * se


def plus_minus(value: float, se: float | None, decimals: int = 3) -> str:
    """`123.456 ± 4.321`: a score with the half-width of its 95% interval, or the plain score without one."""
    if se is None:
        return f"{value:.{decimals}f}"
    return f"{value:.{decimals}f} ± {Z_95 * se:.{decimals}f}"


def standard_deviation(values: list[float]) -> float:
    """The sample standard deviation (n - 1); 0 for one value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


class Neighbour(BaseModel):
    image: int = Field(description="Index of the generated image in its class (file name order).")
    split: str = Field(description="Where its nearest real image is: train, public or private.")
    file: str = Field(description="That real image, relative to the competition directory.")
    distance: float = Field(description="1 - |cos| between their Inception features.")


def _absent(value: object) -> bool:
    return value is None


class ClassResult(BaseModel):
    fid_public: float = Field(description="FID against the public test split, after the memorization penalty.")
    fid_private: float
    fid_all: float
    raw_fid_public: float = Field(description="FID before the memorization penalty.")
    raw_fid_private: float
    raw_fid_all: float
    memorization_distance: float = Field(description="Mean over images of min 1 - |cos| to train + test.")
    memorization_eps: float = Field(description="Threshold in force; below it the FIDs are divided by d.")
    penalized: bool
    n_images: int | None = None  # not in reports of scorer 1.0
    se_public: float | None = Field(None, description="Standard error of fid_public (95%: +- 1.96 se).")
    se_private: float | None = None
    # Only where measured: over a model's sample sets, and in reports of scorer 1.1 (1.2 half-samples the ranked
    # splits only). Left out of the stored row when unknown, as it always was.
    se_all: float | None = Field(None, exclude_if=_absent)
    diagnostics: dict[str, float] | None = Field(
        None, description="KID mean/std, precision, recall, density, coverage (k=5) against the public test images."
    )
    diagnosis: str | None = Field(None, description="One plain sentence that reads the diagnostics.")
    nearest_train: list[Neighbour] = Field(
        default_factory=list, description="Generated images closest to a training image (shown to the team)."
    )
    nearest_any: list[Neighbour] = Field(
        default_factory=list, description="Generated images closest to any real image, test included (organizers)."
    )

    def fid(self, split: Split) -> float:
        return float(getattr(self, f"fid_{split}"))

    def raw_fid(self, split: Split) -> float:
        return float(getattr(self, f"raw_fid_{split}"))

    def se(self, split: Split) -> float | None:
        return getattr(self, f"se_{split}")

    def with_errors(self, errors: Mapping[Split, float]) -> ClassResult:
        """These scores with other standard errors (a model's: measured over its sample sets)."""
        return self.model_copy(update={f"se_{split}": se for split, se in errors.items()})

    def nearest(self, which: Neighbours) -> list[Neighbour]:
        return self.nearest_train if which == "train" else self.nearest_any


class ScoreReport(BaseModel):
    """The scorer's report on one set of images (`arena score --json` prints it)."""

    classes: dict[str, ClassResult]
    score_public: float
    score_private: float
    score_all: float
    se_public: float | None = Field(None, description="Standard error of score_public (half-sampling).")
    se_private: float | None = None
    timings: dict[str, float] = Field(
        description="Seconds: decode, features, distance, memorization, uncertainty, diagnostics, total."
    )
    device: str
    precision: str
    engine: str = Field("torch", description="Feature engine: torch or onnxruntime (reports before it: torch).")
    weights_sha256: str
    scorer_version: str

    def score(self, split: Split) -> float:
        return float(getattr(self, f"score_{split}"))

    def se(self, split: Split) -> float | None:
        return getattr(self, f"se_{split}", None)  # no total's error for "all": no board ranks it

    def result(self) -> SubmissionResult:
        """What a submission scored on these images stores."""
        return SubmissionResult(
            score_public=self.score_public, score_private=self.score_private, score_all=self.score_all,
            score_public_se=self.se_public, score_private_se=self.se_private,
            penalized=any(c.penalized for c in self.classes.values()), class_scores=self.classes,
            timings=self.timings, device=self.device, precision=self.precision, scorer_version=self.scorer_version,
            weights_sha256=self.weights_sha256)


class EstimatedSe(BaseModel):
    """What the half-sampling estimator said for a model's first sample set, kept beside the sets' measured spread:
    every model submission is a calibration sample of the estimator (server/scoring/uncertainty.py)."""

    public: float | None = None
    private: float | None = None
    classes: dict[str, dict[str, float | None]] = Field(default_factory=dict)


class SampleSets(BaseModel):
    """A model submission's scores over fresh sample sets (seeds seed, seed + 1, ...): the measured spread of its
    score. Stored flat (`public`, `public_mean`, `public_std`, ...) as it always was."""

    method: str = "fresh sample sets"
    seeds: list[int]
    public: list[float]
    public_mean: float
    public_std: float
    private: list[float]
    private_mean: float
    private_std: float
    all: list[float]
    all_mean: float
    all_std: float
    estimated_se: EstimatedSe | None = Field(None, exclude_if=_absent)
    # Each class's standard deviation per split: it becomes the class's standard errors (`with_sample_sets`), so it
    # is not stored here.
    class_std: dict[str, dict[Split, float]] = Field(default_factory=dict, exclude=True)
    # "sample sets" once there are two or more: the submission's standard errors are then the sets' spread.
    interval: Literal["sample sets"] | None = Field(None, exclude_if=_absent)

    @classmethod
    def of_reports(cls, reports: list[ScoreReport], *, seeds: list[int]) -> SampleSets:
        """Each split's total over the sets with its mean and standard deviation, and each class's deviation."""
        spreads: dict[str, Any] = {}
        for split in SPLITS:
            scores = [r.score(split) for r in reports]
            spreads |= {split: scores, f"{split}_mean": statistics.fmean(scores),
                        f"{split}_std": standard_deviation(scores)}
        class_std = {cls: {split: standard_deviation([r.classes[cls].fid(split) for r in reports]) for split in SPLITS}
                     for cls in reports[0].classes}
        return cls(seeds=seeds, class_std=class_std, **spreads)

    def std(self, split: Split) -> float:
        return float(getattr(self, f"{split}_std"))

    def scores(self, split: Split) -> list[float]:
        return list(getattr(self, split))

    @property
    def measured(self) -> bool:
        """Whether there was a spread to measure (two sets or more)."""
        return len(self.seeds) > 1

    @property
    def interval_sets(self) -> int | None:
        """How many sets the submission's standard errors were measured over; None when they come from the
        half-sampling over the images (a model sampled once, or one scored before sample sets existed)."""
        return len(self.seeds) if self.interval == "sample sets" else None


class SubmissionResult(BaseModel):
    """A scored submission's result; its fields are the submission's columns (`columns()`, and back through
    `Submission.result`). Rows of every scorer version read back (missing standard errors are None)."""

    score_public: float
    score_private: float
    score_all: float
    score_public_se: float | None = None
    score_private_se: float | None = None
    score_all_se: float | None = None
    penalized: bool
    class_scores: dict[str, ClassResult]
    timings: dict[str, Any] = Field(default_factory=dict)
    device: str = ""
    precision: str = ""
    scorer_version: str = ""
    weights_sha256: str = ""
    sample_sets: SampleSets | None = None  # model submissions only

    def score(self, split: Split) -> float:
        return float(getattr(self, f"score_{split}"))

    def se(self, split: Split) -> float | None:
        return getattr(self, f"score_{split}_se")

    def columns(self) -> dict[str, Any]:
        """The database columns (JSON columns as plain dicts)."""
        return {name: getattr(self, name) for name in type(self).model_fields} | self.model_dump(
            mode="json", include={"class_scores", "sample_sets"})

    @property
    def interval_sets(self) -> int | None:
        """How many sample sets the standard errors were measured over; None for an image submission's
        half-sampling."""
        return self.sample_sets.interval_sets if self.sample_sets is not None else None

    @property
    def interval_label(self) -> str | None:
        """What the ± was computed over, in words; None without one."""
        if self.score_public_se is None:
            return None
        return interval_label(self.interval_sets)

    def with_sample_sets(self, sets: SampleSets) -> SubmissionResult:
        """A model submission's result: the score stays the first set's (the kept images: grids, per-class table,
        memorization evidence and rescoring all describe that set), its standard errors become the standard
        deviation of the score over the sample sets: how far one set's score moves when the model is sampled
        again, the very quantity the half-sampling estimates for an image submission, so the boards' tie rule
        compares like with like. With one set there is no spread to measure and the half-sampling stays.
        `estimated_se` keeps what the half-sampling said for set 1, per split and class."""
        estimated = EstimatedSe(
            **{split: self.se(split) for split in RANKED_SPLITS},
            classes={cls: {split: c.se(split) for split in RANKED_SPLITS} for cls, c in self.class_scores.items()})
        sets = sets.model_copy(update={"estimated_se": estimated})
        if not sets.measured:
            return self.model_copy(update={"sample_sets": sets})
        classes = {cls: c.with_errors(sets.class_std[cls]) for cls, c in self.class_scores.items()}
        return self.model_copy(update={
            "class_scores": classes, "sample_sets": sets.model_copy(update={"interval": "sample sets"}),
            **{f"score_{split}_se": sets.std(split) for split in SPLITS}})

    def seen_by(self, viewer: Viewer) -> ResultView:
        return ResultView(self, viewer)


def interval_label(sets: int | None) -> str:
    """What a ± was computed over, in words."""
    return "half-sampling over the images" if sets is None else f"over {sets} sample sets"


@dataclass(frozen=True)
class Viewer:
    """Who looks at a submission the server lets them see (its own team, or an organizer; a team never sees
    another's): organizers see everything, teams the private split only after the reveal and the nearest real
    images only among the training images (the test images are the secret)."""

    organizer: bool
    private_revealed: bool

    @property
    def sees_private(self) -> bool:
        return self.organizer or self.private_revealed

    def sees_neighbours(self, which: Neighbours) -> bool:
        return which == "train" or self.organizer

    def sees_real_image(self, neighbour: Neighbour) -> bool:
        return neighbour.split == "train" or self.organizer


# Per-class values that reveal the private split; hidden from teams until the reveal.
PRIVATE_CLASS_FIELDS = frozenset(f"{prefix}_{split}" for prefix in ("fid", "raw_fid", "se")
                                 for split in PRIVATE_SPLITS)


@dataclass(frozen=True)
class ResultView:
    """A result as one viewer may see it: the one visibility rule of the API, the pages and the evidence images."""

    result: SubmissionResult
    viewer: Viewer

    def score(self, split: Split) -> float | None:
        return self.result.score(split) if split == "public" or self.viewer.sees_private else None

    def se(self, split: Split) -> float | None:
        return self.result.se(split) if split == "public" or self.viewer.sees_private else None

    def class_scores(self) -> dict[str, dict[str, Any]]:
        """Per class, the stored values this viewer may see."""
        hidden = set() if self.viewer.sees_private else set(PRIVATE_CLASS_FIELDS)
        hidden |= set() if self.viewer.sees_neighbours("any") else {"nearest_any"}
        return {cls: c.model_dump(mode="json", exclude=hidden, exclude_unset=True)
                for cls, c in self.result.class_scores.items()}

    def sample_sets(self) -> dict[str, Any] | None:
        if self.result.sample_sets is None:
            return None
        sets = self.result.sample_sets.model_dump(mode="json")
        if self.viewer.sees_private:
            return sets
        return {k: v for k, v in sets.items() if not k.startswith(PRIVATE_SPLITS)}

    def evidence(self, classes: list[str]) -> dict[str, list[tuple[Neighbours, int, Neighbour]]]:
        """Per class, the memorization evidence shown: (which, position, neighbour) for penalized classes, and for
        every class on an organizer's view."""
        evidence = {}
        for cls in classes:
            scores = self.result.class_scores.get(cls)
            if scores is None or not (scores.penalized or self.viewer.organizer):
                continue
            shown: tuple[Neighbours, ...] = ("train", "any") if self.viewer.sees_neighbours("any") else ("train",)
            rows = [(which, i, n) for which in shown for i, n in enumerate(scores.nearest(which))]
            if rows:
                evidence[cls] = rows
        return evidence

    def neighbour(self, cls: str, which: Neighbours, position: int) -> Neighbour | None:
        """One evidence pair the viewer may see; None where there is none (PermissionError where it is hidden)."""
        if not self.viewer.sees_neighbours(which):
            raise PermissionError("Nearest held-out test images are shown to organizers only.")
        scores = self.result.class_scores.get(cls)
        listed = scores.nearest(which) if scores is not None else []
        return listed[position] if 0 <= position < len(listed) else None


# -- the score table (`arena submit`, `arena status`, `arena score`) -------------------------------------------------
# It reads a result as JSON, as the API's SubmissionPublic (`class_scores`, `score_<split>_se`) or a ScoreReport dump
# (`classes`, `se_<split>`); a value the viewer may not see yet is absent or null and shows as "hidden".


def _class_scores(submission: Mapping[str, Any]) -> Mapping[str, Any] | None:
    scores = submission.get("class_scores") or submission.get("classes")
    return scores if isinstance(scores, Mapping) and scores else None


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "hidden" if value is None else str(value)


def _with_interval(value: Any, se: Any) -> str:
    if isinstance(value, int | float) and isinstance(se, int | float):
        return plus_minus(value, se)
    return _number(value)


def _total_se(submission: Mapping[str, Any], split: Split) -> Any:
    se = submission.get(f"score_{split}_se")
    return submission.get(f"se_{split}") if se is None else se


INTERVAL_NOTE = "± is the half-width of a 95% interval: how far the score may move on a fresh sample of your generator."


def score_table(submission: Mapping[str, Any], splits: tuple[Split, ...] = RANKED_SPLITS, *,
                title: str | None = None, interval_note: str = INTERVAL_NOTE) -> str:
    """Per-class FID with its 95% interval per split, memorization distance and the totals, under `title` (by
    default the submission's id and status); `interval_note` says what the ± is over."""
    title = title or f"Submission {submission.get('id', '?')}: {submission.get('status', '?')}"
    classes = _class_scores(submission)
    if classes is None:
        reason = submission.get("error") or ""
        return title + (f" ({reason})" if reason else "")
    rows: list[tuple[str, ...]] = [("class", *(f"FID {split}" for split in splits), "memorization d", "eps",
                                    "penalized")]
    for cls, score in classes.items():
        rows.append((cls, *(_class_cell(score, split) for split in splits),
                     _number(score.get("memorization_distance")), _number(score.get("memorization_eps")),
                     "YES" if score.get("penalized") else "no"))
    penalized = any(score.get("penalized") for score in classes.values())
    rows.append(("total", *(_total_cell(submission, classes, split, penalized) for split in splits), "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    note = "\n" + interval_note
    has_interval = any("±" in cell for row in rows for cell in row)
    if penalized:
        note = (note if has_interval else "") + PENALIZED_NOTE
    return f"{title}\n" + "\n".join(lines) + (note if has_interval or penalized else "")


PENALIZED_NOTE = ("\npenalized: the images are too close to real ones (memorization distance d < eps), so the FID was "
                  "divided by d and the entry ranks below every unpenalized one; the raw FID is shown, the exact "
                  "penalized numbers are in --json.")


def _class_cell(score: Mapping[str, Any], split: Split) -> str:
    """A class's FID with its interval; a penalized one as the word and its raw FID (the product is up to 10^15x)."""
    if score.get(f"fid_{split}") is None or not score.get("penalized"):
        return _with_interval(score.get(f"fid_{split}"), score.get(f"se_{split}"))
    raw = score.get(f"raw_fid_{split}")
    return f"penalized (raw {raw:.3f})" if isinstance(raw, int | float) else "penalized"


def _total_cell(submission: Mapping[str, Any], classes: Mapping[str, Any], split: Split, penalized: bool) -> str:
    if submission.get(f"score_{split}") is None or not penalized:
        return _with_interval(submission.get(f"score_{split}"), _total_se(submission, split))
    raw = [score.get(f"raw_fid_{split}") for score in classes.values()]
    if all(isinstance(value, int | float) for value in raw):
        return f"penalized (raw {sum(raw):.3f})"
    return "penalized"
