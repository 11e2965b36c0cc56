"""`arena worker --server URL --token TOKEN`: a scoring worker on any machine that reaches the arena over HTTP(S).

It shares nothing with the server but the API (server/api/routes/workers.py): no database, no data directory, no
inbound port, no secret but its token. It registers, claims a job (a lease), downloads the job's zip or model and
the competition's reference statistics (content-addressed by their sha256, the job's reference fingerprint: fetched
once, verified, kept in `--cache-dir`), scores it with the same Scorer and the same function as a local worker
(`entries.score_entry`: a model is sampled with the seeds the claim sent, under the server's settings the claim
sent), and posts the result with its grids and evidence images (`entries.write_entry_images`).

A claim may be a reference build instead (server/jobs/remote_builds.py says when): the worker fetches every image
of the competition's manifest (train and test, each by its sha256 into `--cache-dir`/images, verified, linked into
a copy of the competition's directory), builds with the local build's code (`load_or_build_references`, progress
posted every `reference_worker.PROGRESS_SECONDS` through the same `ProgressReporter`) and uploads the file, read
from disk in chunks, with its sha256 for the server's check.

Transfers survive a bad network: every call retries with exponential backoff on connection errors, timeouts and 5xx
(tenacity), a download restarts into a temporary file and is kept only when its hash matches. A heartbeat thread
extends the lease; when the server says the job is no longer held, or has not answered for as long as its lease
lasts (it will have requeued the job by then), the worker drops the job: its result would be refused (409) anyway.
SIGTERM follows the local worker's rule (`ShutdownSignals`): finish the job within the grace period, or give it back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from tenacity import before_sleep_log, retry, retry_if_exception, stop_after_delay, wait_exponential

from server.competition_dir import CONFIG_FILE, MANIFEST_FILE, Competition, reference_cache_file
from server.config import Settings
from server.db import SubmissionKind
from server.jobs.entries import EntryJob, score_entry, write_entry_images
from server.jobs.model_entries import ModelFailed
from server.jobs.reference_worker import PROGRESS_SECONDS, ProgressReporter
from server.jobs.signals import WorkerInterrupted
from server.jobs.worker import beating, make_scorer
from server.storage import evidence_path, file_sha256, grid_path

log = logging.getLogger("arena.remote_worker")
CHUNK = 1 << 20
UPLOAD_SECONDS = 600.0  # the server checks a reference file (~400 MB) before it answers
IMAGE_DOWNLOADS = 8  # a build's images are fetched this many at a time (thousands of small files)


class JobLost(Exception):
    """The server took the job away (requeued after silence, cancelled, revoked): drop it, post nothing."""


class ReferencesDoNotFit(Exception):
    """The job's reference file was not built for this worker's engine, weights or data version: not the
    submission's fault, so the job goes back to the queue without using an attempt."""


