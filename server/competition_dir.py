"""The server's view of a competition: the one accessor from a registered row to its directory, where the server
looks for directories, and how the data writer writes them. The directory description itself
(`Competition`, `CompetitionConfig`, `Manifest`) is shared with teams in `submissions.competition`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from server.errors import ArenaError
from submissions.atomic import write_atomically
from submissions.competition import (
    CONFIG_FILE,
    MANIFEST_FILE,
    Competition,
    CompetitionConfig,
    CompetitionError,
    Manifest,
    ManifestEntry,
    Split,
)
from submissions.results import SPLITS

__all__ = [
    "CONFIG_FILE",
    "MANIFEST_FILE",
    "FEATURE_DIMS",
    "PREPROCESSING_VERSION",
    "REFERENCE_CACHE_FILE",
    "REFERENCE_CONTENTS_VERSION",
    "REFERENCE_SUMMARY_FILE",
    "Competition",
    "CompetitionConfig",
    "CompetitionError",
    "CompetitionUnavailable",
    "Manifest",
    "ManifestEntry",
    "Split",
    "changed_metadata",
    "competitions_dir",
    "config_problem",
    "eps_in_force",
    "expected_reference_metadata",
    "load_competition",
    "memorization_eps",
    "reference_cache_file",
    "write_config",
    "write_manifest",
    "write_reference_summary",
]


class RegisteredCompetition(Protocol):
    """What the accessor needs of a database row (server.db.CompetitionRow): its slug and where its directory is."""

    slug: str
    root: str


class CompetitionUnavailable(ArenaError, CompetitionError):
    """A registered competition whose competition.json cannot be read now (edited by hand into something invalid,
    or removed). Its own pages answer 503; lists skip it, organizers see why, workers leave its jobs queued."""

    status_code = 503
    code = "competition_unavailable"


# The scoring cache's readable summary (per-class auto eps); server/scoring/references.py writes it.
REFERENCE_SUMMARY_FILE = "fid-references.json"
# The scoring cache itself, one per feature engine (the torch engine's; others add their name): named here because
# the web tier serves it to remote workers (server/jobs/remote.py) without importing the scoring engine.
REFERENCE_CACHE_FILE = "fid-references.npz"


def reference_cache_file(engine: str) -> str:
    return REFERENCE_CACHE_FILE if engine == "torch" else REFERENCE_CACHE_FILE.replace(".npz", f".{engine}.npz")


# What a reference file's metadata must say, named here (not in server/scoring) because the web tier checks the
# reference files remote workers upload (server/jobs/remote_builds.py) without importing the scoring engine.
FEATURE_DIMS = 2048  # pool3 features of the FID Inception network
# How images reach the network (server/scoring/features.py); a change makes every cache stale.
PREPROCESSING_VERSION = "pytorch-fid-0.3.0-rgb-totensor-bilinear299-v1"
# 2: the raw public/private test features are stored (uncertainty and diagnostics need them).
REFERENCE_CONTENTS_VERSION = 2


def expected_reference_metadata(competition: Competition, weights_sha256: str, engine: str) -> dict:
    """The metadata of current reference statistics for these images, weights and engine: a cache whose metadata
    differs is stale (server/scoring/references.py), an upload whose metadata differs is refused."""
    counts = {
        cls: {"train": len(competition.train_files(cls)), **{s: len(competition.test_files(cls, s)) for s in SPLITS}}
        for cls in competition.classes
    }
    return {
        "dataset_hash": competition.manifest.dataset_hash,
        "weights_sha256": weights_sha256,
        "engine": engine,
        "dims": FEATURE_DIMS,
        "counts": counts,
        "preprocessing_version": PREPROCESSING_VERSION,
        "contents_version": REFERENCE_CONTENTS_VERSION,
    }


def changed_metadata(stored: dict, expected: dict) -> list[str]:
    """The keys on which a reference file's metadata differs from `expected_reference_metadata`: why it is stale."""
    return sorted(key for key in stored.keys() | expected.keys() if stored.get(key) != expected.get(key))


