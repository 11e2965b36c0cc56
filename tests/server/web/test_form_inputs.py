"""The organizer's forms follow the same input rules as the API (issue 12): no silent truncation, no control
characters, bounded reasons."""

from __future__ import annotations

import pytest

from tests.utils.server_factories import Arena, csrf_of


@pytest.fixture
def arena(data_dir):
    return Arena(data_dir)


@pytest.mark.parametrize("name", ["x" * 101, "tab\there", "nul\x00", "   "])
def test_the_team_form_refuses_names_the_api_refuses(arena, name):
    organizer = arena.client()
    arena.sign_in_admin(organizer)
    csrf = csrf_of(organizer.get("/admin/teams").text)
    response = organizer.post("/admin/teams", data={"competition": "test-comp", "name": name, "csrf_token": csrf})
    assert response.status_code == 422 and "team name" in response.text
    assert "arena_" not in response.text  # no team, no token


def test_an_action_reason_with_control_characters_is_refused(arena):
    submission_id = arena.scored_submission(arena.alpha, 100.0, 110.0, with_grids=False)
    organizer = arena.client()
    arena.sign_in_admin(organizer)
    csrf = csrf_of(organizer.get("/admin/submissions").text)
    response = organizer.post(f"/admin/submissions/{submission_id}/disqualify",
                              data={"csrf_token": csrf, "reason": "bad\x00"})
    assert response.status_code == 422 and "control character" in response.text
    assert "No scored submissions yet" not in arena.client().get("/c/test-comp/leaderboard").text


def test_a_refused_team_form_comes_back_as_typed(arena):
    """The teams page shows a refused form again the way the settings and new-competition pages do (refused_form)."""
    organizer = arena.client()
    arena.sign_in_admin(organizer)
    csrf = csrf_of(organizer.get("/admin/teams").text)
    form = {"competition": "test-comp", "name": "alpha", "members": "Ada, Grace", "is_baseline": "1",
            "csrf_token": csrf}
    response = organizer.post("/admin/teams", data=form)
    assert response.status_code == 409 and 'role="alert"' in response.text
    assert 'value="alpha"' in response.text and 'value="Ada, Grace"' in response.text
    assert 'value="test-comp" selected' in response.text and 'value="1" checked' in response.text
