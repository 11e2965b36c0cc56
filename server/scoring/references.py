"""The per-competition reference cache: statistics of the held-out test images and the memorization set.

One `.npz` per competition and feature engine under `competition.references_dir`, plus a small JSON summary people
(and the web pages) can read without numpy. For every class: mu, sigma and sqrt(sigma) of the public, private and
whole test split; the L2-normalized pool3 features of train + test (the memorization set); the automatic MiFID eps; the
raw features of the public and private test images (float32, which is exact: the network computes in float32), which
the bootstrap interval and the diagnostics need. The cache is rebuilt only when its metadata
(`competition_dir.expected_reference_metadata`: dataset hash, weights sha256, feature engine, dims, counts,
preprocessing and contents versions) no longer matches, so references and submissions always go through the same
engine and older caches are rebuilt; one file per engine lets a GPU worker (torch) and a CPU worker (onnxruntime)
share a competition without rebuilding each other's cache. Writes go through a temporary file and a rename, so a
server and a worker building at the same time both end with a complete file. A remote worker builds with these same
functions in its cache directory and uploads the file (server/jobs/remote_builds.py checks it).
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.competition_dir import (
    Competition,
    CompetitionError,
    changed_metadata,
    eps_in_force,
    reference_cache_file,
    write_reference_summary,
)
from server.competition_dir import expected_reference_metadata as expected_metadata
from server.scoring.features import FeatureExtractor
from server.scoring.frechet import ReferenceStats
from server.scoring.memorization import auto_eps, normalized
from submissions.atomic import write_atomically
from submissions.results import SPLITS, Split

log = logging.getLogger(__name__)
# on_progress(class, part, images just done), part train|public|private: a worker reports a build to the console.
BuildProgress = Callable[[str, str, int], None]


@dataclass(frozen=True)
class ClassReferences:
    stats: dict[Split, ReferenceStats]
    memory: np.ndarray  # normalized float32 features of train + test
    auto_eps: float
    test_features: dict[Split, np.ndarray]  # raw features per split ("all" = public then private)
    train_count: int  # memory rows [0, train_count) are training images, the rest test images (public, private)

    def memory_file(self, competition: Competition, cls: str, row: int) -> tuple[str, str]:
        """(split, path relative to the competition root) of a row of the memorization set."""
        if row < self.train_count:
            return "train", _relative(competition, competition.train_files(cls)[row])
        public = competition.test_files(cls, "public")
        row -= self.train_count
        if row < len(public):
            return "public", _relative(competition, public[row])
        return "private", _relative(competition, competition.test_files(cls, "private")[row - len(public)])


def _relative(competition: Competition, path: Path) -> str:
    return path.relative_to(competition.root).as_posix()


@dataclass(frozen=True)
class References:
    metadata: dict
    classes: dict[str, ClassReferences]
    path: Path

    def eps(self, competition: Competition, cls: str) -> float:
        """The MiFID threshold in force (`eps_in_force`): the configured number, or the calibrated one for "auto"."""
        eps = eps_in_force(competition.config.memorization_eps, self.classes[cls].auto_eps)
        assert eps is not None  # built references always hold the calibrated value
        return eps


def cache_problem(competition: Competition, extractor: FeatureExtractor) -> str | None:
    """None when this engine's cache is current for these weights and images, else why it needs a build. Reads only
    the cache's metadata (not its ~400 MB of matrices), so a worker can check every competition at start-up."""
    metadata = expected_metadata(competition, extractor.weights_sha256, extractor.engine)
    path = competition.references_dir / reference_cache_file(extractor.engine)
    if not path.is_file():
        return f"no reference cache for the {extractor.engine} engine yet"
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = json.loads(str(archive["metadata"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        return f"the reference cache is unreadable ({exc})"
    changed = changed_metadata(stored, metadata)
    return f"the reference cache is stale ({', '.join(changed)} changed)" if changed else None


def load_references(path: Path, metadata: dict) -> References | None:
    """The cached references if the file exists, is readable and was built from the same inputs; else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = json.loads(str(archive["metadata"]))
            if stored != metadata:
                log.warning("reference cache %s is stale (%s changed); rebuilding", path,
                            ", ".join(changed_metadata(stored, metadata)))
                return None
            classes = {cls: _class_from_archive(archive, cls) for cls in metadata["counts"]}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("reference cache %s unreadable (%s); rebuilding", path, exc)
        return None
    return References(metadata=stored, classes=classes, path=path)


def _class_from_archive(archive, cls: str) -> ClassReferences:
    stats = {
        split: ReferenceStats(
            mu=archive[f"{cls}/{split}/mu"],
            sigma=archive[f"{cls}/{split}/sigma"],
            sqrt_sigma=archive[f"{cls}/{split}/sqrt_sigma"],
            count=int(archive[f"{cls}/{split}/count"]),
        )
        for split in SPLITS
    }
    return ClassReferences(
        stats=stats, memory=archive[f"{cls}/memory"], auto_eps=float(archive[f"{cls}/auto_eps"]),
        test_features=_test_features(archive[f"{cls}/test/public"], archive[f"{cls}/test/private"]),
        train_count=int(archive[f"{cls}/train_count"]),
    )


def _test_features(public: np.ndarray, private: np.ndarray) -> dict[Split, np.ndarray]:
    public, private = np.asarray(public, np.float64), np.asarray(private, np.float64)
    return {"public": public, "private": private, "all": np.concatenate([public, private])}


def build_references(
    competition: Competition, extractor: FeatureExtractor, metadata: dict, progress: bool = True,
    on_progress: BuildProgress | None = None,
) -> References:
    """Features of every train and test image, then statistics, square roots and the eps calibration."""
    classes = {cls: _build_class(competition, extractor, cls, progress, on_progress) for cls in competition.classes}
    path = competition.references_dir / reference_cache_file(extractor.engine)
    save_references(path, metadata, classes)
    return References(metadata=metadata, classes=classes, path=path)


def _build_class(competition: Competition, extractor: FeatureExtractor, cls: str, progress: bool,
                 on_progress: BuildProgress | None) -> ClassReferences:
    train_files = competition.train_files(cls)
    parts = {split: competition.test_files(cls, split) for split in ("public", "private")}
    if not train_files or any(len(files) < 2 for files in parts.values()):
        raise CompetitionError(
            f"{competition.root}: class {cls!r} needs training images and at least 2 public and 2 private test "
            "images for reference statistics; rerun `arena data prepare`"
        )

    def features(files: list[Path], part: str) -> np.ndarray:
        report = None if on_progress is None else (lambda images: on_progress(cls, part, images))
        return extractor.features_of_files(files, progress, f"{cls} {part}", on_batch=report)

    train = features(train_files, "train")
    public, private = features(parts["public"], "public"), features(parts["private"], "private")
    test = _test_features(public, private)
    device = extractor.device
    stats = {split: ReferenceStats.of_features(test[split], device) for split in SPLITS}
    train_n, test_n = normalized(train), normalized(test["all"])
    return ClassReferences(
        stats=stats, memory=np.concatenate([train_n, test_n]), auto_eps=auto_eps(test_n, train_n, device),
        test_features=test, train_count=len(train),
    )


def save_references(path: Path, metadata: dict, classes: dict[str, ClassReferences]) -> None:
    arrays: dict[str, np.ndarray] = {"metadata": np.array(json.dumps(metadata, sort_keys=True))}
    for cls, refs in classes.items():
        for split, stats in refs.stats.items():
            arrays |= {
                f"{cls}/{split}/mu": stats.mu,
                f"{cls}/{split}/sigma": stats.sigma,
                f"{cls}/{split}/sqrt_sigma": stats.sqrt_sigma,
                f"{cls}/{split}/count": np.array(stats.count),
            }
        arrays |= {f"{cls}/memory": refs.memory, f"{cls}/auto_eps": np.array(refs.auto_eps)}
        arrays |= {f"{cls}/test/{s}": refs.test_features[s].astype(np.float32) for s in ("public", "private")}
        arrays |= {f"{cls}/train_count": np.array(refs.train_count)}
    _atomic(path, lambda handle: np.savez(handle, **arrays))  # type: ignore[arg-type]
    write_reference_summary(path.parent, metadata, {cls: refs.auto_eps for cls, refs in classes.items()})


def _atomic(path: Path, write) -> None:
    """`write(handle)` through `write_atomically` (np.savez would add .npz to a temporary file's name)."""

    def fill(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            write(handle)

    write_atomically(path, fill)


def load_or_build_references(
    competition: Competition, extractor: FeatureExtractor, progress: bool = True,
    on_progress: BuildProgress | None = None,
) -> References:
    metadata = expected_metadata(competition, extractor.weights_sha256, extractor.engine)
    path = competition.references_dir / reference_cache_file(extractor.engine)
    return load_references(path, metadata) or build_references(competition, extractor, metadata, progress,
                                                               on_progress)
