"""What a competition expects from a submission zip, plus the safety limits the validator enforces."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from submissions.competition import Competition, CompetitionConfig, SubmissionKinds
from submissions.report import MODEL_RULES, RULES

# The one definition of the zip limits' defaults: server.config.Settings takes them from here (ARENA_MAX_* override
# them on a server), and teams validating offline need neither the server's settings nor its environment.
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_COMPRESSION_RATIO = 200
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
DEFAULT_MAX_PROBLEMS = 50
# Model submissions (submissions.model): file cap, and the dry run's memory cap and time limit.
DEFAULT_MAX_MODEL_BYTES = 100 * 2**20
DEFAULT_MODEL_MEMORY_BYTES = 4 * 2**30
DEFAULT_MODEL_TIME_LIMIT_S = 60.0
MIN_OPSET, MAX_OPSET = 13, 21  # what the pinned onnxruntime runs; older opsets lack today's Resize and BatchNorm


class SubmissionSpec(BaseModel):
    """The format of one competition's submissions. Unknown keys are ignored so an API listing validates directly."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    classes: list[str] = Field(min_length=1)
    images_per_class: int = Field(ge=1)
    image_size: int = Field(ge=1)
    mode: Literal["L"] = "L"
    submission_kinds: SubmissionKinds = "images"
    max_entries: int = Field(DEFAULT_MAX_ENTRIES, ge=1)
    max_uncompressed_bytes: int = Field(DEFAULT_MAX_UNCOMPRESSED_BYTES, ge=1)
    max_compression_ratio: int = Field(DEFAULT_MAX_COMPRESSION_RATIO, ge=1)
    max_image_pixels: int = Field(DEFAULT_MAX_IMAGE_PIXELS, ge=1)
    max_problems: int = Field(DEFAULT_MAX_PROBLEMS, ge=1)
    max_model_bytes: int = Field(DEFAULT_MAX_MODEL_BYTES, ge=1)
    model_memory_bytes: int = Field(DEFAULT_MODEL_MEMORY_BYTES, ge=2**28)
    model_time_limit_s: float = Field(DEFAULT_MODEL_TIME_LIMIT_S, gt=0)

    @property
    def accepts_images(self) -> bool:
        return self.submission_kinds in ("images", "both")

    @property
    def accepts_model(self) -> bool:
        return self.submission_kinds in ("model", "both")

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
            submission_kinds=config.submission_kinds,
            **limit_overrides,
        )

    def describe(self) -> str:
        """The rules in words, for `arena submission spec` and the upload page."""
        accepted = {"images": "a zip of images", "model": "an ONNX generator (.onnx) the server samples",
                    "both": "a zip of images or an ONNX generator (.onnx) the server samples"}
        parts = [f"Submission kinds: {self.submission_kinds} ({accepted[self.submission_kinds]}).\n"]
        if self.accepts_images:
            parts.append(self._describe_zip())
        if self.accepts_model:
            parts.append(self._describe_model())
        return "\n".join(parts)

    def _describe_model(self) -> str:
        size = self.image_size
        rules = "\n".join(f"  {rule:<27} {text}" for rule, text in MODEL_RULES.items())
        return (
            "A model: one ONNX file holding a conditional generator (z, label) -> images:\n\n"
            "  inputs   z      float32 (N, latent_size), drawn by the server from N(0, 1)\n"
            f"           label  int64 (N,), an index into the metadata's class order\n"
            f"  output   images float32 (N, 1, {size}, {size}) in [-1, 1] (or uint8)\n"
            f"  metadata latent_size (integer), classes (JSON list of {self.classes} in label order)\n\n"
            f"The server samples {self.images_per_class} images per class with a seed fixed by the submission and "
            "scores\nthem like a zip. "
            f"Limits: {self.max_model_bytes / 2**20:.0f} MiB file, {self.model_memory_bytes / 2**30:.1f} GiB memory, "
            f"{self.model_time_limit_s:g} s for one test batch, opset {MIN_OPSET} to {MAX_OPSET}.\n\n"
            f"Rules, in the order they are checked:\n{rules}\n"
        )

    def _describe_zip(self) -> str:
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
