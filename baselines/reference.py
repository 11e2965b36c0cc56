"""Publish a baseline's zip as a reference entry: a team flagged as baseline, shown on the leaderboard, not ranked.

Server routes used (organizer token): `POST /api/admin/competitions/{slug}/teams` with `is_baseline: true`; when
the team exists already (a rerun), `GET /api/admin/competitions/{slug}/teams` finds it and
`POST /api/admin/teams/{id}/token` issues a fresh upload token. The zip then goes to
`POST /api/competitions/{slug}/submissions` with that team's token, like any team's upload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

CONFLICT = 409


class ReferenceSubmissionError(RuntimeError):
    """The server refused a step of the reference entry; the message carries its error code and text."""


def _checked(response: httpx.Response, action: str) -> Any:
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        detail = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        detail = response.text[:500]
    raise ReferenceSubmissionError(f"{action} failed ({response.status_code}) at {response.request.url}: {detail}")


def baseline_team_token(client: httpx.Client, slug: str, team_name: str, admin_token: str) -> str:
    """An upload token for the baseline team `team_name`, creating the team on first use."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    response = client.post(f"/api/admin/competitions/{slug}/teams", headers=admin,
                           json={"name": team_name, "members": ["FID Arena baselines"], "is_baseline": True})
    if response.status_code != CONFLICT:
        return _checked(response, f"creating team {team_name}")["token"]
    teams = _checked(client.get(f"/api/admin/competitions/{slug}/teams", headers=admin), "listing teams")["data"]
    team = next(t for t in teams if t["name"] == team_name)
    if not team["is_baseline"]:
        raise ReferenceSubmissionError(f"team {team_name!r} exists in {slug!r} but is not a baseline team; "
                                       "rename or remove it, then rerun.")
    return _checked(client.post(f"/api/admin/teams/{team['id']}/token", headers=admin), "renewing the token")["token"]


def submit_reference(client: httpx.Client, slug: str, model: str, zip_path: Path, admin_token: str) -> dict[str, Any]:
    """Upload `zip_path` for the team `baseline-MODEL`; returns the server's 202 body (id, status, status_url)."""
    token = baseline_team_token(client, slug, f"baseline-{model}", admin_token)
    with zip_path.open("rb") as file:
        response = client.post(
            f"/api/competitions/{slug}/submissions",
            files={"file": (zip_path.name, file, "application/zip")},
            data={"message": f"reference entry: {model} with its recommended settings"},
            headers={"Authorization": f"Bearer {token}"},
        )
    return _checked(response, f"uploading {zip_path}")
