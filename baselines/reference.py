"""Publish a baseline's zip as a reference entry: a team flagged as baseline, shown on the leaderboard, not ranked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx


class ReferenceSubmissionError(RuntimeError):
    """The server refused the reference entry; the message carries its error code and text."""


def _raise_for_error(response: httpx.Response, action: str) -> None:
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        detail = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        detail = response.text[:500]
    raise ReferenceSubmissionError(f"{action} failed ({response.status_code}) at {response.request.url}: {detail}")


def create_baseline_team(client: httpx.Client, slug: str, model: str, admin_token: str) -> str:
    """Register the team `baseline-MODEL` (organizer token: flagged as baseline) and return its upload token."""
    response = client.post(
        f"/api/competitions/{slug}/teams",
        json={"name": f"baseline-{model}", "members": ["FID Arena baselines"], "is_baseline": True},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    _raise_for_error(response, f"creating team baseline-{model}")
    return response.json()["token"]


def submit_reference(server: str, slug: str, model: str, zip_path: Path, admin_token: str,
                     message: str = "") -> dict[str, Any]:
    """Create the baseline team and upload `zip_path` for it; returns the server's 202 body (id, status_url...)."""
    with httpx.Client(base_url=server.rstrip("/"), timeout=300) as client:
        team_token = create_baseline_team(client, slug, model, admin_token)
        with zip_path.open("rb") as file:
            response = client.post(
                f"/api/competitions/{slug}/submissions",
                files={"file": (zip_path.name, file, "application/zip")},
                data={"message": message or f"reference entry: {model}"},
                headers={"Authorization": f"Bearer {team_token}"},
            )
        _raise_for_error(response, f"uploading {zip_path}")
        return response.json()
