"""Server fixtures: every database test runs on SQLite and on PostgreSQL (a fresh schema per test session)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from server.competition_dir import Competition
from server.db import Database
from tests.utils.inception import install_random_fid_weights
from tests.utils.server_factories import Arena, ArenaApp, close_app, fresh_database, make_test_competition, open_app


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """ARENA_TEST_POSTGRES_URL with search_path set to a schema of its own, dropped at the end."""
    base = os.environ.get("ARENA_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("PostgreSQL tests need ARENA_TEST_POSTGRES_URL (CI sets it; see .ci/run)")
    schema = f"arena_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (migrating from scratch costs seconds on a busy machine)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "arena.db"
    Database(f"sqlite:///{path}").migrate()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "arena.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = fresh_database(database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def fid_torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random FID weights where pytorch-fid looks for them; TORCH_HOME stays set for the test session."""
    home = tmp_path_factory.mktemp("torch-home")
    install_random_fid_weights(home)
    os.environ["TORCH_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def scorer(fid_torch_home: Path) -> Any:
    """One real Scorer (random weights, CPU) shared by the tests, as one worker shares it across jobs."""
    import torch

    from server.scoring import FeatureExtractor, Scorer

    torch.set_num_threads(1)
    return Scorer(FeatureExtractor(device="cpu", precision="exact"))


@pytest.fixture(scope="session")
def scoring_competition(tmp_path_factory: pytest.TempPathFactory, scorer: Any) -> Iterator[Competition]:
    """One competition with its references built once: its reference cache is ~400 MB (float64 2048x2048
    matrices) and building it costs seconds, so every scoring test links to this directory."""
    competition = make_test_competition(tmp_path_factory.mktemp("scoring"), daily_limit=50)
    scorer.prepare(competition, progress=False)
    yield competition
    shutil.rmtree(competition.references_dir, ignore_errors=True)


@pytest.fixture
def make_app(data_dir: Path, database_url: str) -> Iterator[Callable[..., ArenaApp]]:
    """make_app(competition={...config} | a Competition to link, **settings overrides) -> ArenaApp with a clock."""
    made: list[ArenaApp] = []

    def factory(competition: dict[str, Any] | Competition | None = None, **overrides: Any) -> ArenaApp:
        made.append(open_app(data_dir, database_url, competition, **overrides))
        return made[-1]

    yield factory
    for app in made:
        close_app(app)


@pytest.fixture
def arena(make_app: Callable[..., ArenaApp]) -> ArenaApp:
    return make_app()


@pytest.fixture
def organizer(data_dir: Path) -> tuple[Arena, TestClient]:
    """The pages' app (Arena) and a client signed in as the organizer."""
    arena = Arena(data_dir)
    client = arena.client()
    arena.sign_in_admin(client)
    return arena, client
