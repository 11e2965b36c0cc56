"""The submission format: spec, validator, packer and upload client. The one definition of what a team hands in."""

from submissions.pack import pack
from submissions.report import PackError, Problem, SubmissionError, SubmissionInvalid, ValidationReport
from submissions.spec import SubmissionSpec
from submissions.validate import DecodedSubmission, validate_zip

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
