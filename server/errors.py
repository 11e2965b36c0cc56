"""Errors a user or organizer can cause, each with an HTTP status and a stable code.

Service functions raise these; the API turns them into `{"error": {"code", "message", "detail"}}` and the web pages
show their message. The message says what went wrong and how to fix it.
"""

from __future__ import annotations

from typing import Any


class ArenaError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.headers = headers or {}


class Unauthorized(ArenaError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ArenaError):
    status_code = 403
    code = "forbidden"


class DeadlinePassed(Forbidden):
    code = "deadline_passed"


class NotFound(ArenaError):
    status_code = 404
    code = "not_found"


class Conflict(ArenaError):
    status_code = 409
    code = "conflict"


class DuplicateSubmission(Conflict):
    code = "duplicate_submission"


class UploadTooLarge(ArenaError):
    status_code = 413
    code = "upload_too_large"


class InvalidSubmission(ArenaError):
    status_code = 422
    code = "invalid_submission"


class InvalidSettings(ArenaError):
    """Organizer settings that fail validation; `detail` maps each field to what is wrong with it."""

    status_code = 422
    code = "invalid_settings"


class QuotaExceeded(ArenaError):
    status_code = 429
    code = "quota_exceeded"


class InvalidInput(ArenaError, ValueError):
    """A text field breaks a rule (blank, too long, control characters). Also a ValueError, so a pydantic
    validator that raises it gives the API's usual 422 with the field named."""

    status_code = 422
    code = "invalid_input"


class RateLimited(ArenaError):
    status_code = 429
    code = "rate_limited"
