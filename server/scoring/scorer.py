"""Scorer: one loaded network, cached references per competition, a typed report per submission."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from server.competition import Competition
from server.scoring.features import Device, FeatureExtractor, Precision
from server.scoring.frechet import ReferenceStats, frechet_distance_to_reference
from server.scoring.memorization import memorization_distance, penalize
from server.scoring.onnx_engine import Engine
from server.scoring.references import SPLITS, References, load_or_build_references

SCORER_VERSION = "1.0.0"


class ClassScore(BaseModel):
    fid_public: float = Field(description="FID against the public test split, after the memorization penalty.")
    fid_private: float
    fid_all: float
    raw_fid_public: float = Field(description="FID before the memorization penalty.")
    raw_fid_private: float
    raw_fid_all: float
    memorization_distance: float = Field(description="Mean over images of min 1 - |cos| to train + test.")
    memorization_eps: float = Field(description="Threshold in force; below it the FIDs are divided by d.")
    penalized: bool
    n_images: int


class ScoreReport(BaseModel):
    classes: dict[str, ClassScore]
    score_public: float
    score_private: float
    score_all: float
    timings: dict[str, float] = Field(description="Seconds: decode, features, distance, memorization, total.")
    device: str
    precision: str
    engine: str = Field("torch", description="Feature engine: torch or onnxruntime (reports before it: torch).")
    weights_sha256: str
    scorer_version: str = SCORER_VERSION


class Scorer:
    """Scores submissions for any number of competitions with one InceptionV3 loaded once (lazily).

    Settings arrive as arguments (the worker and the CLI pass theirs); the library reads no global configuration.
    """

    def __init__(
        self,
        device: Device = "auto",
        precision: Precision = "exact",
        weights_path: str | Path | None = None,
        *,
        batch_size: int | None = None,
        decode_threads: int | None = None,
        allow_download: bool = True,
        engine: Engine = "auto",
    ):
        self.extractor = FeatureExtractor(
            device=device,
            precision=precision,
            weights_path=weights_path,
            batch_size=batch_size,
            decode_threads=decode_threads,
            allow_download=allow_download,
            engine=engine,
        )
        self._references: dict[tuple[str, str], References] = {}
        # One scoring at a time per Scorer: the server's start-up prepare() and its worker thread share it, and
        # the precision flags are process-wide.
        self._lock = threading.RLock()

    @property
    def device(self) -> str:
        return self.extractor.device

    def prepare(self, competition: Competition, progress: bool = True) -> References:
        """Load the competition's reference cache, building it (with a progress bar) when missing or stale."""
        key = (str(competition.root.resolve()), competition.manifest.dataset_hash)
        with self._lock:
            if key not in self._references:
                self._references[key] = load_or_build_references(competition, self.extractor, progress)
            return self._references[key]

    def score(self, competition: Competition, images: dict[str, np.ndarray], progress: bool = False) -> ScoreReport:
        """Per-class FID (public, private, all) with the MiFID penalty; totals are sums over classes."""
        with self._lock:
            return self._score(competition, images, progress)

    def _score(self, competition: Competition, images: dict[str, np.ndarray], progress: bool) -> ScoreReport:
        started = time.perf_counter()
        check_images(competition, images)
        references = self.prepare(competition, progress)
        timings = {"references": time.perf_counter() - started, "distance": 0.0, "memorization": 0.0}
        before = dict(self.extractor.timings)
        classes = {}
        for cls in competition.classes:
            features = self.extractor.features_of_arrays(images[cls], progress, cls)
            classes[cls] = self._class_score(competition, references, cls, features, timings)
        timings |= {name: self.extractor.timings[name] - before[name] for name in ("decode", "features")}
        timings["total"] = time.perf_counter() - started
        return ScoreReport(
            classes=classes,
            **{f"score_{split}": sum(getattr(c, f"fid_{split}") for c in classes.values()) for split in SPLITS},
            timings=timings,
            device=self.device,
            precision=self.extractor.precision,
            engine=self.extractor.engine,
            weights_sha256=self.extractor.weights_sha256,
        )

    def _class_score(
        self, competition: Competition, references: References, cls: str, features: np.ndarray, timings: dict
    ) -> ClassScore:
        refs = references.classes[cls]
        started = time.perf_counter()
        raw = {split: frechet_distance_to_reference(refs.stats[split], features, self.device) for split in SPLITS}
        timings["distance"] += time.perf_counter() - started
        started = time.perf_counter()
        distance = memorization_distance(features, refs.memory, self.device)
        timings["memorization"] += time.perf_counter() - started
        eps = references.eps(competition, cls)
        final = {split: penalize(value, distance, eps) for split, value in raw.items()}
        return ClassScore(
            **{f"fid_{split}": final[split][0] for split in SPLITS},
            **{f"raw_fid_{split}": raw[split] for split in SPLITS},
            memorization_distance=distance,
            memorization_eps=eps,
            penalized=final["all"][1],
            n_images=len(features),
        )


def check_images(competition: Competition, images: dict[str, np.ndarray]) -> None:
    """The engine's own guard (the submissions package validates uploads in full before they get here)."""
    if set(images) != set(competition.classes):
        raise ValueError(f"images must have exactly the classes {competition.classes}, got {sorted(images)}")
    for cls, array in images.items():
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or len(array) < 2:
            shape = getattr(array, "shape", None)
            raise ValueError(f"class {cls!r}: expected at least 2 uint8 grayscale images (N, H, W), got {shape}")


def fid_of_images(
    reference: np.ndarray | ReferenceStats, generated: np.ndarray, extractor: FeatureExtractor | None = None
) -> float:
    """FID of uint8 images (N, H, W) against real images (or their precomputed ReferenceStats).

    For periodic evaluation (baselines): build `ReferenceStats.of_features(extractor.features_of_arrays(real))`
    once and pass it, so only the generated images go through the network each time.
    """
    extractor = extractor or FeatureExtractor()
    if not isinstance(reference, ReferenceStats):
        reference = ReferenceStats.of_features(extractor.features_of_arrays(reference), extractor.device)
    return frechet_distance_to_reference(reference, extractor.features_of_arrays(generated), extractor.device)
