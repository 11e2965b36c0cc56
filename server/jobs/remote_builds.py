"""Reference builds by remote workers: a GPU anywhere builds a competition's reference statistics over HTTP, so an
arena whose only GPU is remote (`arena serve --no-worker`) scores from its first upload.

When a remote worker gets a build. Its claim (server/jobs/remote.py `claim_job`) takes a queued build first, as a
local worker does (queued by the console, `arena admin references`, a local worker at start-up): the build is for
the claiming worker's engine and weights, recorded on the row at the claim. A build whose competition already has
current statistics for them is finished at once as "already current". Otherwise, when the submission it claims
waits for references (none for its engine, or stale: new images, a new preprocessing or contents version), the
claim queues a build for that competition and claims it; one active build per competition (reference_builds.py)
and the lease (leases.py) keep two workers from building the same thing. Two cases are left to the organizer: a
file built with other FID weights (which weights score the contest is their choice; "Build reference statistics"
on the console queues a build any worker takes) and a competition whose latest build failed (the console says why).

The build itself. The claim sends the competition's config and manifest; the worker downloads every image the
manifest lists by its index (`build_image`), keeps them in its cache by sha256, builds with the local build's code
(server/scoring/references.py), posts progress (the console's bar) and uploads the file. The upload is streamed to
a temporary file beside the reference file, capped at `max_reference_upload_bytes` (413 naming the setting), and
checked before it replaces anything (`check_reference_upload`): the sha256 the worker announced (a cut-off or
corrupted transfer), the metadata the server expects for these images, engine and weights
(`competition_dir.expected_reference_metadata`), every array's name, shape, dtype and finiteness, counts that match
the manifest. A bad file is refused with its reason (422) and fails the build; a good one is renamed into place,
exactly where a local build writes it, and the build is finished through `reference_builds.finish_build`, which
lets the competition's waiting submissions be claimed. This module reads numpy files but never imports the scoring
engine: the web tier runs it.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from server import inputs
from server.competition_dir import (
    Competition,
    CompetitionError,
    changed_metadata,
    expected_reference_metadata,
    load_competition,
    reference_cache_file,
    write_reference_summary,
)
from server.config import Settings
from server.db import CompetitionRow, ReferenceBuild, WorkerToken, begin_write, utcnow
from server.db.models import ReferenceBuildStatus
from server.errors import ArenaError, Conflict, NotFound, UploadTooLarge
from server.jobs.leases import BUILDS, held_or_refused, holds, lease_holder, lease_of
from server.jobs.reference_builds import (
    claim_next_build,
    completed_progress,
    finish_build,
    latest_build,
    record_progress,
    release_build,
    request_build,
    requeue_stale_builds,
)
from server.jobs.remote_results import reference_file
from server.jobs.worker_tokens import token_owns
from server.storage import file_sha256
from submissions.results import SPLITS


class InvalidReferences(ArenaError):
    """An uploaded reference file that does not fit its build; the message names what does not."""

    status_code = 422
    code = "invalid_references"


@dataclass(frozen=True)
class WorkerScorer:
    """What a claiming worker scores with: only jobs whose references were built by the same engine and weights."""

    engine: str
    weights_sha256: str
    scorer_version: str


# -- whether a worker's references are current ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceProblem:
    why: str
    buildable: bool  # False when only the weights differ: which weights score the contest is the organizer's call


def reference_problem(competition: Competition, scorer: WorkerScorer) -> ReferenceProblem | None:
    """None when the competition's statistics for the worker's engine are current for its weights, else why not."""
    references = reference_file(competition, scorer.engine)
    if references is None:
        return ReferenceProblem(f"'{competition.slug}' has no reference statistics for the {scorer.engine} engine "
                                "yet", buildable=True)
    expected = expected_reference_metadata(competition, scorer.weights_sha256, scorer.engine)
    changed = changed_metadata(references.metadata, expected)
    if changed == ["weights_sha256"]:
        return ReferenceProblem(f"the {scorer.engine} reference statistics of '{competition.slug}' were built with "
                                "other FID weights than this remote worker's (the organizer's console builds them "
                                "again with whichever worker takes the build)", buildable=False)
    if changed:
        return ReferenceProblem(f"the {scorer.engine} reference statistics of '{competition.slug}' are stale "
                                f"({', '.join(changed)} changed)", buildable=True)
    return None


# -- claiming a build ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedBuild:
    """A build as the worker is told it: the row, its lease, and the competition whose images it reads."""

    build: ReferenceBuild
    lease_id: str
    competition: Competition


def claim_build(*, session: Session, settings: Settings, worker_id: str, scorer: WorkerScorer,
                now: datetime) -> ClaimedBuild | None:
    """The oldest queued build this worker has work for, under a new lease; None when none is queued. Builds of
    silent workers are requeued first: with remote workers only, nobody else would."""
    requeue_stale_builds(session=session, timeout_seconds=settings.worker_timeout_seconds,
                         max_worker_crashes=settings.max_worker_crashes, now=now)
    while (build := claim_next_build(session=session, worker_id=worker_id, engine=scorer.engine,
                                     weights_sha256=scorer.weights_sha256, now=now)) is not None:
        claimed = work_of(session, build, worker_id=worker_id, scorer=scorer, now=now)
        if claimed is not None:
            return claimed
    return None


def work_of(session: Session, build: ReferenceBuild, *, worker_id: str, scorer: WorkerScorer,
            now: datetime) -> ClaimedBuild | None:
    """The claimed build as a job; None, with the build finished, when there is nothing to build (current for this
    engine and weights, as a local worker finds them) or nothing can be built (the competition cannot be read)."""
    lease_id = lease_of(build)
    row = session.get_one(CompetitionRow, build.competition_id)
    try:
        competition = load_competition(row)
        problem = reference_problem(competition, scorer)
    except CompetitionError as exc:
        finish_build(session=session, build_id=build.id, lease_id=lease_id, worker_id=worker_id, ok=False,
                     outcome=f"the competition cannot be read: {exc}", now=now)
        return None
    if problem is None:
        finish_build(session=session, build_id=build.id, lease_id=lease_id, worker_id=worker_id, ok=True,
                     outcome=f"already current: the {scorer.engine} statistics match these images and weights",
                     progress=completed_progress(build.progress), now=now)
        return None
    return ClaimedBuild(build=build, lease_id=lease_id, competition=competition)


def queue_build_for(*, session: Session, competition: CompetitionRow, problem: ReferenceProblem, worker_id: str,
                    now: datetime) -> str | None:
    """Queue a build for a competition whose submission waits for references (or find the one queued or running);
    None when one is, else why the submission waits for the organizer instead."""
    if not problem.buildable:
        return problem.why
    latest = latest_build(session=session, competition=competition)
    if latest is not None and latest.status == ReferenceBuildStatus.failed:
        return (f"{problem.why}, and its last reference build failed ({(latest.outcome or '')[:200]}): see the "
                "console, then build again")
    request_build(session=session, competition=competition, reason=f"remote worker {worker_id}: {problem.why}",
                  now=now)
    return None


# -- holding a build -----------------------------------------------------------------------------------------------


def held_build(*, session: Session, token: WorkerToken, build_id: int, lease_id: str, action: str,
               now: datetime | None = None) -> ReferenceBuild:
    """The build a call names, if `lease_id` still holds it for a worker of this token; otherwise 409 with the
    refused `action` recorded in the build's events, or 404 for a build no lease of this token ever held."""
    build = session.get(ReferenceBuild, build_id, populate_existing=True)
    holder = lease_holder(build, BUILDS, lease_id) if build is not None else None
    if build is None or holder is None or not token_owns(session, token, holder):
        session.commit()
        raise NotFound(f"Reference build {build_id} was never claimed under lease '{lease_id}' by this token.")
    if holds(build, BUILDS, lease_id):
        session.commit()
        return build
    begin_write(session)
    held_or_refused(session, BUILDS, build_id, lease_id=lease_id, worker_id=holder, call=action, now=now or utcnow())
    session.commit()
    raise Conflict(f"{action} from worker {holder} refused: its lease {lease_id[:8]} no longer holds reference build "
                   f"{build_id} (it is {build.status}: requeued after a silence, or its token was revoked).",
                   detail={"lease_id": lease_id})


