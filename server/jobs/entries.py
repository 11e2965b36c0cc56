"""Scoring one claimed entry, with no database: `score_entry` takes what the claim says (`EntryJob`) and returns
the result to store and the images to show (`ScoredEntry`). The job loop (worker.py) records them in the database;
a worker elsewhere calls the same function and sends them back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from server.competition_dir import Competition
from server.config import Settings
from server.db import SubmissionKind
from server.jobs.model_entries import sample_images, score_sample_sets
from server.storage import grid_path, sampled_zip_path, write_evidence_images, write_sample_grid
from submissions.results import ScoreReport, SubmissionResult

if TYPE_CHECKING:
    from server.scoring import Scorer
    from submissions import SubmissionSpec


@dataclass(frozen=True)
class EntryJob:
    """A claimed submission's inputs: its kind, the stored file (a zip of images or an ONNX model) and its hash
    (the cache of a model's sampled images is named by it), the competition it is scored in, and for a model the
    seed of its first sample set, which the server computes under its secret salt: a remote worker is sent it."""

    kind: str  # SubmissionKind
    path: Path
    sha256: str
    competition: Competition
    seed: int | None = None  # a model's first sample set's seed (sampling_seeds.submission_seed): the server's

    def first_seed(self) -> int:
        if self.seed is None:
            raise ValueError(f"model submission {self.sha256[:12]}: its claim carries no sampling seed")
        return self.seed


@dataclass(frozen=True)
class ScoredEntry:
    """What scoring found: the result to store, set 1's images by class (the sample grids) and the report whose
    nearest neighbours are the memorization evidence."""

    result: SubmissionResult
    images: dict[str, np.ndarray]
    report: ScoreReport


def score_entry(job: EntryJob, *, scorer: Scorer, settings: Settings, stage: Callable[[str], None] = lambda _: None,
                tag: str = "", cancelled: threading.Event | None = None) -> ScoredEntry:
    """Score an entry with this worker's scorer: a zip's images, or a model's sample sets (set 1 kept and scored,
    the others only for the spread). `stage` hears which step a model is on; `tag` names the job on this host's
    process list (`orphans.stop_copies`); `cancelled` stops a model's sampling. Raises model_entries.ModelFailed
    when a model cannot be sampled."""
    from submissions import SubmissionSpec, validate_zip

    spec = SubmissionSpec.from_competition(job.competition.config, **settings.zip_limits)
    sets = settings.model_sample_sets
    is_model = job.kind == SubmissionKind.model
    if is_model:
        stage(f"sample set 1 of {sets}: sampling the model")
    decoded = validate_zip(images_zip(job, spec, settings, device=str(scorer.device), tag=tag, cancelled=cancelled),
                           spec)
    if is_model:
        stage(f"sample set 1 of {sets}: scoring")
    report = scorer.score(job.competition, decoded.images)
    result = report.result()
    if is_model:
        spread = score_sample_sets(job.path, spec, settings, scorer, job.competition,
                                   seed=job.first_seed(), first=report, stage=stage, tag=tag,
                                   cancelled=cancelled)
        result = result.with_sample_sets(spread)
    return ScoredEntry(result=result, images=decoded.images, report=report)


def images_zip(job: EntryJob, spec: SubmissionSpec, settings: Settings, *, device: str, tag: str = "",
               cancelled: threading.Event | None = None) -> Path:
    """The zip to score: the upload itself, or the images sampled from an uploaded model (sampled once and kept,
    so grids, rescoring and the memorization check see the same images)."""
    if job.kind != SubmissionKind.model:
        return job.path
    sampled = sampled_zip_path(settings.data_dir, job.sha256)
    if not sampled.exists():
        from submissions import pack

        images = sample_images(job.path, spec, settings, device=device, seed=job.first_seed(),
                               tag=tag, cancelled=cancelled)
        pack(images, sampled, spec)  # atomic: a crash mid-write never leaves a half zip under the final name
    return sampled


def write_entry_images(data_dir: Path, submission_id: int, entry: ScoredEntry) -> None:
    """The pages' sample grid per class and the memorization evidence (each class's nearest training images)."""
    for cls, images in entry.images.items():
        write_sample_grid(grid_path(data_dir, submission_id, cls), images)
        closest = entry.report.classes[cls].nearest_train + entry.report.classes[cls].nearest_any
        write_evidence_images(data_dir, submission_id, cls, images, [n.image for n in closest])