def transient(exc: BaseException) -> bool:
    """Worth retrying: the network or the server failed, not the request."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


def retrying(seconds: float):
    """Retry a call with exponential backoff (0.5 s doubling to 15 s) for up to `seconds`, then raise its error."""
    return retry(retry=retry_if_exception(transient), wait=wait_exponential(multiplier=0.5, max=15),
                 stop=stop_after_delay(seconds), reraise=True, before_sleep=before_sleep_log(log, logging.WARNING))


@dataclass
class ArenaServer:
    """The worker routes of one arena, with a worker token; every call retried on transient failures."""

    url: str
    token: str
    retry_seconds: float = 300.0
    client: httpx.Client = field(init=False)
    # path -> (sha256, size and mtime) of the files this process checked: the ~400 MB reference file is hashed once,
    # not before every job (about a second each time on a CPU worker)
    verified: dict[Path, tuple[str, tuple[int, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url.rstrip("/") + "/api/worker", timeout=httpx.Timeout(60, connect=10),
                                   headers={"Authorization": f"Bearer {self.token}"})

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        @retrying(self.retry_seconds)
        def attempt() -> httpx.Response:
            response = self.client.request(method, path, **kwargs)
            if response.status_code >= 500:
                response.raise_for_status()
            return response

        return attempt()

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return answered(path, self.call("POST", path, **kwargs))

    def download(self, url: str, target: Path, sha256: str) -> Path:
        """Fetch `url` into `target` unless a file with that hash is there; a download whose hash differs is
        deleted and fetched again (by the retries) before it is ever used."""
        if self.holds(target, sha256):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)

        @retrying(self.retry_seconds)
        def attempt() -> None:
            handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            partial = Path(name)
            try:
                digest = hashlib.sha256()
                with os.fdopen(handle, "wb") as out, self.client.stream("GET", url) as response:
                    if response.status_code == 409:
                        response.read()
                        raise JobLost(error_message(response))
                    response.raise_for_status()
                    for chunk in response.iter_bytes(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != sha256:
                    raise httpx.ReadError(f"{url}: sha256 {digest.hexdigest()} is not the announced {sha256}")
                partial.replace(target)
                self.verified[target] = (sha256, file_stamp(target))
            finally:
                partial.unlink(missing_ok=True)

        attempt()
        return target

    def holds(self, target: Path, sha256: str) -> bool:
        """`target` is there with that hash: hashed the first time this process sees it, then known by its size and
        modification time (a file changed since is hashed again)."""
        if not target.is_file():
            return False
        stamp = file_stamp(target)
        if self.verified.get(target) == (sha256, stamp):
            return True
        if file_sha256(target) != sha256:
            return False
        self.verified[target] = (sha256, stamp)
        return True

    def upload(self, url: str, path: Path, sha256: str) -> httpx.Response:
        """POST a large file as the raw body, read from disk in chunks (never whole in memory), with its sha256
        for the server's check; retried like every call."""

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        @retrying(self.retry_seconds)
        def attempt() -> httpx.Response:  # each try reads the file again from its start
            response = self.client.post(url, content=chunks(), timeout=httpx.Timeout(UPLOAD_SECONDS, connect=10),
                                        headers={"X-Content-Sha256": sha256,
                                                 "Content-Type": "application/octet-stream"})
            if response.status_code >= 500:
                response.raise_for_status()
            return response

        return answered(url, attempt())


def answered(path: str, response: httpx.Response) -> httpx.Response:
    """The answer to a POST about a held job: JobLost when the server took the job away (409), RuntimeError naming
    any other refusal."""
    if response.status_code == 409 and not already_stored(response):
        raise JobLost(error_message(response))
    if response.status_code >= 400:
        raise RuntimeError(f"POST {path}: HTTP {response.status_code}: {error_message(response)}")
    return response


def already_stored(response: httpx.Response) -> bool:
    """A 409 saying this lease's result is stored: the first post got through, only its answer was lost."""
    try:
        return response.json()["error"]["detail"]["stored"] is True
    except (ValueError, KeyError, TypeError):
        return False


