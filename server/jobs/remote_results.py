"""What a remote worker is given and what it sends back: the competition's reference statistics with their
fingerprint (`reference_file`), the posted result (`PostedResult`) and the checks it must pass against its job
(`check_result`): the competition's classes and image counts, totals that add up, finite numbers, the reference
fingerprint and weights, the worker's scorer version, a model's seeds; grids and evidence images are checked PNGs of
bounded size. A result that fails raises `InvalidResult` (422) naming what does not fit."""

from __future__ import annotations

import io
import json
import math
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import ValidationError

from server.competition_dir import Competition, reference_cache_file
from server.errors import ArenaError
from server.storage import evidence_path, file_sha256, grid_path
from submissions.atomic import write_atomically
from submissions.results import SubmissionResult

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_GRID_BYTES = 2 * 1024 * 1024  # an 8x8 grid of 64x64 grayscale PNGs is ~100 KiB; 2 MiB leaves room for 128 px
MAX_EVIDENCE_BYTES = 256 * 1024
MAX_REPORT_BYTES = 4 * 1024 * 1024
GRID_SIDE = 8


class InvalidResult(ArenaError):
    """A posted result that does not fit its job; the message names the field and the rule."""

    status_code = 422
    code = "invalid_result"


@dataclass(frozen=True)
class ReferenceFile:
    path: Path
    fingerprint: str  # sha256 of the file: the worker's cache key and its check of the download
    size: int
    metadata: dict[str, Any]


_fingerprints: dict[tuple[str, int, int], tuple[str, dict[str, Any]]] = {}
_fingerprints_lock = threading.Lock()


def reference_file(competition: Competition, engine: str) -> ReferenceFile | None:
    """The competition's reference statistics for `engine` with their fingerprint (hashed once per file version:
    ~400 MB), or None when none were built for that engine."""
    path = competition.references_dir / reference_cache_file(engine)
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _fingerprints_lock:
        if key not in _fingerprints:
            fingerprint = file_sha256(path)
            with np.load(path, allow_pickle=False) as archive:
                metadata = json.loads(str(archive["metadata"]))
            _fingerprints[key] = (fingerprint, metadata)
        fingerprint, metadata = _fingerprints[key]
    return ReferenceFile(path=path, fingerprint=fingerprint, size=stat.st_size, metadata=metadata)


@dataclass(frozen=True)
class PostedResult:
    """A remote worker's result as it arrived: the SubmissionResult (JSON bytes), one grid per class, evidence
    images by (class, image index)."""

    report: bytes
    reference_fingerprint: str
    grids: dict[str, bytes]
    evidence: dict[tuple[str, int], bytes]


@dataclass(frozen=True)
class JobGiven:
    """What the job was given, that its result must match."""

    competition: Competition
    references: ReferenceFile | None  # as they are now
    scorer_version: str  # the worker's, as it claimed
    seed: int | None  # a model's first seed
    sample_sets: int  # a model's number of sample sets


RESULT_FIELDS = frozenset(SubmissionResult.model_fields)


def check_result(result: PostedResult, job: JobGiven) -> SubmissionResult:
    """The SubmissionResult of a result that fits its job, or InvalidResult naming what does not."""
    fields = parse_report(result.report)
    unknown = sorted(set(fields) - RESULT_FIELDS)
    if unknown:
        raise InvalidResult(f"report: fields {unknown} are unknown; send a submissions.results.SubmissionResult",
                            detail={"unknown": unknown})
    check_finite(fields, "report")
    try:
        stored = SubmissionResult.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise InvalidResult(f"report.{where}: {first['msg']} ({exc.error_count()} problem(s) in all)") from exc
    check_columns(stored)
    if job.references is None or result.reference_fingerprint != job.references.fingerprint:
        raise InvalidResult(f"reference_fingerprint: {result.reference_fingerprint!r} is not the competition's "
                            "current reference statistics; score with the job's references (it is scored again)")
    for field, expected in (("scorer_version", job.scorer_version),
                            ("weights_sha256", job.references.metadata.get("weights_sha256"))):
        if getattr(stored, field) != expected:
            raise InvalidResult(f"report.{field}: {getattr(stored, field)!r}, but the job was given {expected!r}")
    check_sample_sets(stored, job)
    check_classes(stored, job.competition)
    check_images(result, stored, job.competition)
    return stored


def check_sample_sets(stored: SubmissionResult, job: JobGiven) -> None:
    """A model's result was sampled with the seeds the claim sent, over the server's number of sets; an image
    submission's has none."""
    if job.seed is None:
        if stored.sample_sets is not None:
            raise InvalidResult("report.sample_sets: this job is an image submission, not a model")
        return
    expected = [job.seed + k for k in range(job.sample_sets)]
    seeds = stored.sample_sets.seeds if stored.sample_sets is not None else None
    if seeds != expected:
        raise InvalidResult(f"report.sample_sets.seeds: {seeds}, but the job's model is sampled with the seeds the "
                            f"claim sent ({expected})")


