"""Factories for server tests: databases (SQLite file or a PostgreSQL schema), settings, an app with a clock."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from server.competition import Competition
from server.config import Settings
from server.db import Database, Submission, SubmissionStatus, Team, bump_board_version
from tests.utils.competition import make_competition, random_images

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
TABLES = "browser_sessions, submission_events, submissions, teams, workers, worker_leases, worker_tokens, competitions"
START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


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


def add_scored(session: Any, team: Team, public: float, private: float, created_at: datetime, *,
               selected: bool = False, classes: tuple[str, ...] = ("with_mask", "without_mask"),
               public_se: float | None = None, private_se: float | None = None) -> Submission:
    """A scored submission row as the worker would leave it (ranking tests need no scoring run)."""
    per_class = {c: {"fid_public": public / len(classes), "fid_private": private / len(classes), "penalized": False}
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