def build_competition(session: Session, build: ReferenceBuild) -> Competition:
    return load_competition(session.get_one(CompetitionRow, build.competition_id))


def build_image(*, session: Session, token: WorkerToken, build_id: int, lease_id: str, index: int) -> Path:
    """The image at `index` of the competition's manifest (the claim sent the manifest: path, class, split and
    sha256 of each), for the held build."""
    build = held_build(session=session, token=token, build_id=build_id, lease_id=lease_id,
                       action="download of an image")
    competition = build_competition(session, build)
    files = competition.manifest.files
    if index >= len(files):
        raise NotFound(f"The manifest lists {len(files)} images; there is no image {index}.")
    return competition.root / files[index].path


def build_progress(*, session: Session, token: WorkerToken, build_id: int, lease_id: str,
                   progress: dict[str, Any]) -> None:
    """Images done per class, as a local build writes them (the console's progress bar)."""
    build = held_build(session=session, token=token, build_id=build_id, lease_id=lease_id, action="progress report")
    totals = (build.progress or {}).get("classes", {})
    unknown = sorted(set(progress["classes"]) - set(totals))
    if unknown:
        raise InvalidReferences(f"progress: classes {unknown} are not the competition's {sorted(totals)}")
    progress = {"classes": progress["classes"],
                "stage": inputs.printable_line(str(progress["stage"])[:200], field="stage", max_chars=200)}
    if not record_progress(session=session, build_id=build_id, lease_id=lease_id, progress=progress):
        raise Conflict("The lease no longer holds this reference build.", detail={"lease_id": lease_id})


