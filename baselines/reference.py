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

from submissions.client import ArenaClient, SubmitError

CONFLICT = 409


class ReferenceSubmissionError(RuntimeError):
    """The server refused a step of the reference entry; the message carries its status and the client's text."""


def _step(action: str, call: Any) -> Any:
    try:
        return call()
    except SubmitError as exc:
        raise ReferenceSubmissionError(f"{action} failed ({exc.status_code}): {exc}") from exc


def baseline_team_token(admin: ArenaClient, slug: str, team_name: str) -> str:
    """An upload token for the baseline team `team_name`, creating the team on first use."""
    try:
        return admin.admin_create_team(slug, team_name, ["FID Arena baselines"], is_baseline=True)["token"]
    except SubmitError as exc:
        if exc.status_code != CONFLICT:
            raise ReferenceSubmissionError(f"creating team {team_name} failed ({exc.status_code}): {exc}") from exc
    teams = _step("listing teams", lambda: admin.admin_teams(slug))
    team = next(t for t in teams if t["name"] == team_name)
    if not team["is_baseline"]:
        raise ReferenceSubmissionError(f"team {team_name!r} exists in {slug!r} but is not a baseline team; "
                                       "rename or remove it, then rerun.")
    return _step("renewing the token", lambda: admin.admin_new_token(team["id"]))["token"]


def submit_reference(http: httpx.Client, slug: str, model: str, zip_path: Path, admin_token: str) -> dict[str, Any]:
    """Upload `zip_path` for the team `baseline-MODEL` through the one API client (`http` carries the server's
    base URL); returns the server's 202 body (id, status, status_url)."""
    server = str(http.base_url)
    token = baseline_team_token(ArenaClient(server, admin_token, http=http), slug, f"baseline-{model}")
    team = ArenaClient(server, token, http=http)
    message = f"reference entry: {model} with its recommended settings"
    return _step(f"uploading {zip_path}", lambda: team.upload(zip_path, slug, message=message, progress=False))
