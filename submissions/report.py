"""The validation report: every rule a submission can break, and the problems found in one zip.

`ValidationReport.model_dump(mode="json")` is the detail of the API's 422 error body, so its shape is a contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, Field, model_validator

# Rule id -> one-line description, in the order the validator checks them. `arena submission spec` prints these.
RULES: dict[str, str] = {
    "not_a_zip": "The upload must be a readable zip archive.",
    "encrypted_entry": "No entry may be encrypted (password-protected).",
    "too_many_entries": "The archive may hold at most max_entries entries.",
    "total_size_over_cap": "All entries together may inflate to at most max_uncompressed_bytes.",
    "compression_ratio_over_cap": "No entry may compress better than max_compression_ratio:1 (zip bomb).",
    "unsafe_path": "No absolute paths, drive letters or '..' components (zip slip).",
    "symlink": "No symbolic links.",
    "special_entry": "No device files, FIFOs or other special entries.",
    "duplicate_name": "No two entries may have the same name, also ignoring case.",
    "unknown_folder": "Only the class folders may sit at the top (wrapper folders above them are fine).",
    "missing_class": "Every class has its own folder.",
    "unexpected_entry": "Images sit directly inside their class folder; no other files or subfolders.",
    "wrong_count": "Each class folder holds exactly images_per_class images.",
    "corrupt_zip": "Every entry must inflate cleanly with a matching CRC.",
    "not_png": "Every image is a PNG file (checked by its signature, not its name).",
    "image_too_large": "Declared PNG dimensions under max_image_pixels, file size under max_image_file_bytes "
    "(both checked before decoding).",
    "wrong_size": "Every image is image_size x image_size pixels.",
    "wrong_mode": "Every image is 8-bit grayscale: no 16-bit, no alpha or transparency, no coloured palette.",
    "not_grayscale": "RGB images are accepted only when all three channels are equal.",
    "animated_png": "Every image is a single still frame (no APNG animation).",
    "corrupt_image": "Every image decodes completely.",
}

# Rule id -> one-line description, in the order the validator checks them. `arena submission spec` prints these
# for competitions that accept models (submissions.model checks them).
MODEL_RULES: dict[str, str] = {
    "kind_not_accepted": "The competition accepts this kind of submission (its submission_kinds).",
    "model_too_large": "The ONNX file is at most max_model_bytes.",
    "not_onnx": "The file is a readable ONNX model.",
    "external_data_initializer": "Self-contained: every initializer (weight) is stored inside the one file, none "
    "in external data files.",
    "external_data_attribute": "Self-contained: every tensor in a node attribute (a Constant's value or "
    "sparse_value, any tensor attribute) is stored inside the file.",
    "external_data_subgraph": "Self-contained: every tensor inside a subgraph (If/Loop/Scan bodies, at any depth) "
    "is stored inside the file.",
    "opset_out_of_range": "The model's ONNX opset is in the supported range (min_opset to max_opset).",
    "operator_not_allowed": "Only standard ONNX operators from the allowlist: no custom domains, control flow "
    "(Loop, If, Scan), random generators or local functions.",
    "metadata": "Metadata 'latent_size' (an integer) and 'classes' (a JSON list of exactly the competition's "
    "classes: the label order).",
    "wrong_inputs": "Inputs exactly 'z' float32 (N, latent_size) and 'label' int64 (N,).",
    "wrong_output": "One output 'images', float32 or uint8, shaped (N, 1, image_size, image_size).",
    "dry_run_timeout": "One batch samples within model_time_limit_s.",
    "dry_run_memory": "One batch samples within model_memory_bytes.",
    "dry_run_failed": "One batch runs without error and gives finite values of the right shape.",
}


class Problem(BaseModel):
    """One broken rule: where (file inside the zip, or the zip itself), what was found, and how to fix it."""

    rule: str
    file: str
    found: str
    fix: str
    message: str = ""

    @model_validator(mode="after")
    def _message(self) -> Problem:
        if not self.message:
            self.message = f"{self.file}: {self.rule}: {self.found}. Fix: {self.fix}"
        return self


class ValidationReport(BaseModel):
    """What the validator saw; `valid` is true exactly when there are no problems."""

    valid: bool = True
    problems: list[Problem] = Field(default_factory=list)
    truncated: bool = Field(default=False, description="Checking stopped at max_problems; more may exist.")
    entries: int = 0
    counts: dict[str, int] = Field(default_factory=dict, description="Images found per class folder.")
    root: str = Field(default="", description="Wrapper folders above the class folders, e.g. 'results/custom/'.")
    sha256: str = ""
    size_bytes: int = 0
    checked: str = Field(default="", description="A valid model: what it was found to be and what ran, in words.")

    def summary(self) -> str:
        if self.valid and self.checked:
            return f"valid: {self.checked}"
        if self.valid:
            return f"valid: {', '.join(f'{c} {n}' for c, n in self.counts.items())} images"
        more = " (more not listed)" if self.truncated else ""
        return f"invalid: {len(self.problems)} problem(s){more}"


EXAMPLES_PER_RULE = 3  # files named per broken rule when problems are shown grouped


@dataclass(frozen=True)
class ProblemGroup:
    """The problems of one rule: how many, the first few, what they found (once, when it is the same) and the fix."""

    rule: str
    count: int
    examples: list[Problem]
    same_found: str | None  # the one `found` text when every problem of the rule found the same thing
    fix: str

    @property
    def more(self) -> int:
        return self.count - len(self.examples)


def group_problems(problems: Iterable[Problem | dict]) -> list[ProblemGroup]:
    """Problems grouped by rule, in the order each rule first appears: twenty RGB images are one line with a count,
    not twenty identical lines. The report itself (the API's 422 detail) keeps every problem."""
    by_rule: dict[str, list[Problem]] = {}
    for problem in problems:
        item = problem if isinstance(problem, Problem) else Problem.model_validate(problem)
        by_rule.setdefault(item.rule, []).append(item)
    groups = []
    for rule, items in by_rule.items():
        found = {p.found for p in items}
        groups.append(ProblemGroup(rule=rule, count=len(items), examples=items[:EXAMPLES_PER_RULE],
                                   same_found=items[0].found if len(found) == 1 else None, fix=items[0].fix))
    return groups


class SubmissionError(Exception):
    """Base of every error the submissions package raises on purpose."""


class SubmissionInvalid(SubmissionError):
    """The zip breaks the format; `.report` lists every problem found (up to the spec's max_problems)."""

    def __init__(self, report: ValidationReport):
        self.report = report
        lines = [report.summary(), *(f"  - {p.message}" for p in report.problems)]
        super().__init__("\n".join(lines))


class PackError(SubmissionError):
    """The packer was given images it cannot turn into a valid submission."""
