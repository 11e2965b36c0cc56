"""One place for every setting: environment variables with the prefix ARENA_ (or a .env file)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from submissions.spec import (
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_ENTRIES,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_MODEL_BYTES,
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
    DEFAULT_MODEL_MEMORY_BYTES,
    DEFAULT_MODEL_TIME_LIMIT_S,
)

# Tokens nobody may run a real competition with: empty, or copied from an example.
INSECURE_ADMIN_TOKENS = {"", "changeme", "change-me", "admin", "secret", "password"}


class InsecureSettingsError(ValueError):
    """A setting is unsafe outside the demo (for example a default admin token)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARENA_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./arena-data"), description="Competitions, uploads, caches and the SQLite DB.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite at {data_dir}/arena.db. PostgreSQL: postgresql+psycopg://..."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Scoring device; auto picks CUDA if present.")
    precision: Literal["exact", "tf32", "fp16"] = Field(
        "exact", description="exact = fp32 with TF32 off (default); tf32/fp16 are faster, see docs/BENCHMARKS.md."
    )
    fid_engine: Literal["auto", "torch", "onnxruntime"] = Field(
        "auto", description="Feature engine: auto = torch on CUDA, onnxruntime on CPU (about 2x eager torch there)."
    )
    fid_weights: Path | None = Field(None, description="Path to pt_inception-2015-12-05-6726825d.pth (optional).")
    fid_weights_download: bool = Field(
        True, description="Try pytorch-fid's official download (10 s timeout) when no local FID weights exist."
    )
    admin_token: str = Field("", description="Organizer bearer token; required outside --demo.")
    secret_key: str = Field("", description="Signs session cookies; generated per process when empty.")
    max_upload_bytes: int = Field(200 * 1024 * 1024, description="Uploads larger than this get HTTP 413.")
    max_zip_entries: int = Field(DEFAULT_MAX_ENTRIES, description="Most entries a submission zip may hold.")
    max_uncompressed_bytes: int = Field(
        DEFAULT_MAX_UNCOMPRESSED_BYTES, description="Most bytes a submission may inflate to."
    )
    max_compression_ratio: int = Field(
        DEFAULT_MAX_COMPRESSION_RATIO, description="Highest compression ratio of one zip entry (zip bombs)."
    )
    max_image_pixels: int = Field(
        DEFAULT_MAX_IMAGE_PIXELS, description="Largest declared PNG size, checked before decoding."
    )
    max_model_bytes: int = Field(DEFAULT_MAX_MODEL_BYTES, description="Largest ONNX model a team may submit.")
    model_memory_bytes: int = Field(
        DEFAULT_MODEL_MEMORY_BYTES, description="Host memory cap of the process that samples a model: RLIMIT_DATA "
        "on CPU, and a watchdog that kills it when its resident memory passes the cap (CPU and CUDA)."
    )
    model_gpu_memory_bytes: int = Field(
        DEFAULT_MODEL_MEMORY_BYTES, ge=2**28, description="GPU memory cap (onnxruntime's gpu_mem_limit) when a model "
        "is sampled on CUDA."
    )
    model_dry_run_seconds: float = Field(
        DEFAULT_MODEL_TIME_LIMIT_S, description="Wall-clock limit of the one-batch dry run when a model is uploaded."
    )
    model_sampling_seconds: float = Field(
        1800.0, description="Wall-clock limit of sampling one image set from a model; past it the submission fails."
    )
    model_sampling_threads: int = Field(2, ge=1, description="CPU threads onnxruntime uses to sample a model.")
    model_sampling_salt: str = Field(
        "", description="Secret mixed into model sampling seeds; empty: made once in {data_dir}/secrets/sampling-salt. "
        "Workers with separate data dirs need the same value."
    )
    model_sample_sets: int = Field(
        5, ge=1, description="Image sets sampled from a model with fresh seeds; their spread is its score interval."
    )
    worker_heartbeat_seconds: float = Field(5.0, description="How often a worker reports that it is alive.")
    worker_timeout_seconds: float = Field(120.0, description="A job of a worker silent this long is requeued.")
    max_attempts: int = Field(3, description="Scoring attempts (scoring errors) before a submission is marked failed.")
    max_worker_crashes: int = Field(
        4, ge=1, description="A submission whose scoring killed this many distinct workers is failed as a poison pill "
        "(a worker dying otherwise never uses up the submission's attempts)."
    )
    retry_backoff_seconds: float = Field(30.0, description="Wait before retry n is base * 2**(n-1) seconds.")
    worker_poll_seconds: float = Field(1.0, description="How often an idle worker looks for queued submissions.")
    worker_shutdown_grace_seconds: float = Field(
        120.0, description="On SIGTERM a worker finishes its job this long at most, then requeues it and exits."
    )
    leaderboard_max_age_seconds: float = Field(
        1.0, description="How often the API and the leaderboard page check a leaderboard against the database "
        "(0: on every request)."
    )
    team_creation_rate_limit: str = Field(
        "10/hour", description="Teams one client address may create by self-registration (`limits` notation, "
        "e.g. 10/hour or 3/minute; empty: no limit). Per server process; organizers are not limited."
    )
    host: str = Field("127.0.0.1", description="Address `arena serve` binds to.")
    port: int = Field(8000, description="Port `arena serve` listens on.")
    public_url: str | None = Field(None, description="URL shown to teams (CLI hints); default http://host:port.")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'arena.db').resolve()}"

    @property
    def zip_limits(self) -> dict[str, int | float]:
        """The submission limits under `SubmissionSpec`'s names: the one mapping from ARENA_MAX_* and ARENA_MODEL_*
        to the spec (and the API)."""
        return {"max_entries": self.max_zip_entries, "max_uncompressed_bytes": self.max_uncompressed_bytes,
                "max_compression_ratio": self.max_compression_ratio, "max_image_pixels": self.max_image_pixels,
                "max_model_bytes": self.max_model_bytes, "model_memory_bytes": self.model_memory_bytes,
                "model_time_limit_s": self.model_dry_run_seconds}

    @property
    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @model_validator(mode="after")
    def _session_secret(self) -> Settings:
        if not self.secret_key:
            self.secret_key = secrets.token_urlsafe(32)
        return self

    def require_secure(self) -> None:
        """Refuse to serve a real competition with a guessable admin token."""
        if self.admin_token.strip().lower() in INSECURE_ADMIN_TOKENS or len(self.admin_token) < 16:
            raise InsecureSettingsError(
                "ARENA_ADMIN_TOKEN is empty or too weak. Set a random one of at least 16 characters, e.g.\n"
                '  export ARENA_ADMIN_TOKEN="$(python -c "import secrets; print(secrets.token_urlsafe(32))")"\n'
                "or run `arena serve --demo`, which generates one and prints it."
            )

    def with_demo_admin_token(self) -> Settings:
        """In --demo, keep a strong configured token or generate one (printed by `arena serve`)."""
        try:
            self.require_secure()
            return self
        except InsecureSettingsError:
            return self.model_copy(update={"admin_token": secrets.token_urlsafe(24)})


def get_settings() -> Settings:
    return Settings()