def fail_build(*, session: Session, token: WorkerToken, build_id: int, lease_id: str, error: str,
               now: datetime | None = None) -> None:
    """The worker could not build: the build fails with its reason (the console shows it)."""
    build = held_build(session=session, token=token, build_id=build_id, lease_id=lease_id, action="failure")
    worker_id = build.worker_id or ""
    finish_build(session=session, build_id=build_id, lease_id=lease_id, worker_id=worker_id, ok=False,
                 outcome=f"remote worker {worker_id}: {error}", now=now)


def give_back_build(*, session: Session, token: WorkerToken, build_id: int, lease_id: str,
                    now: datetime | None = None) -> None:
    """The worker is shutting down: the build is queued again at once."""
    build = held_build(session=session, token=token, build_id=build_id, lease_id=lease_id, action="release")
    release_build(session=session, build_id=build_id, lease_id=lease_id, worker_id=build.worker_id or "", now=now)


# -- the uploaded reference file -----------------------------------------------------------------------------------


def upload_file(*, session: Session, token: WorkerToken, build_id: int, lease_id: str) -> Path:
    """A new empty temporary file beside the reference file the held build replaces: the upload streams into it
    (checked before anything is asked of the client's body: a stale lease is 409 at once)."""
    build = held_build(session=session, token=token, build_id=build_id, lease_id=lease_id, action="reference upload")
    target = build_competition(session, build).references_dir
    target.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target, prefix=f".{reference_cache_file(build.engine or 'torch')}.",
                                    suffix=".upload")
    os.close(handle)
    return Path(name)


def refuse_oversized(*, session: Session, settings: Settings, token: WorkerToken, build_id: int, lease_id: str,
                     upload: Path, now: datetime | None = None) -> UploadTooLarge:
    """An upload past `max_reference_upload_bytes`: deleted, the build failed (a rebuild would be as large), and
    the 413 to answer, naming the setting."""
    upload.unlink(missing_ok=True)
    cap = settings.max_reference_upload_bytes
    why = (f"the reference file is over max_reference_upload_bytes ({cap:,} bytes); raise "
           "ARENA_MAX_REFERENCE_UPLOAD_BYTES if the competition is that large")
    fail_build(session=session, token=token, build_id=build_id, lease_id=lease_id, error=why, now=now)
    return UploadTooLarge(why[0].upper() + why[1:] + ".", detail={"max_reference_upload_bytes": cap})


