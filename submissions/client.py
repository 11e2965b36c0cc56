"""Upload client for an FID Arena server: token lookup, competition spec, upload with progress, status polling,
and a plain explanation for every HTTP error a team can run into.

    client = ArenaClient("https://arena.example.org", token)
    spec = client.spec("face-mask")
    created = client.upload(Path("submission.zip"), "face-mask", message="DCGAN, 135 epochs")
    final = client.wait(created["id"])
"""

from __future__ import annotations

import email.utils
import json
import os
import time
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import platformdirs
from tqdm import tqdm

from submissions.report import SubmissionError, ValidationReport, group_problems
from submissions.spec import SubmissionSpec

TOKEN_ENV = "ARENA_TOKEN"
FINAL_STATUSES = {"scored", "failed", "cancelled"}


class SubmitError(SubmissionError):
    """The server refused a request; the message explains why in plain words and says what to do."""

    def __init__(self, message: str, *, status_code: int | None = None, report: ValidationReport | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.report = report


def config_path() -> Path:
    """The per-user config file, e.g. ~/.config/fid-arena/config.toml on Linux."""
    return platformdirs.user_config_path("fid-arena") / "config.toml"


def _server_key(server: str) -> str:
    return server.rstrip("/")


def resolve_token(server: str, token: str | None = None, *, environ: Mapping[str, str] = os.environ,
                  path: Path | None = None) -> str | None:
    """--token wins, then $ARENA_TOKEN, then the config file's entry for this server."""
    if token:
        return token
    if environ.get(TOKEN_ENV):
        return environ[TOKEN_ENV]
    path = path or config_path()
    if not path.is_file():
        return None
    try:
        servers = tomllib.loads(path.read_text()).get("servers", {})
    except tomllib.TOMLDecodeError as exc:
        raise SubmitError(f"{path}: not valid TOML ({exc}); fix or delete it and run `arena login` again") from exc
    return servers.get(_server_key(server), {}).get("token")


def store_token(server: str, token: str, *, path: Path | None = None) -> Path:
    """Remember a team token for one server (file readable by the user only)."""
    path = path or config_path()
    servers = {}
    if path.is_file():
        servers = tomllib.loads(path.read_text()).get("servers", {})
    servers[_server_key(server)] = {"token": token}
    # JSON string escapes are valid TOML basic strings, so json.dumps quotes keys and values safely.
    lines = [f"[servers.{json.dumps(url)}]\ntoken = {json.dumps(entry['token'])}\n" for url, entry in servers.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def error_parts(response: httpx.Response) -> tuple[str, str, Any]:
    """(code, message, detail) from the API's {"error": {...}} body, tolerating other bodies."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text.strip()[:300], None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", "")), error.get("detail")
    if isinstance(body, dict) and "detail" in body:  # FastAPI's own request errors
        return "", str(body["detail"])[:300], body["detail"]
    return "", str(body)[:300], None


def quota_reset(response: httpx.Response, detail: Any = None, *, now: datetime | None = None) -> datetime | None:
    """When a 429's quota resets. Absolute times win (X-RateLimit-Reset, a reset time in the detail, an HTTP-date
    Retry-After) because they don't depend on the client's clock; Retry-After in seconds is the fallback."""
    candidates = [response.headers.get("X-RateLimit-Reset")]
    if isinstance(detail, dict):
        candidates += [detail.get(k) for k in ("resets_at", "reset_at")]
        if isinstance(detail.get("quota"), dict):
            candidates += [detail["quota"].get(k) for k in ("resets_at", "reset_at")]
    for value in candidates:
        when = _parse_time(value)
        if when is not None:
            return when
    retry_after = (response.headers.get("Retry-After") or "").strip()
    if retry_after.isdigit():
        return datetime.fromtimestamp((now or datetime.now(UTC)).timestamp() + int(retry_after), UTC)
    try:
        return email.utils.parsedate_to_datetime(retry_after).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    text = str(value).strip()
    if text.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(text), UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _validation_report(detail: Any) -> ValidationReport | None:
    try:
        return ValidationReport.model_validate(detail)
    except ValueError:
        return None


def explain_http_error(response: httpx.Response, *, now: datetime | None = None) -> SubmitError:
    """A SubmitError whose message says in plain words what happened and what to do about it."""
    code, message, detail = error_parts(response)
    status = response.status_code
    said = f" The server said: {message}" if message else ""
    report = _validation_report(detail) if status == 422 else None
    if status == 401:
        text = ("Not signed in: the server did not accept your team token (missing, mistyped or revoked). Pass "
                f"--token, set {TOKEN_ENV}, or store it once with `arena login --server URL --token TOKEN`. Tokens "
                "are shown once when a team registers; ask the organizer for a new one if it is lost.")
    elif status == 403:
        text = ("Not allowed: your token is valid but may not do this here (a token of another team or "
                "competition, a disabled team, or a closed competition). Check --competition and the token.")
    elif status == 404:
        text = "Not found: check the server URL and the competition slug (listed at GET /api/competitions)."
    elif status == 409:
        text = ("Conflict with the current state: typically this exact zip was already submitted, or the "
                "competition no longer takes submissions. Nothing was queued; change the zip or check the "
                "competition page.")
    elif status == 413:
        text = ("Too large: the upload is over the server's size limit. A valid submission of 64x64 PNGs is a "
                "few MB; zip only the class folders with their PNG images (see `arena submission spec`).")
    elif status == 422:
        text = "The server rejected the zip; nothing was queued and your daily quota is unchanged."
        if report is not None:
            text += "\n" + format_report(report)
        text += "\nFix the problems, then check locally with `arena submission check FILE.zip --competition DIR`."
    elif status == 429:
        reset = quota_reset(response, detail, now=now)
        when = f"It resets at {reset:%Y-%m-%d %H:%M} UTC ({_in_words(reset, now)})." if reset else (
            "The competition page shows when it resets (daily limits reset at midnight UTC).")
        text = f"Daily submission limit reached: nothing was queued. {when} Submit again after that."
    elif status >= 500:
        text = ("The server failed while handling the request (not your fault). Try again in a few minutes; if it "
                "keeps failing, tell the organizer and include the message below.")
    else:
        text = f"Unexpected answer HTTP {status}."
    label = f"HTTP {status}" + (f" {code}" if code else "")
    if report is None:  # a printed report already says everything the server's message would
        text += said
    return SubmitError(f"{label}: {text}", status_code=status, report=report)


def _in_words(when: datetime, now: datetime | None) -> str:
    seconds = max(0, int((when - (now or datetime.now(UTC))).total_seconds()))
    hours, minutes = divmod(seconds // 60, 60)
    return f"in {hours} h {minutes} min" if hours else f"in {minutes} min"


def format_report(report: ValidationReport) -> str:
    """The readable list printed by `arena submission check` and for a 422."""
    if report.valid:
        return f"OK {report.summary()} (sha256 {report.sha256[:16]}…, {report.size_bytes} bytes)"
    lines = [f"INVALID: {len(report.problems)} problem(s)" + (" (more not listed)" if report.truncated else "")]
    for number, group in enumerate(group_problems(report.problems), 1):
        files = ", ".join(p.file if group.same_found else f"{p.file} ({p.found})" for p in group.examples)
        more = f" and {group.more} more" if group.more else ""
        count = f"{group.count} files: " if group.count > 1 else ""
        lines.append(f"{number:3}. [{group.rule}] {count}{files}{more}")
        if group.same_found:
            lines.append(f"     found: {group.same_found}")
        lines.append(f"     fix:   {group.fix}")
    return "\n".join(lines)


class _ProgressReader:
    """A file wrapper that advances a progress bar as httpx reads the upload."""

    def __init__(self, stream: BinaryIO, bar: tqdm):
        self.stream, self.bar = stream, bar
        self.name = getattr(stream, "name", "submission.zip")

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.bar.update(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self.stream.seek(offset, whence)
        self.bar.n = position
        return position

    def tell(self) -> int:
        return self.stream.tell()

    def fileno(self) -> int:
        return self.stream.fileno()


class ArenaClient:
    """The team's side of the REST API."""

    def __init__(self, server: str, token: str | None = None, *, http: httpx.Client | None = None,
                 timeout: float = 120.0):
        self.server = _server_key(server)
        self.http = http or httpx.Client(timeout=timeout)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = path if path.startswith("http") else f"{self.server}{path}"
        try:
            response = self.http.request(method, url, headers=self.headers, **kwargs)
        except httpx.HTTPError as exc:
            raise SubmitError(f"Cannot reach {self.server} ({type(exc).__name__}: {exc}); check --server and your "
                              "network.") from exc
        if response.status_code >= 400:
            raise explain_http_error(response)
        return response.json()

    def competitions(self) -> list[dict[str, Any]]:
        listing = self._request("GET", "/api/competitions")
        return listing["data"] if isinstance(listing, dict) and "data" in listing else listing

    def spec(self, slug: str) -> SubmissionSpec:
        """The competition's format as the server lists it (the server re-checks with its own limits)."""
        listing = self.competitions()
        for competition in listing:
            if competition.get("slug") == slug:
                return SubmissionSpec.model_validate(competition)
        slugs = ", ".join(c.get("slug", "?") for c in listing) or "none"
        raise SubmitError(f"No competition '{slug}' on {self.server} (it has: {slugs}); check --competition.")

    def upload(self, path: Path, slug: str, *, message: str | None = None, progress: bool = True) -> dict[str, Any]:
        """POST the zip (or .onnx model) as multipart field `file`; returns the 202 body {id, status, status_url,
        quota}."""
        with open(path, "rb") as stream, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                               desc="uploading", disable=not progress) as bar:
            return self._post_submission(slug, path.name, _ProgressReader(stream, bar), message)

    def upload_bytes(self, data: bytes, filename: str, slug: str, *, message: str | None = None) -> dict[str, Any]:
        """The same upload from memory (a zip written to a BytesIO, a model exported in a notebook); `filename`'s
        suffix tells a model (.onnx) from a zip."""
        return self._post_submission(slug, filename, data, message)

    def _post_submission(self, slug: str, filename: str, content: Any, message: str | None) -> dict[str, Any]:
        kind = "application/octet-stream" if filename.lower().endswith(".onnx") else "application/zip"
        files = {"file": (filename, content, kind)}
        data = {"message": message} if message else {}
        return self._request("POST", f"/api/competitions/{slug}/submissions", files=files, data=data)

    def submission(self, submission_id: int | str) -> dict[str, Any]:
        return self._request("GET", f"/api/submissions/{submission_id}")

    def create_team(self, slug: str, name: str, members: list[str] | None = None) -> dict[str, Any]:
        """Register a team (the client's token: none where self-registration is open, else the organizer's);
        the body holds its token, shown this once."""
        return self._request("POST", f"/api/competitions/{slug}/teams", json={"name": name, "members": members or []})

    def me(self) -> dict[str, Any]:
        """The calling team and today's quota."""
        return self._request("GET", "/api/teams/me")

    def rotate_token(self) -> dict[str, Any]:
        """A new token for the calling team; the old one stops working at once."""
        return self._request("POST", "/api/teams/me/token")

    # Organizer routes (the client's token is the admin token): reference entries use them.

    def admin_create_team(self, slug: str, name: str, members: list[str], *, is_baseline: bool) -> dict[str, Any]:
        body = {"name": name, "members": members, "is_baseline": is_baseline}
        return self._request("POST", f"/api/admin/competitions/{slug}/teams", json=body)

    def admin_teams(self, slug: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/api/admin/competitions/{slug}/teams")["data"]

    def admin_new_token(self, team_id: int) -> dict[str, Any]:
        return self._request("POST", f"/api/admin/teams/{team_id}/token")

    def admin_submissions(self, competition: str | None = None, status: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
        """Every team's submissions, newest first (the `limit` newest; the server caps it), optionally of one
        competition and one status."""
        params = {key: value for key, value in {"competition": competition, "status": status}.items() if value}
        return self._request("GET", "/api/admin/submissions", params={**params, "limit": limit})["data"]

    def wait(self, submission_id: int | str, *, poll_seconds: float = 2.0, timeout: float = 3600.0,
             on_status: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll until the submission is scored, failed or cancelled; on_status sees every change of status."""
        deadline, last = time.monotonic() + timeout, None
        while True:
            current = self.submission(submission_id)
            if current.get("status") != last and on_status is not None:
                on_status(current)
            last = current.get("status")
            if last in FINAL_STATUSES:
                return current
            if time.monotonic() > deadline:
                raise SubmitError(f"Submission {submission_id} is still '{last}' after {timeout:.0f} s; check it "
                                  f"later at {self.server}/api/submissions/{submission_id}.")
            time.sleep(poll_seconds)