def parse_report(report: bytes) -> dict[str, Any]:
    """The report's JSON object; NaN and Infinity (which Python's json would accept) are refused."""
    if len(report) > MAX_REPORT_BYTES:
        raise InvalidResult(f"report: {len(report):,} bytes, over the cap of {MAX_REPORT_BYTES:,}")

    def refuse(constant: str) -> None:
        raise InvalidResult(f"report: {constant} is not a finite number")

    try:
        fields = json.loads(report, parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidResult(f"report: not JSON ({exc})") from exc
    if not isinstance(fields, dict):
        raise InvalidResult("report: must be a JSON object of score columns")
    return fields


def check_finite(value: Any, where: str) -> None:
    """Every number in the report is a finite JSON number (NaN and infinities never reach the boards)."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_finite(item, f"{where}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidResult(f"{where}: {value} is not a finite number")



TEXT_COLUMNS = {"device": 32, "precision": 16, "scorer_version": 64, "weights_sha256": 64}  # the columns' widths


def check_columns(stored: SubmissionResult) -> None:
    """Each text column within its width, so a stored result never breaks a database write."""
    for name, width in TEXT_COLUMNS.items():
        if len(getattr(stored, name)) > width:
            raise InvalidResult(f"report.{name}: must be text of at most {width} characters")


def check_classes(stored: SubmissionResult, competition: Competition) -> None:
    """The competition's classes, each with its image count; the totals are the sums of the classes."""
    classes = stored.class_scores
    if sorted(classes) != sorted(competition.classes):
        raise InvalidResult(f"report.class_scores: classes {sorted(classes)}, but the competition has "
                            f"{sorted(competition.classes)}")
    expected = competition.config.images_per_class
    for cls, values in classes.items():
        if values.n_images != expected:
            raise InvalidResult(f"report.class_scores.{cls}.n_images: {values.n_images!r}, but the competition "
                                f"takes {expected} per class")
    if stored.penalized is not any(values.penalized for values in classes.values()):
        raise InvalidResult("report.penalized: must say whether any class is penalized")
    for split in ("public", "private", "all"):
        total = sum(values.fid(split) for values in classes.values())
        stated = stored.score(split)
        if min(stated, *(values.fid(split) for values in classes.values())) < 0:
            raise InvalidResult(f"report.score_{split}: FIDs are never negative")
        if not math.isclose(stated, total, rel_tol=1e-9, abs_tol=1e-9):
            raise InvalidResult(f"report.score_{split}: {stated}, but the classes' fid_{split} add up to {total}")


def check_images(result: PostedResult, stored: SubmissionResult, competition: Competition) -> None:
    """One grid per class of at most 8x8 images, and evidence images only for the images the report names."""
    size = competition.config.image_size
    if sorted(result.grids) != sorted(competition.classes):
        raise InvalidResult(f"grids: {sorted(result.grids)}, but one grid per class {sorted(competition.classes)} "
                            "is needed")
    for cls, data in result.grids.items():
        check_png(data, f"grids/{cls}.png", max_bytes=MAX_GRID_BYTES, max_side=GRID_SIDE * size)
    for (cls, index), data in result.evidence.items():
        values = stored.class_scores.get(cls)
        named = {n.image for n in values.nearest_train + values.nearest_any} if values is not None else set()
        if index not in named:
            raise InvalidResult(f"evidence/{cls}/{index:05d}.png: the report names no such evidence image")
        check_png(data, f"evidence/{cls}/{index:05d}.png", max_bytes=MAX_EVIDENCE_BYTES, max_side=size,
                  exact_side=size)


def check_png(data: bytes, name: str, *, max_bytes: int, max_side: int, exact_side: int | None = None) -> None:
    """A grayscale PNG within its bounds, decoded fully (a truncated file fails here, not on a page)."""
    if len(data) > max_bytes:
        raise InvalidResult(f"{name}: {len(data):,} bytes, over the cap of {max_bytes:,}")
    if not data.startswith(PNG_SIGNATURE):
        raise InvalidResult(f"{name}: not a PNG file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size  # from the header, before any pixel is decoded
            if width > max_side or height > max_side or (exact_side and (width, height) != (exact_side, exact_side)):
                raise InvalidResult(f"{name}: {width}x{height} pixels, outside the bounds ({max_side} px a side)")
            if image.mode != "L":
                raise InvalidResult(f"{name}: mode {image.mode}, but grids are 8-bit grayscale (L)")
            image.load()
    except InvalidResult:
        raise
    except Exception as exc:
        raise InvalidResult(f"{name}: cannot be decoded as a PNG ({exc})") from exc


def write_result_images(data_dir: Path, submission_id: int, result: PostedResult) -> None:
    """The checked grids and evidence images where a local worker writes them, each replaced atomically."""
    targets = {grid_path(data_dir, submission_id, cls): data for cls, data in result.grids.items()}
    targets |= {evidence_path(data_dir, submission_id, cls, index): data
                for (cls, index), data in result.evidence.items()}
    for path, data in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, partial(Path.write_bytes, data=data))