def accept_references(*, session: Session, token: WorkerToken, build_id: int, lease_id: str, upload: Path,
                      sha256: str, now: datetime | None = None) -> ReferenceBuild:
    """Check an uploaded reference file against its build, move it into place and finish the build; a file that
    does not fit is deleted, fails the build and is refused (InvalidReferences, 422)."""
    build = held_build(session=session, token=token, build_id=build_id, lease_id=lease_id, action="reference upload")
    worker_id, engine = build.worker_id or "", build.engine or "torch"
    competition = build_competition(session, build)
    expected = expected_reference_metadata(competition, build.weights_sha256 or "", engine)
    try:
        auto_eps = check_reference_upload(upload, sha256, expected)
    except InvalidReferences as exc:
        upload.unlink(missing_ok=True)
        finish_build(session=session, build_id=build_id, lease_id=lease_id, worker_id=worker_id, ok=False,
                     outcome=f"remote worker {worker_id} sent invalid reference statistics: {exc.message}", now=now)
        raise
    size = upload.stat().st_size
    # The file is complete and checked: a lease lost from here on leaves valid statistics, never half a file.
    upload.replace(competition.references_dir / reference_cache_file(engine))
    write_reference_summary(competition.references_dir, expected, auto_eps)
    finish_build(session=session, build_id=build_id, lease_id=lease_id, worker_id=worker_id, ok=True,
                 outcome=f"built by remote worker {worker_id} ({engine}); {size / 1e6:.0f} MB uploaded and checked",
                 progress=completed_progress(build.progress), now=now)
    return session.get_one(ReferenceBuild, build_id, populate_existing=True)


def check_reference_upload(path: Path, sha256: str, expected: dict) -> dict[str, float]:
    """The calibrated eps per class of a reference file that fits `expected`, or InvalidReferences naming what
    does not: the announced sha256, the metadata, and every array (names, shapes, dtypes, counts, finite values)."""
    actual = file_sha256(path)
    if actual != sha256:
        raise InvalidReferences(f"the file's sha256 is {actual}, not the announced {sha256} (cut off or corrupted "
                                "on the way)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            metadata = json.loads(str(archive["metadata"]))
            changed = changed_metadata(metadata, expected) if isinstance(metadata, dict) else ["the whole metadata"]
            if changed:
                raise InvalidReferences(f"metadata: {', '.join(changed)} differ from what this build expects",
                                        detail={key: {"sent": metadata.get(key) if isinstance(metadata, dict)
                                                      else None, "expected": expected.get(key)}
                                                for key in changed if key != "counts"})
            shapes = expected_arrays(expected)
            names = set(archive.files) - {"metadata"}
            if names != set(shapes):
                raise InvalidReferences(f"arrays: missing {sorted(set(shapes) - names)[:5]}, unexpected "
                                        f"{sorted(names - set(shapes))[:5]}")
            for name, (shape, value) in shapes.items():
                check_array(name, archive[name], shape, value)
            return {cls: float(archive[f"{cls}/auto_eps"]) for cls in expected["counts"]}
    except InvalidReferences:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidReferences(f"not a readable reference file ({type(exc).__name__}: {exc})") from exc


def expected_arrays(expected: dict) -> dict[str, tuple[tuple[int, ...], int | None]]:
    """Every array a reference file holds (server/scoring/references.py `save_references`): its shape, and the
    value of the counts."""
    dims = expected["dims"]
    arrays: dict[str, tuple[tuple[int, ...], int | None]] = {}
    for cls, counts in expected["counts"].items():
        for split in SPLITS:
            arrays |= {f"{cls}/{split}/mu": ((dims,), None), f"{cls}/{split}/sigma": ((dims, dims), None),
                       f"{cls}/{split}/sqrt_sigma": ((dims, dims), None), f"{cls}/{split}/count": ((), counts[split])}
        test = counts["public"] + counts["private"]
        arrays |= {f"{cls}/memory": ((counts["train"] + test, dims), None), f"{cls}/auto_eps": ((), None),
                   f"{cls}/test/public": ((counts["public"], dims), None),
                   f"{cls}/test/private": ((counts["private"], dims), None),
                   f"{cls}/train_count": ((), counts["train"])}
    return arrays


def check_array(name: str, array: np.ndarray, shape: tuple[int, ...], value: int | None) -> None:
    if array.shape != shape:
        raise InvalidReferences(f"{name}: shape {array.shape}, but this build's images give {shape}")
    if value is not None:
        if array.dtype.kind not in "iu" or int(array) != value:
            raise InvalidReferences(f"{name}: {array!r}, but the manifest counts {value}")
        return
    if array.dtype.kind != "f":
        raise InvalidReferences(f"{name}: dtype {array.dtype}, but statistics are floating point")
    if not np.isfinite(array).all():
        raise InvalidReferences(f"{name}: holds values that are not finite numbers")
    if name.endswith("/sigma") and not np.allclose(array, array.T):
        raise InvalidReferences(f"{name}: a covariance must be symmetric")

