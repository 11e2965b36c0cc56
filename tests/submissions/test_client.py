"""The upload client's pure parts: token lookup order, error explanations on constructed HTTP responses (every
variant of reset headers, which one server can't produce), the score table. test_client_server.py runs the client
against the real server."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from submissions.client import (
    ArenaClient,
    SubmitError,
    explain_http_error,
    quota_reset,
    resolve_token,
    store_token,
)
from submissions.report import Problem, ValidationReport
from submissions.results import score_table

NOW = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)
URL = "http://arena.test/api/competitions/face-mask/submissions"


def response(status: int, *, code: str = "", message: str = "", detail=None, headers=None, text=None):
    request = httpx.Request("POST", URL)
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    body = {"error": {"code": code, "message": message, "detail": detail}}
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "must_say"),
    [
        (401, ["token", "--token", "ARENA_TOKEN", "arena login"]),
        (403, ["Not allowed", "--competition"]),
        (404, ["competition slug"]),
        (409, ["already submitted", "Nothing was queued"]),
        (413, ["size limit", "class folders"]),
        (500, ["not your fault", "organizer"]),
    ],
)
def test_each_status_gets_an_explanation_and_what_to_do(status, must_say):
    error = explain_http_error(response(status, code="some_code", message="server words"))
    assert isinstance(error, SubmitError) and error.status_code == status
    text = str(error)
    assert text.startswith(f"HTTP {status} some_code:")
    assert all(phrase in text for phrase in must_say), text
    assert "server words" in text


def test_422_prints_the_validator_report():
    report = ValidationReport(valid=False, problems=[
        Problem(rule="wrong_size", file="with_mask/3.png", found="32x32 pixels, expected 64x64", fix="resize"),
        Problem(rule="missing_class", file="without_mask/", found="no folder", fix="add it"),
    ])
    error = explain_http_error(response(422, code="invalid_submission", message="invalid",
                                        detail=report.model_dump(mode="json")))
    text = str(error)
    assert error.report == report
    assert "[wrong_size] with_mask/3.png" in text and "32x32 pixels" in text and "[missing_class]" in text
    assert "quota is unchanged" in text and "arena submission check" in text


def test_422_without_a_report_still_explains():
    text = str(explain_http_error(response(422, text='{"detail": [{"loc": ["body", "file"], "msg": "required"}]}')))
    assert "rejected the zip" in text and "required" in text


@pytest.mark.parametrize(
    ("headers", "detail", "expected"),
    [
        ({"Retry-After": "5400"}, None, datetime(2026, 11, 27, 22, 30, tzinfo=UTC)),
        ({"Retry-After": "Sat, 28 Nov 2026 00:00:00 GMT"}, None, datetime(2026, 11, 28, tzinfo=UTC)),
        ({"X-RateLimit-Reset": str(int(datetime(2026, 11, 28, tzinfo=UTC).timestamp()))}, None,
         datetime(2026, 11, 28, tzinfo=UTC)),
        ({}, {"resets_at": "2026-11-28T00:00:00Z"}, datetime(2026, 11, 28, tzinfo=UTC)),
        ({}, {"quota": {"used": 5, "limit": 5, "resets_at": "2026-11-28T00:00:00+00:00"}},
         datetime(2026, 11, 28, tzinfo=UTC)),
        # the server sends both; the absolute time wins because it does not depend on the client's clock
        ({"Retry-After": "60", "X-RateLimit-Reset": str(int(datetime(2026, 11, 28, tzinfo=UTC).timestamp()))}, None,
         datetime(2026, 11, 28, tzinfo=UTC)),
    ],
)
def test_429_says_when_the_quota_resets(headers, detail, expected):
    reply = response(429, code="quota_exceeded", message="limit", detail=detail, headers=headers)
    assert quota_reset(reply, detail, now=NOW) == expected
    text = str(explain_http_error(reply, now=NOW))
    assert f"{expected:%Y-%m-%d %H:%M} UTC" in text and "Daily submission limit" in text


def test_429_without_a_time_points_to_the_competition_page():
    text = str(explain_http_error(response(429, message="limit"), now=NOW))
    assert "competition page" in text and "midnight UTC" in text


def test_non_json_error_body_is_quoted():
    text = str(explain_http_error(response(502, text="<html>Bad gateway</html>")))
    assert "HTTP 502" in text and "Bad gateway" in text


def test_token_order_flag_then_environment_then_config_file(tmp_path):
    config = tmp_path / "config.toml"
    assert resolve_token("http://a", None, environ={}, path=config) is None
    store_token("http://a/", "from-file", path=config)
    store_token("http://b", 'other"quote', path=config)
    assert resolve_token("http://a", None, environ={}, path=config) == "from-file"
    assert resolve_token("http://b/", None, environ={}, path=config) == 'other"quote'
    assert resolve_token("http://a", None, environ={"ARENA_TOKEN": "from-env"}, path=config) == "from-env"
    assert resolve_token("http://a", "from-flag", environ={"ARENA_TOKEN": "from-env"}, path=config) == "from-flag"
    assert config.stat().st_mode & 0o077 == 0


def test_broken_config_file_is_named(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[servers\n")
    with pytest.raises(SubmitError, match="config.toml"):
        resolve_token("http://a", None, environ={}, path=config)


# The API's SubmissionPublic for a team before the private reveal: private fields are left out.
SCORED = {
    "id": 7, "status": "scored", "score_public": 3101.25, "score_private": None,
    "class_scores": {
        "with_mask": {"fid_public": 101.25, "memorization_distance": 0.21, "memorization_eps": 0.03,
                      "penalized": False},
        "without_mask": {"fid_public": 3000.0, "memorization_distance": 0.0, "memorization_eps": 0.03,
                         "penalized": True},
    },
}


def test_score_table_shows_each_class_and_the_total():
    lines = score_table(SCORED).splitlines()
    assert lines[0] == "Submission 7: scored"
    assert lines[3].split() == ["with_mask", "101.250", "hidden", "0.210", "0.030", "no"]
    assert lines[4].split() == ["without_mask", "penalized", "hidden", "0.000", "0.030", "YES"]
    assert lines[5].split() == ["total", "penalized", "hidden"]
    assert "ranks below every unpenalized one" in lines[6]


def test_a_penalized_class_shows_its_raw_fid_and_no_interval():
    penalized = {"fid_public": 1731139361.2, "raw_fid_public": 173.11, "se_public": 210052898.0,
                 "memorization_distance": 1e-7, "memorization_eps": 0.05, "penalized": True}
    honest = {"fid_public": 101.25, "raw_fid_public": 101.25, "se_public": 1.0, "memorization_distance": 0.21,
              "memorization_eps": 0.05, "penalized": False}
    table = score_table({"id": 8, "status": "scored", "score_public": 1731139462.45, "score_public_se": 3.0,
                                "class_scores": {"with_mask": penalized, "without_mask": honest}})
    lines = table.splitlines()
    assert lines[3].split()[:4] == ["with_mask", "penalized", "(raw", "173.110)"] and "±" not in lines[3]
    assert "101.250 ± 1.960" in lines[4]
    assert lines[5].split()[:4] == ["total", "penalized", "(raw", "274.360)"] and "1731139" not in table


def test_score_table_shows_the_95_percent_interval_when_the_server_sends_it():
    # The API after the reveal: per-class se_<split>, totals' score_<split>_se; ± is 1.96 standard errors.
    scored = {**SCORED, "score_private": 3201.5, "score_public_se": 2.0, "score_private_se": 1.0,
              "class_scores": {cls: {**values, "fid_private": values["fid_public"] + 50.0, "se_public": 1.0,
                                     "se_private": 0.5, "penalized": False}
                               for cls, values in SCORED["class_scores"].items()}}
    lines = score_table(scored).splitlines()
    assert lines[3].split() == ["with_mask", "101.250", "±", "1.960", "151.250", "±", "0.980", "0.210", "0.030", "no"]
    assert lines[5].split() == ["total", "3101.250", "±", "3.920", "3201.500", "±", "1.960"]
    assert lines[6].startswith("± is the half-width of a 95% interval")
    # A ScoreReport dump (`arena score --json`) names the totals' errors se_<split>.
    report = {k: v for k, v in scored.items() if not k.endswith("_se")} | {"se_public": 0.5, "se_private": 0.0}
    assert score_table(report).splitlines()[5].split() == ["total", "3101.250", "±", "0.980", "3201.500", "±",
                                                                  "0.000"]


def test_score_table_without_intervals_has_no_interval_note():
    assert "±" not in score_table(SCORED)  # entries scored before the bootstrap existed


def test_failed_submission_shows_the_reason():
    assert score_table({"id": 3, "status": "failed", "error": "worker crashed"}) == (
        "Submission 3: failed (worker crashed)")


def test_unreachable_server_is_explained():
    with pytest.raises(SubmitError, match="Cannot reach http://127.0.0.1:9"):
        ArenaClient("http://127.0.0.1:9", "t", timeout=2).competitions()