@contextmanager
def timed(stages: dict[str, float], stage: str) -> Iterator[None]:
    """Add the block's wall time to stages[stage] (the worker's log line per job, the transfer benchmark)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - started


def error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:500]


def file_stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@dataclass
class RemoteWorker:
    """One remote worker process: the same Scorer as a local worker, the arena reached only through `server`."""

    server: ArenaServer
    settings: Settings
    cache_dir: Path
    scorer: Any = None
    worker_id: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    lease: str | None = None
    job_path: str | None = None  # /jobs/SUBMISSION/LEASE of the job held now
    lost: threading.Event = field(default_factory=threading.Event)
    heartbeat_seconds: float = 5.0
    lease_seconds: float = 120.0
    last_answer: float = field(default_factory=time.monotonic)
    timings: list[dict[str, float]] = field(default_factory=list)  # seconds per stage of each posted job

    def __post_init__(self) -> None:
        if self.scorer is None:
            self.scorer = make_scorer(self.settings)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def register(self) -> None:
        extractor = self.scorer.extractor
        identity = {"host": socket.gethostname(), "pid": os.getpid(), "device": str(extractor.device),
                    "engine": extractor.engine}
        answer = self.server.post("/register", json=identity).json()
        self.worker_id = answer["worker_id"]
        self.heartbeat_seconds, self.lease_seconds = answer["heartbeat_seconds"], answer["lease_seconds"]

    def run(self, *, max_jobs: int | None = None) -> int:
        """Claim and run jobs until stopped (or `max_jobs`); returns how many were done (a submission scored, a
        reference build accepted)."""
        self.register()
        done = 0
        with beating(self._heartbeat_loop, name=f"heartbeat-{self.worker_id}"):
            while not self.stop.is_set() and (max_jobs is None or done < max_jobs):
                stages: dict[str, float] = {}
                try:
                    with timed(stages, "claim"):
                        job = self.claim()
                except (httpx.TransportError, httpx.HTTPStatusError) as exc:  # retried for minutes already
                    log.error("the server does not answer (%s); still trying", exc)
                    job = None
                if job is None:
                    self.stop.wait(self.settings.worker_poll_seconds)
                    continue
                done += self.run_build(job) if job.get("job") == "reference_build" else self.run_job(job, stages)
        return done

    def claim(self) -> dict[str, Any] | None:
        extractor = self.scorer.extractor
        response = self.server.post("/claim", json={
            "worker_id": self.worker_id, "engine": extractor.engine, "weights_sha256": extractor.weights_sha256,
            "scorer_version": scorer_version()})
        return None if response.status_code == 204 else response.json()

    def _heartbeat_loop(self, stop_beating: threading.Event) -> None:
        """Beat every heartbeat_seconds; a job is lost when the server says so or stays silent for a whole lease."""
        while not stop_beating.wait(self.heartbeat_seconds):
            lease = self.lease
            try:
                response = self.server.client.post("/heartbeat", json={"worker_id": self.worker_id,
                                                                       "lease_id": lease})
                if response.status_code == 200:
                    self.last_answer = time.monotonic()
                    if lease is not None and not response.json()["holds"] and lease == self.lease:
                        self.lost.set()
            except httpx.TransportError as exc:
                if lease is not None:  # idle, the next claim's retries say it
                    log.warning("heartbeat failed (%s); the lease lasts %.0f s without one", exc, self.lease_seconds)
            if lease is not None and time.monotonic() - self.last_answer > self.lease_seconds:
                self.lost.set()  # the server has requeued the job by now: its result would be refused

    # -- one job -----------------------------------------------------------------------------------------------

    @contextmanager
    def holding(self, job: dict[str, Any], path: str, name: str) -> Iterator[None]:
        """Hold a claimed job (a submission or a reference build, at `path` under its lease) while the block runs.
        The block ends it: a lease the server took away drops it, a stopping worker gives it back, and any other
        error is posted as the job's failure."""
        self.lost = threading.Event()
        self.lease, self.last_answer, self.job_path = job["lease_id"], time.monotonic(), path
        try:
            yield
        except JobLost as exc:
            log.warning("%s: dropped (%s)", name, exc)
        except WorkerInterrupted:
            self.abandon_current(f"worker {self.worker_id} stopped before finishing")
            self.stop.set()
        except Exception as exc:
            log.exception("%s failed", name)
            self._report_failure(path, f"{type(exc).__name__}: {exc}")
        finally:
            self.lease = self.job_path = None

    def run_job(self, job: dict[str, Any], stages: dict[str, float] | None = None) -> int:
        """Score one claimed job and post its result, or its failure; 1 when a result was kept."""
        path, name = f"/jobs/{job['submission_id']}/{job['lease_id']}", f"submission {job['submission_id']}"
        stages = stages if stages is not None else {}
        with self.holding(job, path, name):
            try:
                result = self.score(job, stages)
            except ReferencesDoNotFit as exc:
                log.error("%s: %s", name, exc)
                self.abandon_current(str(exc))
                return 0
            except ModelFailed as exc:  # the team's model, not this worker: the submission fails at once
                log.warning("%s: %s", name, exc)
                self._report_failure(path, str(exc), model_failed=True)
                return 0
            if self.lost.is_set():
                raise JobLost("the lease ran out while scoring")
            with timed(stages, "post"):
                self.server.post(f"{path}/result", files=result,
                                 data={"reference_fingerprint": job["reference_fingerprint"]})
            self.timings.append(stages)
            log.info("%s scored and posted (%s)", name,
                     ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in stages.items()))
            return 1
        return 0

    def _report_failure(self, path: str, error: str, *, model_failed: bool = False) -> None:
        try:
            self.server.post(f"{path}/failure", json={"error": error[:5000], "model_failed": model_failed})
        except JobLost:
            pass

    def abandon_current(self, reason: str) -> None:
        """Give the held job back (ShutdownSignals calls this on a second signal or the end of the grace period)."""
        path = self.job_path
        if path is not None:
            try:
                self.server.post(f"{path}/release", json={"reason": reason})
            except JobLost:
                pass

    def progress(self, text: str) -> None:
        """Which step a model is on (its sample sets take minutes), for the team's status box; best effort."""
        path = self.job_path
        if path is None:
            return
        try:
            response = self.server.client.post(f"{path}/progress", json={"progress": text})
        except httpx.TransportError:
            return
        if response.status_code == 409:
            self.lost.set()  # the job was taken away: stop sampling it

    # -- one reference build -----------------------------------------------------------------------------------

    def run_build(self, job: dict[str, Any]) -> int:
        """Build a competition's reference statistics as a local worker does and upload them; 1 when accepted."""
        started = time.perf_counter()
        with self.holding(job, f"/builds/{job['build_id']}/{job['lease_id']}", f"reference build {job['build_id']}"):
            built = self.build_references(job, self.build_competition(job))
            if self.lost.is_set():
                raise JobLost("the lease ran out while building")
            answer = self.server.upload(job["references_url"], built, file_sha256(built)).json()
            log.info("reference build %s of '%s' in %.1f s: %s", job["build_id"], job["competition"],
                     time.perf_counter() - started, answer["outcome"])
            return 1
        return 0

    def build_competition(self, job: dict[str, Any]) -> Competition:
        """The build's competition as a directory of the cache with every image its manifest lists: each fetched
        once by its sha256 into images/ (verified), linked where the manifest puts it."""
        manifest = job["manifest"]
        root = (self.cache_dir / "builds" / f"{job['competition']}-{manifest['dataset_hash'][:16]}").resolve()
        root.mkdir(parents=True, exist_ok=True)
        (root / CONFIG_FILE).write_text(json.dumps(job["config"]))
        (root / MANIFEST_FILE).write_text(json.dumps(manifest))

        def fetch(index: int, entry: dict[str, str]) -> None:
            if self.lost.is_set():
                raise JobLost("the lease ended while the images were downloaded")
            link = (root / entry["path"]).resolve()
            if not link.is_relative_to(root):
                raise ValueError(f"manifest path {entry['path']!r} leaves the competition directory")
            stored = self.server.download(f"{job['images_url']}{index}",
                                          self.cache_dir / "images" / entry["sha256"][:2] / entry["sha256"],
                                          entry["sha256"])
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)  # a link of an earlier build: the same sha256, as the dataset hash says
            link.hardlink_to(stored)

        with ThreadPoolExecutor(IMAGE_DOWNLOADS) as pool:
            for done in [pool.submit(fetch, index, entry) for index, entry in enumerate(manifest["files"])]:
                done.result()
        return Competition.load(root)

    def build_references(self, job: dict[str, Any], competition: Competition) -> Path:
        """The reference file, built as a local worker builds it (`load_or_build_references`: one built before and
        still current is used again), with progress posted for the console."""
        from server.scoring.references import load_or_build_references

        reporter = ProgressReporter(job["progress"], partial(self.post_build_progress, job["progress_url"]),
                                    PROGRESS_SECONDS)
        return load_or_build_references(competition, self.scorer.extractor, progress=True,
                                        on_progress=reporter).path

    def post_build_progress(self, url: str, progress: dict[str, Any]) -> None:
        """Best effort, but a build whose lease is gone stops here (JobLost out of the network's batch loop)."""
        if self.lost.is_set():
            raise JobLost("the lease ended while building")
        try:
            response = self.server.client.post(url, json=progress)
        except httpx.TransportError:
            return
        if response.status_code == 409:
            self.lost.set()
            raise JobLost(error_message(response))

    # -- one submission ----------------------------------------------------------------------------------------

    def score(self, job: dict[str, Any], stages: dict[str, float]) -> list[tuple[str, tuple[str, bytes, str]]]:
        """Fetch what the job needs, score it as a local worker does (`entries.score_entry`) under the server's
        settings and seeds, and return the multipart files to post."""
        with timed(stages, "references"):
            competition = self.competition(job)
        suffix = ".onnx" if job["submission_kind"] == SubmissionKind.model else ".zip"
        target = self.cache_dir / "inputs" / f"{job['input_sha256']}{suffix}"
        with timed(stages, "input"):
            stored = self.server.download(job["input_url"], target, job["input_sha256"])
        with tempfile.TemporaryDirectory(dir=self.cache_dir) as scratch, timed(stages, "score"):
            settings = self.settings.model_copy(update={**job["settings"], "data_dir": Path(scratch)})
            entry = score_entry(EntryJob(kind=job["submission_kind"], path=stored, sha256=job["input_sha256"],
                                         competition=competition, seed=job["seed"]),
                                scorer=self.scorer, settings=settings, stage=self.progress, cancelled=self.lost)
            write_entry_images(settings.data_dir, job["submission_id"], entry)
            images = result_images(settings.data_dir, job["submission_id"], list(entry.images))
        report = json.dumps(entry.result.model_dump(mode="json"), allow_nan=False).encode()
        return [("report", ("report.json", report, "application/json")),
                *[("images", (name, data, "image/png")) for name, data in images.items()]]

    def competition(self, job: dict[str, Any]) -> Competition:
        """The job's competition as a directory of the cache: its config, manifest and the reference file (kept
        once per fingerprint under references/); no image of the dataset is needed to score."""
        from server.scoring.references import cache_problem

        references = self.server.download(job["reference_url"],
                                          self.cache_dir / "references" / f"{job['reference_fingerprint']}.npz",
                                          job["reference_fingerprint"])
        root = self.cache_dir / "competitions" / f"{job['competition']}-{job['reference_fingerprint'][:16]}"
        (root / "references").mkdir(parents=True, exist_ok=True)
        (root / CONFIG_FILE).write_text(json.dumps(job["config"]))
        (root / MANIFEST_FILE).write_text(json.dumps(job["manifest"]))
        linked = root / "references" / reference_cache_file(self.scorer.extractor.engine)
        try:
            linked.hardlink_to(references)
        except FileExistsError:  # linked before, by this worker or another sharing the cache
            pass
        competition = Competition.load(root)
        problem = cache_problem(competition, self.scorer.extractor)
        if problem is not None:
            raise ReferencesDoNotFit(f"the server's reference statistics do not fit this worker: {problem}")
        return competition


def result_images(data_dir: Path, submission_id: int, classes: list[str]) -> dict[str, bytes]:
    """The grids and evidence images `write_entry_images` wrote, by their names in a result post
    (grids/CLASS.png, evidence/CLASS/INDEX.png)."""
    images = {f"grids/{cls}.png": grid_path(data_dir, submission_id, cls).read_bytes() for cls in classes}
    for cls in classes:
        for path in sorted(evidence_path(data_dir, submission_id, cls, 0).parent.glob("*.png")):
            images[f"evidence/{cls}/{path.name}"] = path.read_bytes()
    return images


def scorer_version() -> str:
    from server.scoring.scorer import SCORER_VERSION

    return SCORER_VERSION
