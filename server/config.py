"""One place for every setting: environment variables with the prefix ARENA_ (or a .env file)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from limits import parse
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator
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

# Numbers where 0 means something (no retry delay; check the board on every request; on SIGTERM requeue at once).
ZERO_ALLOWED = frozenset({"retry_backoff_seconds", "leaderboard_max_age_seconds", "worker_shutdown_grace_seconds"})
# Tokens nobody may run a real competition with: empty, or copied from an example.
INSECURE_ADMIN_TOKENS = {"", "changeme", "change-me", "admin", "secret", "password"}


class InsecureSettingsError(ValueError):
    """A setting is unsafe outside the demo (for example a default admin token)."""


class Settings(BaseSettings):
    # NaN and infinities are refused like any malformed value (issue 22); the ranges are in `_in_range` below.
    model_config = SettingsConfigDict(env_prefix="ARENA_", env_file=".env", extra="ignore", allow_inf_nan=False)

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
    admin_token: str = Field("", description="Organizer bearer token; required outside --demo (which keeps one in "
                             "{data_dir}/secrets/admin-token).")
    secret_key: str = Field("", description="Signs session cookies; generated per process when empty (sign-ins then "
                            "end at each restart), except in --demo, which keeps one in {data_dir}/secrets/.")
    max_upload_bytes: int = Field(200 * 1024 * 1024, description="Uploads larger than this get HTTP 413.")
    max_reference_upload_bytes: int = Field(
        8 * 1024**3, ge=1, description="Largest reference statistics file a remote worker may upload (HTTP 413 "
        "past it): ~200 MB per class (three 2048x2048 float64 covariances and their square roots per split)."
    )
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
    model_dry_runs: int = Field(
        2, ge=1, description="Model dry runs one server process runs at once; further model uploads wait in a queue."
    )
    model_dry_runs_per_team: int = Field(
        1, ge=1, description="Dry runs of one team's models at once (and as many more of its uploads may wait)."
    )
    model_dry_run_queue: int = Field(
        8, ge=0, description="Model uploads that may wait for a dry-run slot, each up to ARENA_MODEL_DRY_RUN_SECONDS; "
        "the rest get 429 with Retry-After."
    )
    model_failure_budget: int = Field(
        3, ge=1, description="Models of one team that may fail while the worker samples them per UTC day (they give "
        "their quota back); past it the team's model uploads get 429 until midnight UTC. Shown to team and organizer."
    )
    upload_rate_limit_team: str = Field(
        "30/hour", description="Uploads (valid or not) one team may send (`limits` notation; empty: no limit). Per "
        "server process; organizers uploading for a team are not limited."
    )
    upload_rate_limit_client: str = Field(
        "120/hour", description="Uploads one client address may send, all teams together (`limits` notation; empty: "
        "no limit). Per server process."
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
        1.0, description="How long ago the database may have confirmed a leaderboard the API and the leaderboard "
        "page serve (0: checked on every request)."
    )
    team_creation_rate_limit: str = Field(
        "10/hour", description="Teams one client address may create by self-registration (`limits` notation, "
        "e.g. 10/hour or 3/minute; empty: no limit). Per server process; organizers are not limited."
    )
    join_code_failure_rate_limit: str = Field(
        "10/hour", description="Wrong join codes one client address may send (`limits` notation; empty: no limit); "
        "past it, its team creations are refused with 429 before the code is even compared. Per server process."
    )
    host: str = Field("127.0.0.1", description="Address `arena serve` binds to.")
    port: int = Field(8000, description="Port `arena serve` listens on.")
    public_url: str | None = Field(None, description="URL shown to teams (CLI hints); default http://host:port.")

    @field_validator("*")
    @classmethod
    def _in_range(cls, value: Any, info: ValidationInfo) -> Any:
        """Every number must be positive (a zero poll interval spins, a zero cap refuses everything), except those
        where 0 has a documented meaning; ports are ports; rate limits must parse."""
        name = info.field_name or ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            if name == "port" and not 1 <= value <= 65535:
                raise ValueError("a TCP port is 1 .. 65535")
            if value < 0 or (value == 0 and name not in ZERO_ALLOWED):
                raise ValueError("must be greater than 0" if name not in ZERO_ALLOWED else "must not be negative")
        if "rate_limit" in name and value.strip():
            try:
                parse(value)
            except ValueError as exc:
                raise ValueError(f"'{value}' is not a rate limit; write e.g. 10/hour or 3/minute") from exc
        return value

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

    _secret_key_generated: bool = PrivateAttr(False)

    @model_validator(mode="after")
    def _session_secret(self) -> Settings:
        if not self.secret_key:
            self.secret_key = secrets.token_urlsafe(32)
            self._secret_key_generated = True
        return self

    def require_secure(self) -> None:
        """Refuse to serve a real competition with a guessable admin token."""
        if self.admin_token.strip().lower() in INSECURE_ADMIN_TOKENS or len(self.admin_token) < 16:
            raise InsecureSettingsError(
                "ARENA_ADMIN_TOKEN is empty or too weak. Set a random one of at least 16 characters, e.g.\n"
                '  export ARENA_ADMIN_TOKEN="$(python -c "import secrets; print(secrets.token_urlsafe(32))")"\n'
                "or run `arena serve --demo`, which generates one and prints it."
            )

    def with_demo_secrets(self, kept_secret: Callable[[str], str]) -> Settings:
        """In --demo: a strong configured admin token and a configured session key stay; otherwise those kept in the
        data dir (`kept_secret(name)`, made on the first start), so a restart neither prints a new token nor signs
        everyone out."""
        update: dict[str, str] = {}
        try:
            self.require_secure()
        except InsecureSettingsError:
            update["admin_token"] = kept_secret("admin-token")
        if self._secret_key_generated:
            update["secret_key"] = kept_secret("session-key")
        return self.model_copy(update=update)


def get_settings() -> Settings:
    return Settings()
