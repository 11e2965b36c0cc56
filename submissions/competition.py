"""A competition directory: its config file, its manifest, and where its images live.

The plain description both sides share: teams read it offline (`arena submission spec|check|sample`), the server
registers and scores it. It imports nothing from `server`.

Layout written by `arena data demo` / `arena data prepare`:

    DIR/competition.json   CompetitionConfig (rules people read and organizers edit)
    DIR/manifest.json      every image: path, class, split (train | public | private), sha256; dataset_hash
    DIR/train/<class>/*.png   public training images
    DIR/test/<class>/*.png    held-out test images (split into public and private parts by the manifest)
    DIR/references/        scoring caches (reference statistics, memorization features)
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CONFIG_FILE = "competition.json"
MANIFEST_FILE = "manifest.json"
Split = Literal["train", "public", "private"]
# open: teams submit; closed: pages and boards stay, uploads are refused (before opening, or after the season);
# archived: read-only, still browsable (no uploads, no new teams, no setting changes until reopened).
CompetitionStatus = Literal["open", "closed", "archived"]
# What a competition accepts: image zips (the default), ONNX generators the server samples, or either.
SubmissionKinds = Literal["images", "model", "both"]


class CompetitionError(ValueError):
    """A competition directory is missing, incomplete or inconsistent."""


# The bounds of every setting, in one place: the config model below enforces them wherever a config enters (the
# settings form, `arena admin settings`, the API, a hand-edited competition.json), and the docs list them. A NaN or
# a 10^30 once reached the pages and workers and took the site down (issue 22).
MAX_TITLE_CHARS = 200  # competitions.title is VARCHAR(200)
MAX_TEXT_CHARS = 20_000  # description and rules (Markdown)
MAX_IMAGES_PER_CLASS = 50_000  # FID-50k, the largest set the literature uses
MAX_IMAGE_SIZE = 1024
MAX_DAILY_LIMIT = 1000
MAX_FINAL_SELECTION_LIMIT = 100
EPS_RULE = "'auto' or a number from 0 to 1 (a cosine distance; 0 turns the memorization check off)"
TEXT_WHITESPACE = frozenset("\n\r\t")


def control_character(value: str, *, multiline: bool) -> str | None:
    """The first control or invisible format character of a text (NUL breaks PostgreSQL's text columns, a
    right-to-left override makes one name render as another); line breaks and tabs are fine in multi-line text."""
    return next((char for char in value if not (multiline and char in TEXT_WHITESPACE)
                 and unicodedata.category(char) in ("Cc", "Cf", "Cs")), None)


class CompetitionConfig(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    description: str = Field("", max_length=MAX_TEXT_CHARS)
    classes: list[str] = Field(min_length=1)
    images_per_class: int = Field(1000, ge=1, le=MAX_IMAGES_PER_CLASS)
    image_size: int = Field(64, ge=8, le=MAX_IMAGE_SIZE)
    mode: Literal["L"] = "L"
    metric: Literal["fid_sum"] = "fid_sum"
    public_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    memorization_eps: Literal["auto"] | Annotated[float, Field(ge=0, le=1)] = Field("auto", description=EPS_RULE)
    daily_limit: int = Field(5, ge=1, le=MAX_DAILY_LIMIT, description="Accepted submissions per team per UTC day.")
    final_selection_limit: int = Field(0, ge=0, le=MAX_FINAL_SELECTION_LIMIT,
                                       description="0: best submission counts; N: teams pick up to N finals.")
    self_registration: bool = True
    join_code: str | None = Field(None, min_length=1, max_length=200, description="Self-registration needs this "
                                  "code (a course hands it out in class); never shown by the API.")
    submission_kinds: SubmissionKinds = Field(
        "images", description="images: zips of PNGs; model: an ONNX generator the server samples; both: either.")
    deadline: datetime | None = None
    status: CompetitionStatus = "open"
    baseline_rules: str = Field(
        "Reference entries from the bundled baselines are shown on the leaderboard but not ranked.",
        max_length=MAX_TEXT_CHARS)
    team_rules: str = Field(
        "One account per team; no hand-picked or copied real images; the memorization check applies.",
        max_length=MAX_TEXT_CHARS)

    @field_validator("deadline")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    @field_validator("memorization_eps", mode="before")
    @classmethod
    def _eps_in_range(cls, value: Any) -> Any:
        if value == "auto":
            return value
        try:
            number = float(value)  # the form and the CLI send text
        except (TypeError, ValueError):
            raise ValueError(f"'{value}' is not {EPS_RULE}") from None
        if isinstance(value, bool) or not (math.isfinite(number) and 0 <= number <= 1):
            raise ValueError(f"{value} is not {EPS_RULE}")
        return number

    @field_validator("title", "join_code")
    @classmethod
    def _one_printable_line(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or control_character(value, multiline=False)):
            raise ValueError("must be one line of visible characters (no control characters)")
        return value

    @field_validator("description", "team_rules", "baseline_rules")
    @classmethod
    def _printable_text(cls, value: str) -> str:
        bad = control_character(value, multiline=True)
        if bad is not None:
            raise ValueError(f"holds the control character U+{ord(bad):04X}; line breaks and tabs are the only "
                             "control characters allowed")
        return value


class ManifestEntry(BaseModel):
    path: str  # relative to the competition directory, POSIX separators
    cls: str = Field(alias="class")
    split: Split
    sha256: str

    model_config = {"populate_by_name": True}


class Manifest(BaseModel):
    dataset_hash: str
    files: list[ManifestEntry]
    # What `arena data prepare` found (splits, class mapping, left-out files, duplicates); not part of the hash.
    audit: dict[str, Any] | None = None

    @staticmethod
    def hash_entries(files: list[ManifestEntry]) -> str:
        """The dataset hash covers every (path, class, split, sha256), independent of listing order."""
        digest = hashlib.sha256()
        for entry in sorted(files, key=lambda e: e.path):
            digest.update(f"{entry.path}\0{entry.cls}\0{entry.split}\0{entry.sha256}\n".encode())
        return digest.hexdigest()

    @classmethod
    def build(cls, files: list[ManifestEntry], audit: dict[str, Any] | None = None) -> Manifest:
        ordered = sorted(files, key=lambda e: e.path)
        return cls(dataset_hash=cls.hash_entries(ordered), files=ordered, audit=audit)


@dataclass(frozen=True)
class Competition:
    """A loaded competition directory."""

    root: Path
    config: CompetitionConfig

    @classmethod
    def load(cls, root: str | Path) -> Competition:
        root = Path(root)
        config_path = root / CONFIG_FILE
        if not config_path.is_file():
            raise CompetitionError(
                f"{config_path}: no competition config here. Create a competition with "
                f"`arena data demo --out {root}` or `arena data prepare --source DATASET --out {root}`."
            )
        try:
            config = CompetitionConfig.model_validate_json(config_path.read_text())
        except ValueError as exc:
            raise CompetitionError(f"{config_path}: invalid competition config: {exc}") from exc
        return cls(root=root, config=config)

    @cached_property
    def manifest(self) -> Manifest:
        path = self.root / MANIFEST_FILE
        if not path.is_file():
            raise CompetitionError(f"{path}: manifest missing; rerun `arena data prepare` for this competition.")
        return Manifest.model_validate_json(path.read_text())

    @property
    def slug(self) -> str:
        return self.config.slug

    @property
    def classes(self) -> list[str]:
        return self.config.classes

    @property
    def references_dir(self) -> Path:
        return self.root / "references"

    def files(self, cls: str, *splits: Split) -> list[Path]:
        """Absolute paths of the images of one class in the given splits, in manifest (sorted) order."""
        wanted = set(splits)
        return [self.root / e.path for e in self.manifest.files if e.cls == cls and e.split in wanted]

    def train_files(self, cls: str) -> list[Path]:
        return self.files(cls, "train")

    def test_files(self, cls: str, split: Literal["public", "private", "all"] = "all") -> list[Path]:
        return self.files(cls, "public", "private") if split == "all" else self.files(cls, split)

    @property
    def accepts_uploads(self) -> bool:
        return self.config.status == "open"

    def is_past_deadline(self, now: datetime | None = None) -> bool:
        deadline = self.config.deadline
        return deadline is not None and (now or datetime.now(UTC)) >= deadline