def write_reference_summary(references_dir: Path, metadata: dict, auto_eps: dict[str, float]) -> None:
    """The readable summary next to a reference file (the pages read the calibrated eps from it), atomically."""
    summary = json.dumps({**metadata, "auto_eps": auto_eps}, indent=1)
    write_atomically(references_dir / REFERENCE_SUMMARY_FILE, lambda temporary: temporary.write_text(summary))


_loaded: dict[str, tuple[float, Competition | CompetitionError]] = {}


def load_competition(row: RegisteredCompetition) -> Competition:
    """The one accessor for a registered competition's directory: cached, reloaded when competition.json changes
    (organizers edit it while the server runs). CompetitionUnavailable when the directory cannot be read."""
    loaded = _load(row)
    if isinstance(loaded, CompetitionError):
        raise CompetitionUnavailable(
            f"Competition '{row.slug}' is unavailable: its configuration cannot be read. The organizers see why in "
            "the console; nothing stored is lost.")
    return loaded


def config_problem(row: RegisteredCompetition) -> str | None:
    """Why a registered competition's directory cannot be read (for organizers and logs), or None when it can."""
    loaded = _load(row)
    return str(loaded) if isinstance(loaded, CompetitionError) else None


def _load(row: RegisteredCompetition) -> Competition | CompetitionError:
    config_file = Path(row.root) / CONFIG_FILE
    try:
        mtime = config_file.stat().st_mtime
    except OSError:
        mtime = -1.0
    cached = _loaded.get(row.root)
    if cached is None or cached[0] != mtime:
        try:
            cached = (mtime, Competition.load(row.root))
        except (OSError, ValueError) as exc:  # CompetitionError is a ValueError; so is undecodable text
            error = exc if isinstance(exc, CompetitionError) else CompetitionError(f"{config_file}: {exc}")
            cached = (mtime, error)
        _loaded[row.root] = cached
    return cached[1]


def eps_in_force(configured: str | float, calibrated: float | None) -> float | None:
    """The memorization threshold rule, once (scoring and pages): a configured number, or for "auto" the class's
    value calibrated when the references were built (None until then)."""
    return calibrated if configured == "auto" else float(configured)


def memorization_eps(comp: Competition) -> dict[str, float]:
    """ε per class as the pages show it: `eps_in_force` with the calibrated values of the scoring cache's summary.

    The summary (written by server/scoring/references.py under REFERENCE_SUMMARY_FILE) is read as plain JSON so the
    web tier never imports torch; "auto" gives nothing until the worker first builds the references.
    """
    try:
        summary = json.loads((comp.references_dir / REFERENCE_SUMMARY_FILE).read_text())
        calibrated = {cls: float(summary["auto_eps"][cls]) for cls in comp.classes}
    except (OSError, ValueError, KeyError, TypeError):
        calibrated = {}
    in_force = {cls: eps_in_force(comp.config.memorization_eps, calibrated.get(cls)) for cls in comp.classes}
    return {cls: eps for cls, eps in in_force.items() if eps is not None}


def competitions_dir(data_dir: Path) -> Path:
    """Where the server looks for competition directories to register."""
    return Path(data_dir) / "competitions"


def write_config(root: Path, config: CompetitionConfig) -> None:
    """Atomically: a server reading competition.json while the organizer saves sees the old or the new file."""
    document = config.model_dump_json(indent=2) + "\n"
    write_atomically(root / CONFIG_FILE, lambda temporary: temporary.write_text(document))


def write_manifest(root: Path, manifest: Manifest) -> None:
    document = manifest.model_dump(by_alias=True, exclude_none=True)  # a manifest without audit stays as it was
    (root / MANIFEST_FILE).write_text(json.dumps(document, indent=1) + "\n")
