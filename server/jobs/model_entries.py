"""A model submission's side of scoring: its sampling seeds and the images sampled from it.

An uploaded ONNX generator is sampled in a capped child process (submissions/sampling.py) with seeds derived from
its file hash under the server's secret salt; set 1's images are kept (`storage.sampled_zip_path`) and scored like
an uploaded zip, and `model_sample_sets - 1` more sets are sampled and scored for the spread of the score
(`score_sample_sets`). No database here: the job loop (worker.py) and `arena score` (cli/scoring.py) both call it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from server.config import Settings
from server.uploads.rules import MODEL_FAILED
from submissions.results import SampleSets, ScoreReport

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.scoring import Scorer
    from submissions import SubmissionSpec

log = logging.getLogger("arena.worker")



class ModelFailed(Exception):
    """A submitted model could not be sampled (hang, crash, memory, NaN, wrong shape): the team's fault, so the
    submission fails at once, without retries, and gives its quota back."""


def sample_images(model: Path, spec: SubmissionSpec, settings: Settings, *, device: str, seed: int, tag: str = "",
                  cancelled: threading.Event | None = None) -> dict[str, np.ndarray]:
    """images_per_class images per class from an ONNX model, in a capped child process on `device` (CUDA when
    onnxruntime offers it, else the CPU, saying why); ModelFailed otherwise. A job `tag` first stops any other copy
    of that job on this host; `cancelled` stops this one."""
    import onnxruntime

    from submissions.model import validate_model
    from submissions.orphans import stop_copies
    from submissions.report import SubmissionInvalid
    from submissions.sampling import SamplingFailed, SamplingJob, choose_providers, sample_model

    providers, fallback = choose_providers(device, onnxruntime.get_available_providers(),
                                           gpu_memory_bytes=settings.model_gpu_memory_bytes)
    if fallback:
        log.warning("model sampling: %s", fallback)
    try:
        info = validate_model(model, spec, dry_run=False)  # the class order and latent size; rules may have changed
        job = SamplingJob(model=str(model), labels=[info.label_of(c) for c in spec.classes],
                          per_class=spec.images_per_class, latent_size=info.latent_size, image_size=spec.image_size,
                          seed=seed, threads=settings.model_sampling_threads, providers=providers, tag=tag)
        stop_copies(tag)
        images = sample_model(job, memory_bytes=settings.model_memory_bytes,
                              time_limit_s=settings.model_sampling_seconds, cancelled=cancelled)
    except SamplingFailed as exc:
        raise ModelFailed(f"{MODEL_FAILED} ({exc.kind}): {exc}") from exc
    except SubmissionInvalid as exc:
        raise ModelFailed(f"{MODEL_FAILED} (invalid): the model no longer passes validation: {exc}") from exc
    return dict(zip(spec.classes, images, strict=True))


def score_sample_sets(model: Path, spec: SubmissionSpec, settings: Settings, scorer: Scorer, competition: Any, *,
                      seed: int, first: ScoreReport, stage: Callable[[str], None] = lambda _: None, tag: str = "",
                      cancelled: threading.Event | None = None) -> SampleSets:
    """Score model_sample_sets - 1 more image sets (seeds seed + 1, ...) after the first: the spread of the model's
    score measured over fresh samples, not estimated by a half-sampling of one set. The extra images are dropped.
    `stage` hears which set and step it is on (the status box shows it)."""
    reports = [first]
    total = settings.model_sample_sets
    for offset in range(1, total):
        stage(f"sample set {offset + 1} of {total}: sampling the model")
        images = sample_images(model, spec, settings, device=str(scorer.device), seed=seed + offset, tag=tag,
                               cancelled=cancelled)
        stage(f"sample set {offset + 1} of {total}: scoring")
        reports.append(scorer.score(competition, images))
    return SampleSets.of_reports(reports, seeds=[seed + k for k in range(len(reports))])

