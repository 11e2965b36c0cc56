"""The upload route: accepted (202) and every rejection (413, 422, 409, 429, 403), with quota counting and reset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.storage import upload_path
from tests.utils.server_factories import ADMIN_TOKEN, bearer, submission_zip

NEXT_MIDNIGHT = datetime(2026, 11, 28, tzinfo=UTC)


def test_accepted_upload_is_stored_queued_and_reports_quota(arena):
    _, token = arena.create_team("a")
    data = submission_zip(arena.competition, seed=1)
    response = arena.upload(token, data, message="dcgan, 20 epochs")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["status_url"].endswith(f"/api/submissions/{body['id']}")
    assert body["quota"] == {"limit": 5, "used": 1, "remaining": 4, "resets_at": "2026-11-28T00:00:00Z"}
    assert response.headers["X-RateLimit-Remaining"] == "4"
    assert response.headers["X-RateLimit-Reset"] == str(int(NEXT_MIDNIGHT.timestamp()))
    detail = arena.client.get(body["status_url"], headers=bearer(token)).json()
    assert (detail["status"], detail["message"], detail["size_bytes"]) == ("queued", "dcgan, 20 epochs", len(data))
    assert [e["to_status"] for e in detail["events"]] == ["queued"]
    assert upload_path(arena.settings.data_dir, detail["sha256"]).read_bytes() == data


def test_too_large_is_413_and_nothing_is_kept(make_app):
    arena = make_app(max_upload_bytes=1000)
    _, token = arena.create_team("a")
    response = arena.upload(token, submission_zip(arena.competition))  # a few KB: over the cap while copying
    assert response.status_code == 413 and response.json()["error"]["code"] == "upload_too_large"
    # Far beyond the cap the body is refused before it is read to the end.
    huge = arena.upload(token, b"\0" * (3 * 1024 * 1024))
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "upload_too_large"
    assert not list((arena.settings.data_dir / "uploads").rglob("*.zip"))
    assert arena.client.get("/api/teams/me", headers=bearer(token)).json()["quota"]["used"] == 0


def test_invalid_zip_is_422_with_the_validators_report_and_costs_no_quota(arena):
    _, token = arena.create_team("a")
    response = arena.upload(token, b"this is not a zip")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_submission" and "quota is unchanged" in error["message"]
    problems = error["detail"]["problems"]
    assert problems and {"rule", "file", "fix", "message"} <= set(problems[0])
    too_few = arena.upload(token, submission_zip(arena.competition, count=1))
    assert too_few.status_code == 422
    assert arena.client.get("/api/teams/me", headers=bearer(token)).json()["quota"]["used"] == 0


def test_the_same_file_twice_is_409_naming_the_earlier_submission(arena):
    _, token = arena.create_team("a")
    data = submission_zip(arena.competition, seed=3)
    first = arena.upload(token, data).json()["id"]
    again = arena.upload(token, data)
    assert again.status_code == 409
    assert again.json()["error"]["detail"]["submission_id"] == first
    assert f"submission {first}" in again.json()["error"]["message"]
    _, other = arena.create_team("b")  # another team may upload the same bytes (stored once)
    assert arena.upload(other, data).status_code == 202


def test_daily_quota_counts_accepted_uploads_and_resets_at_utc_midnight(make_app):
    arena = make_app(competition={"daily_limit": 2})
    _, token = arena.create_team("a")
    assert arena.upload(token, b"junk").status_code == 422  # rejected: not counted
    ids = [arena.upload(token, submission_zip(arena.competition, seed=s)).json()["id"] for s in (1, 2)]
    refused = arena.upload(token, submission_zip(arena.competition, seed=3))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert refused.json()["error"]["detail"]["quota"]["remaining"] == 0
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["Retry-After"] == str(12 * 3600)  # the clock stands at 12:00 UTC
    # A cancelled run gives its slot back.
    arena.client.post(f"/api/admin/submissions/{ids[0]}/cancel", json={}, headers=bearer(ADMIN_TOKEN))
    assert arena.upload(token, submission_zip(arena.competition, seed=3)).status_code == 202
    assert arena.upload(token, submission_zip(arena.competition, seed=4)).status_code == 429
    arena.clock.now = NEXT_MIDNIGHT - timedelta(seconds=1)
    assert arena.upload(token, submission_zip(arena.competition, seed=4)).status_code == 429
    arena.clock.now = NEXT_MIDNIGHT
    accepted = arena.upload(token, submission_zip(arena.competition, seed=4))
    assert accepted.status_code == 202 and accepted.json()["quota"]["remaining"] == 1


def test_after_the_deadline_uploads_are_403(make_app):
    arena = make_app(competition={"deadline": datetime(2026, 11, 27, 18, 0, tzinfo=UTC)})
    _, token = arena.create_team("a")
    assert arena.upload(token, submission_zip(arena.competition, seed=1)).status_code == 202
    arena.clock.now = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    late = arena.upload(token, submission_zip(arena.competition, seed=2))
    assert late.status_code == 403 and late.json()["error"]["code"] == "deadline_passed"


def test_team_sees_only_its_own_submissions(arena):
    _, a = arena.create_team("a")
    _, b = arena.create_team("b")
    arena.upload(a, submission_zip(arena.competition, seed=1))
    listed = arena.client.get(f"/api/competitions/{arena.slug}/submissions", headers=bearer(b)).json()
    assert listed == {"data": [], "count": 0}
    assert arena.client.get(f"/api/competitions/{arena.slug}/submissions", headers=bearer(a)).json()["count"] == 1
