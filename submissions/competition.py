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
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

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


class CompetitionConfig(BaseModel):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    title: str
    description: str = ""
    classes: list[str] = Field(min_length=1)
    images_per_class: int = Field(1000, ge=1)
    image_size: int = Field(64, ge=8)
    mode: Literal["L"] = "L"
    metric: Literal["fid_sum"] = "fid_sum"
    public_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    memorization_eps: Literal["auto"] | float = "auto"
    daily_limit: int = Field(5, ge=1, description="Accepted submissions per team per UTC day.")
    final_selection_limit: int = Field(0, ge=0, description="0: best submission counts; N: teams pick up to N finals.")
    self_registration: bool = True
    join_code: str | None = Field(None, min_length=1, description="Self-registration needs this code (a course "
                                  "hands it out in class); never shown by the API.")
    submission_kinds: SubmissionKinds = Field(
        "images", description="images: zips of PNGs; model: an ONNX generator the server samples; both: either.")
    deadline: datetime | None = None
    status: CompetitionStatus = "open"
    baseline_rules: str = "Reference entries from the bundled baselines are shown on the leaderboard but not ranked."
    team_rules: str = "One account per team; no hand-picked or copied real images; the memorization check applies."

    @field_validator("deadline")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
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
