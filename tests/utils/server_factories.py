"""The server test harness: databases (SQLite file or a PostgreSQL schema), settings, the API app with a clock
(ArenaApp, the `make_app` fixture), the pages' app with two teams (Arena), CSRF and sign-in helpers, scored rows."""

from __future__ import annotations

import io
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from server.app import create_app
from server.competition_dir import CONFIG_FILE, Competition, competitions_dir
from server.config import Settings
from server.db import Database, Submission, SubmissionStatus, Team, bump_board_version
from server.db.crud import create_team, get_competition
from server.jobs import queue
from server.jobs.leases import register_worker
from server.storage import grid_path, write_sample_grid
from server.uploads.rules import create_submission
from submissions.results import ClassResult, ScoreReport
from tests.utils.competition import make_competition, random_images

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
TABLES = "browser_sessions, job_events, submissions, teams, workers, worker_tokens, competitions"
START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
XSS_NAME = "<script>alert('x')</script> team"


def fresh_database(url: str) -> Database:
    """A migrated database with no rows (PostgreSQL schemas are shared by a test session, so they are emptied)."""
    database = Database(url)
    database.migrate()
    if not database.is_sqlite:
        with database.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    return database


class Clock:
    """A settable clock for create_app(clock=...) and the service functions' `now`."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir, "database_url": database_url, "admin_token": ADMIN_TOKEN, "device": "cpu",
        "worker_poll_seconds": 0.05, "worker_heartbeat_seconds": 0.5, "retry_backoff_seconds": 0.0,
        "leaderboard_max_age_seconds": 0.0,
        **overrides,
    }
    return Settings(**values)


def make_test_competition(data_dir: Path, **config: Any) -> Competition:
    """A tiny competition registered by directory: 2 classes, 4 train and 4 test images each, 2 per submission."""
    values: dict[str, Any] = {"train_per_class": 4, "test_per_class": 4, "images_per_class": 2, **config}
    return make_competition(data_dir / "competitions" / "test-comp", **values)


def submission_zip(competition: Competition, seed: int = 1, count: int | None = None) -> bytes:
    """A valid submission zip of fresh random images (different seed, different bytes)."""
    from submissions import pack

    count = count or competition.config.images_per_class
    images = {cls: random_images(count, competition.config.image_size, seed=seed * 100 + i, brightness=90 + 60 * i)
              for i, cls in enumerate(competition.classes)}
    buffer = io.BytesIO()
    pack(images, buffer, competition.classes)
    return buffer.getvalue()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: TestClient, token: str, path: str = "/signin") -> None:
    """A browser session through the sign-in form at `path` (the organizer's: /admin/signin); the form answers 303
    (the redirect is followed where the client follows redirects)."""
    csrf = csrf_of(client.get(path).text)
    response = client.post(path, data={"token": token, "csrf_token": csrf})
    assert (response.history[0] if response.history else response).status_code == 303, response.text


def sign_in_admin(client: TestClient) -> None:
    sign_in(client, ADMIN_TOKEN, "/admin/signin")


@dataclass
class ArenaApp:
    client: TestClient
    settings: Settings
    database: Database
    clock: Clock
    competition: Competition

    @property
    def slug(self) -> str:
        return self.competition.slug

    def create_team(self, name: str, *, baseline: bool = False) -> tuple[int, str]:
        response = self.client.post(f"/api/admin/competitions/{self.slug}/teams", headers=bearer(ADMIN_TOKEN),
                                    json={"name": name, "members": ["Ada"], "is_baseline": baseline})
        assert response.status_code == 201, response.text
        return response.json()["id"], response.json()["token"]

    def upload(self, token: str | None, data: bytes, message: str = "", slug: str | None = None) -> Any:
        headers = bearer(token) if token else {}
        return self.client.post(f"/api/competitions/{slug or self.slug}/submissions", headers=headers,
                                files={"file": ("submission.zip", data, "application/zip")},
                                data={"message": message})


def class_result(public: float, private: float) -> ClassResult:
    """One class's scores as the scorer reports them, unpenalized, with these FIDs."""
    fids = {"public": public, "private": private, "all": (public + private) / 2}
    return ClassResult(**{f"fid_{split}": fid for split, fid in fids.items()},
                       **{f"raw_fid_{split}": fid for split, fid in fids.items()},
                       memorization_distance=0.2, memorization_eps=0.03, penalized=False, n_images=8)


class Arena:
    """The pages' app on a fresh data dir (its own SQLite file, no clock), with two teams (one with a hostile name)
    and a registered worker that scores submissions as the queue would."""

    def __init__(self, data_dir: Path, **config: Any):
        make_competition(competitions_dir(data_dir) / "test-comp", **config)
        # Max age 0: the boards are checked on every read, so a page shows a score as soon as it is stored (how
        # long a board may lag under load is test_shared_pages.py's and the server load benchmark's business).
        self.settings = Settings(data_dir=data_dir, admin_token=ADMIN_TOKEN, leaderboard_max_age_seconds=0)
        self.app = create_app(self.settings)
        self.database = self.app.state.database
        with self.database.sessionmaker() as session:
            row = get_competition(session=session, slug="test-comp")
            (self.alpha, self.alpha_token) = create_team(session=session, competition=row, name="alpha")
            (self.beta, self.beta_token) = create_team(session=session, competition=row, name=XSS_NAME)
        self.worker_id = "test-worker"
        with self.database.sessionmaker() as session:
            register_worker(session=session, worker_id=self.worker_id, device="cpu")

    def client(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)

    def sign_in(self, client: TestClient, token: str) -> None:
        sign_in(client, token)

    def sign_in_admin(self, client: TestClient) -> None:
        sign_in_admin(client)

    def scored_submission(self, team: Team, public: float, private: float, *, with_grids: bool = True) -> int:
        """Insert a submission for the team and finish it as the worker would (scores, sample grids)."""
        with self.database.sessionmaker() as session:
            row = get_competition(session=session, slug="test-comp")
            submission, _ = create_submission(session=session, competition=row, team=team,
                                              sha256=secrets.token_hex(32), size_bytes=1234, message="<b>hi</b>")
            claimed = queue.claim_next_submission(session=session, worker_id=self.worker_id)
            assert claimed is not None and claimed.id == submission.id
            per_class = {
                cls: {"fid_public": public / 2, "fid_private": private / 2, "fid_all": (public + private) / 4,
                      "raw_fid_public": public / 2, "raw_fid_private": private / 2, "raw_fid_all": 0.0,
                      "memorization_distance": 0.2, "memorization_eps": 0.03, "penalized": False, "n_images": 8}
                for cls in ("with_mask", "without_mask")
            }
            report = {"classes": per_class, "score_public": public, "score_private": private,
                      "score_all": (public + private) / 2, "timings": {"total": 1.5}, "device": "cpu",
                      "precision": "exact", "scorer_version": "test", "weights_sha256": "0" * 64}
            assert queue.finish_scored(session=session, submission_id=submission.id, lease_id=claimed.lease_id,
                                       worker_id=self.worker_id,
                                       result=ScoreReport.model_validate(report).result())
        if with_grids:
            for cls in ("with_mask", "without_mask"):
                write_sample_grid(grid_path(self.settings.data_dir, submission.id, cls), random_images(8))
        return submission.id


# The organizer console's settings form (the Arena competition's)
SETTINGS_URL = "/admin/c/test-comp/settings"


def config_file(arena: Arena) -> Path:
    """The Arena competition's competition.json."""
    return competitions_dir(arena.settings.data_dir) / "test-comp" / CONFIG_FILE


def form_of(arena: Arena, client: TestClient, **changes: str) -> dict[str, str]:
    """The settings form as the page fills it, with some fields changed."""
    config = json.loads(config_file(arena).read_text())
    form = {"csrf_token": csrf_of(client.get(SETTINGS_URL).text), "title": config["title"],
            "description": config["description"], "team_rules": config["team_rules"], "deadline": "",
            "daily_limit": str(config["daily_limit"]), "final_selection_limit": str(config["final_selection_limit"]),
            "self_registration": "1", "status": config["status"],
            "images_per_class": str(config["images_per_class"]), "memorization_eps": str(config["memorization_eps"])}
    return {**form, **changes}


def wait_for_preparation(client: TestClient, slug: str, timeout: float = 120.0) -> str:
    """Poll the job page as the browser does until the background preparation ends; the page's text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = client.get(f"/admin/new/{slug}")
        if 'data-state="running"' not in page.text:
            return page.text
        time.sleep(0.5)
    raise AssertionError(f"{slug} still preparing after {timeout} s: {page.text}")


def with_kinds(competition: Competition, kinds: str, tmp_path: Path, **config: object) -> Competition:
    """The shared scoring competition (its references built once) under another submission_kinds (and config)."""
    root = tmp_path / f"kinds-{kinds}"
    root.mkdir()
    for name in ("manifest.json", "train", "test", "references"):
        (root / name).symlink_to((competition.root / name).resolve())
    config = competition.config.model_copy(update={"submission_kinds": kinds, "slug": f"comp-{kinds}", **config})
    (root / "competition.json").write_text(config.model_dump_json())
    return Competition.load(root)


def upload_model(arena: ArenaApp, token: str, path: Path) -> Any:
    """An ONNX generator uploaded through the API as the team with `token`."""
    return arena.client.post(f"/api/competitions/{arena.slug}/submissions", headers=bearer(token),
                             files={"file": (path.name, path.read_bytes(), "application/octet-stream")})


def open_app(data_dir: Path, database_url: str, competition: dict[str, Any] | Competition | None = None,
             **overrides: Any) -> ArenaApp:
    """The API app with a clock on a fresh database: the test competition made with `competition` (its config), or
    a Competition linked into the data dir; close it with close_app."""
    if isinstance(competition, Competition):
        link = data_dir / "competitions" / competition.slug
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(competition.root.resolve(), target_is_directory=True)
        comp = competition
    else:
        comp = make_test_competition(data_dir, **(competition or {}))
    settings = make_settings(data_dir, database_url, **overrides)
    database = fresh_database(database_url)
    clock = Clock()
    client = TestClient(create_app(settings, clock=clock, database=database))
    return ArenaApp(client=client, settings=settings, database=database, clock=clock, competition=comp)


def close_app(app: ArenaApp) -> None:
    app.client.close()
    app.database.dispose()


def add_scored(session: Any, team: Team, public: float, private: float, created_at: datetime, *,
               selected: bool = False, classes: tuple[str, ...] = ("with_mask", "without_mask"),
               public_se: float | None = None, private_se: float | None = None) -> Submission:
    """A scored submission row as the worker would leave it (ranking tests need no scoring run)."""
    per_class = {c: class_result(public / len(classes), private / len(classes)).model_dump(mode="json")
                 for c in classes}
    submission = Submission(
        competition_id=team.competition_id, team_id=team.id, sha256=uuid.uuid4().hex * 2,
        size_bytes=1, message="", status=SubmissionStatus.scored, attempts=1, created_at=created_at,
        updated_at=created_at, score_public=public, score_private=private, score_all=(public + private) / 2,
        penalized=False, class_scores=per_class, selected_final=selected, score_public_se=public_se,
        score_private_se=private_se,
    )
    session.add(submission)
    bump_board_version(session, team.competition_id)
    session.commit()
    return submission
