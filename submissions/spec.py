"""What a competition expects from a submission zip, plus the safety limits the validator enforces."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from submissions.competition import Competition, CompetitionConfig
from submissions.report import RULES

# The one definition of the zip limits' defaults: server.config.Settings takes them from here (ARENA_MAX_* override
# them on a server), and teams validating offline need neither the server's settings nor its environment.
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_COMPRESSION_RATIO = 200
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
DEFAULT_MAX_PROBLEMS = 50


class SubmissionSpec(BaseModel):
    """The format of one competition's submissions. Unknown keys are ignored so an API listing validates directly."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    classes: list[str] = Field(min_length=1)
    images_per_class: int = Field(ge=1)
    image_size: int = Field(ge=1)
    mode: Literal["L"] = "L"
    max_entries: int = Field(DEFAULT_MAX_ENTRIES, ge=1)
    max_uncompressed_bytes: int = Field(DEFAULT_MAX_UNCOMPRESSED_BYTES, ge=1)
    max_compression_ratio: int = Field(DEFAULT_MAX_COMPRESSION_RATIO, ge=1)
    max_image_pixels: int = Field(DEFAULT_MAX_IMAGE_PIXELS, ge=1)
    max_problems: int = Field(DEFAULT_MAX_PROBLEMS, ge=1)

    @property
    def max_image_file_bytes(self) -> int:
        """Largest PNG file accepted: 8 bytes per pixel covers uncompressed RGB plus metadata; 1 MiB at least.

        Checked before an entry is read, so an entry whose directory record understates its compression (a ratio
        of 1 declared for a deflate bomb) can't be inflated into memory either."""
        return max(2**20, 8 * self.image_size * self.image_size)

    @classmethod
    def from_competition(cls, competition: Competition | CompetitionConfig, **limit_overrides: Any) -> SubmissionSpec:
        """The competition's format; a server passes its limits (`**settings.zip_limits`)."""
        config = competition.config if isinstance(competition, Competition) else competition
        return cls(
            classes=list(config.classes),
            images_per_class=config.images_per_class,
            image_size=config.image_size,
            mode=config.mode,
            **limit_overrides,
        )

    def describe(self) -> str:
        """The rules in words, for `arena submission spec` and the upload page."""
        size = f"{self.image_size}x{self.image_size}"
        width = max(len(c) for c in self.classes) + 1
        layout = "\n".join(f"    {c + '/':<{width}}  {self.images_per_class} PNG files" for c in self.classes)
        rules = "\n".join(f"  {rule:<27} {text}" for rule, text in RULES.items())
        return (
            f"A zip with one folder per class, each holding exactly {self.images_per_class} PNG images of "
            f"{size} pixels, 8-bit grayscale:\n\n"
            f"  submission.zip\n{layout}\n\n"
            "Accepted as well: RGB PNGs whose three channels are equal (torchvision's save_image), palette PNGs\n"
            "with a gray palette (both converted losslessly), wrapper folders above the class folders\n"
            "(results/custom/with_mask/...), and macOS/Windows metadata (__MACOSX/, .DS_Store, ._*, Thumbs.db),\n"
            "which is ignored. File names inside a class folder are free.\n\n"
            f"Limits: at most {self.max_entries} entries, {self.max_uncompressed_bytes / 2**20:.0f} MiB "
            f"uncompressed, compression ratio {self.max_compression_ratio}:1 per entry, "
            f"{self.max_image_pixels} pixels declared per PNG.\n\n"
            f"Rules, in the order they are checked:\n{rules}\n"
        )
