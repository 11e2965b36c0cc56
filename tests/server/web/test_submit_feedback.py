"""What the submit and submission pages tell a team: problems grouped by rule, "accepted" only while it is true,
no quota bar once nothing can be uploaded (real app, SQLite, the real validator)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from server.db.crud import get_competition, load_competition
from server.jobs import queue
from tests.utils.server_factories import Arena, csrf_of, submission_zip


@pytest.fixture
def arena(data_dir):
    return Arena(data_dir)


def colour_zip(classes: list[str], per_class: int) -> bytes:
    """Every image in colour (RGB, unequal channels): the same rule broken by every file."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for cls in classes:
            for i in range(per_class):
                image = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), "RGB").save(image, "PNG")
                archive.writestr(f"{cls}/{i:03d}.png", image.getvalue())
    return buffer.getvalue()


def upload(arena: Arena, client, content: bytes, name: str = "s.zip"):
    page = client.get("/c/test-comp/submit").text
    return client.post("/c/test-comp/submit", data={"csrf_token": csrf_of(page), "message": ""},
                       files={"file": (name, content, "application/zip")})


def test_problems_are_grouped_by_rule_with_a_count_and_the_first_files(arena):
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    response = upload(arena, client, colour_zip(["with_mask", "without_mask"], 8))
    assert response.status_code == 422
    problems = response.text.split('id="problems"')[1].split("</div>")[0]
    items = problems.split("<li>")[1:]
    assert len(items) == 1, problems  # one rule broken sixteen times: one item, not sixteen identical lines
    assert "16 files</strong>" in items[0] and items[0].count('class="problem-file"') == 3
    assert "with_mask/000.png" in items[0] and "and 13 more" in items[0] and "rule not_grayscale" in items[0]
    assert "The upload is not a valid submission (16 problems)" in response.text


def test_accepted_is_said_only_while_the_submission_waits(arena):
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    with arena.database.sessionmaker() as session:
        competition = load_competition(get_competition(session=session, slug="test-comp"))
    accepted = upload(arena, client, submission_zip(competition))
    assert accepted.status_code == 303
    submission_url = accepted.headers["location"]
    with arena.database.sessionmaker() as session:  # a worker takes it before the team's browser follows
        assert queue.claim_next_submission(session=session, worker_id=arena.worker_id) is not None
    page = client.get(submission_url).text
    assert 'data-status="scoring"' in page
    assert "queued for scoring" not in page and "Accepted and waiting" not in page
    fragment = client.get(f"{submission_url}/status").text
    assert "Scoring now" in fragment and "Accepted" not in fragment


def test_a_queued_submission_says_it_was_accepted_in_the_polled_status(arena):
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    with arena.database.sessionmaker() as session:
        competition = load_competition(get_competition(session=session, slug="test-comp"))
    submission_url = upload(arena, client, submission_zip(competition)).headers["location"]
    fragment = client.get(f"{submission_url}/status").text  # what arena.js swaps in every 1.5 s
    assert 'data-status="queued"' in fragment and "Accepted and waiting to be scored" in fragment


def test_no_quota_bar_after_the_deadline_or_while_the_competition_is_closed(data_dir):
    arena = Arena(data_dir, deadline="2020-01-01T00:00:00Z")
    client = arena.client()
    arena.sign_in(client, arena.alpha_token)
    page = client.get("/c/test-comp/submit").text
    assert "submissions are closed" in page and 'id="quota"' not in page
    open_arena = Arena(data_dir / "closed", status="closed")
    other = open_arena.client()
    open_arena.sign_in(other, open_arena.alpha_token)
    closed = other.get("/c/test-comp/submit").text
    assert "Submissions are not accepted now" in closed and 'id="quota"' not in closed
