"""Scorer: one loaded network, cached references per competition, a typed report per submission."""

from __future__ import annotations

import threading
import time

import numpy as np

from server.competition_dir import Competition
from server.scoring.diagnostics import describe, diagnostics
from server.scoring.features import FeatureExtractor
from server.scoring.frechet import ReferenceStats, frechet_distance_to_reference
from server.scoring.memorization import nearest_neighbours, normalized, penalize
from server.scoring.references import ClassReferences, References, load_or_build_references
from server.scoring.uncertainty import (
    REPLICATES,
    frechet_replicates,
    half_sample_counts,
    interval_of,
    penalized_replicates,
    reference_factor,
    seed_of,
)
from submissions.results import RANKED_SPLITS, SPLITS, ClassResult, Neighbour, ScoreReport, Split

SCORER_VERSION = "1.3.0"  # 1.1: bootstrap standard errors, diagnostics, evidence; 1.2: no interval for "all";
# 1.3: standard errors by half-sampling (calibrated on real faces, docs/BENCHMARKS.md); near-duplicate share in
#      the diagnostics, the diagnosis leads with a memorization penalty
EVIDENCE_IMAGES = 4  # generated images shown next to their nearest real image


class Scorer:
    """Scores submissions for any number of competitions with one InceptionV3 loaded once (lazily).

    Settings arrive with the extractor (`Scorer(FeatureExtractor(device="cpu"))`; the worker and the CLI pass
    theirs); the library reads no global configuration.
    """

    def __init__(self, extractor: FeatureExtractor | None = None):
        self.extractor = extractor or FeatureExtractor()
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
        timings = {"references": time.perf_counter() - started} | dict.fromkeys(
            ("distance", "memorization", "uncertainty", "diagnostics"), 0.0
        )
        before = dict(self.extractor.timings)
        classes = {}
        for cls in competition.classes:
            features = self.extractor.features_of_arrays(images[cls], progress, cls)
            classes[cls] = self._class_score(
                competition, references, cls, features, images[cls], timings
            )
        timings |= {name: self.extractor.timings[name] - before[name] for name in ("decode", "features")}
        timings["total"] = time.perf_counter() - started
        totals = {split: sum(c.fid(split) for c in classes.values()) for split in SPLITS}
        errors = {split: _total_se(classes, split) for split in RANKED_SPLITS}
        return ScoreReport(
            classes=classes,
            score_public=totals["public"], score_private=totals["private"], score_all=totals["all"],
            se_public=errors["public"], se_private=errors["private"],
            timings=timings,
            device=self.device,
            precision=self.extractor.precision,
            engine=self.extractor.engine,
            weights_sha256=self.extractor.weights_sha256,
            scorer_version=SCORER_VERSION,
        )

    def _class_score(
        self,
        competition: Competition,
        references: References,
        cls: str,
        features: np.ndarray,
        images: np.ndarray,
        timings: dict,
    ) -> ClassResult:
        """The class's scores, with the standard errors of its penalized FID per ranked split."""
        refs = references.classes[cls]
        started = time.perf_counter()
        raw = {split: frechet_distance_to_reference(refs.stats[split], features, self.device) for split in SPLITS}
        timings["distance"] += time.perf_counter() - started
        started = time.perf_counter()
        queries = normalized(features)
        nearest, rows = nearest_neighbours(queries, refs.memory, self.device)
        nearest_train, train_rows = nearest_neighbours(queries, refs.memory[: refs.train_count], self.device)
        distance = float(nearest.mean())
        timings["memorization"] += time.perf_counter() - started
        eps = references.eps(competition, cls)
        final = {split: penalize(value, distance, eps) for split, value in raw.items()}
        started = time.perf_counter()
        replicates = self._replicates(refs, features, images, cls, nearest, eps)
        timings["uncertainty"] += time.perf_counter() - started
        started = time.perf_counter()
        diagnosis = diagnostics(refs.test_features["public"], features, images, seed_of(images, cls), self.device)
        timings["diagnostics"] += time.perf_counter() - started
        fids = {split: final[split][0] for split in SPLITS}
        errors = {split: interval_of(fids[split], replicates[split], len(features)).se for split in RANKED_SPLITS}
        return ClassResult(
            fid_public=fids["public"], fid_private=fids["private"], fid_all=fids["all"],
            raw_fid_public=raw["public"], raw_fid_private=raw["private"], raw_fid_all=raw["all"],
            memorization_distance=distance,
            memorization_eps=eps,
            penalized=final["all"][1],
            n_images=len(features),
            se_public=errors["public"], se_private=errors["private"],
            diagnostics=diagnosis.as_dict(),
            diagnosis=describe(diagnosis.as_dict(), (distance, eps)),
            nearest_train=_closest(competition, cls, refs, nearest_train, train_rows),
            nearest_any=_closest(competition, cls, refs, nearest, rows),
        )

    def _replicates(
        self, refs: ClassReferences, features: np.ndarray, images: np.ndarray, cls: str, nearest: np.ndarray,
        eps: float,
    ) -> dict[Split, np.ndarray]:
        """Penalized FID of REPLICATES half-samples of the generated images (one draw shared by the ranked splits)."""
        counts = half_sample_counts(len(features), REPLICATES, seed_of(images, cls))
        out = {}
        for split in RANKED_SPLITS:
            factor = reference_factor(refs.stats[split], refs.test_features[split])
            raw = frechet_replicates(refs.stats[split], factor, features, counts, self.device)
            out[split] = penalized_replicates(raw, nearest, counts, eps)
        return out


def _total_se(classes: dict[str, ClassResult], split: Split) -> float:
    """Classes are sampled independently: the total's variance is the sum of the classes' variances."""
    return float(np.sqrt(sum(se**2 for c in classes.values() if (se := c.se(split)) is not None)))


def _closest(
    competition: Competition, cls: str, refs: ClassReferences, distances: np.ndarray, rows: np.ndarray
) -> list[Neighbour]:
    """The EVIDENCE_IMAGES generated images nearest to a real one, each with that real image and the distance."""
    order = np.argsort(distances, kind="stable")[:EVIDENCE_IMAGES]
    neighbours = []
    for image in order:
        split, file = refs.memory_file(competition, cls, int(rows[image]))
        neighbours.append(Neighbour(image=int(image), split=split, file=file, distance=float(distances[image])))
    return neighbours


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
