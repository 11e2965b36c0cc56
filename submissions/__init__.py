"""The submission format: spec, validator, packer and upload client. The one definition of what a team hands in.

Names are imported on first use (PEP 562) so that `arena --help` does not pay for numpy, PIL and pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from submissions.packer import pack
    from submissions.report import PackError, Problem, SubmissionError, SubmissionInvalid, ValidationReport
    from submissions.spec import SubmissionSpec
    from submissions.validate import DecodedSubmission, validate_zip

_HOMES = {
    "pack": "submissions.packer",
    "PackError": "submissions.report",
    "Problem": "submissions.report",
    "SubmissionError": "submissions.report",
    "SubmissionInvalid": "submissions.report",
    "ValidationReport": "submissions.report",
    "SubmissionSpec": "submissions.spec",
    "DecodedSubmission": "submissions.validate",
    "validate_zip": "submissions.validate",
}
__all__ = [
    "DecodedSubmission",
    "PackError",
    "Problem",
    "SubmissionError",
    "SubmissionInvalid",
    "SubmissionSpec",
    "ValidationReport",
    "pack",
    "validate_zip",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'submissions' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
