"""A model submission's sampling seed: derived from its file hash under the server's secret salt.

Only the server computes it (the salt never leaves it): a local worker here, and the claim of a remote worker,
which is sent the seeds of its job (server/jobs/remote.py). The web tier imports this module; the sampling itself
(model_entries.py) is the workers'.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from server.config import Settings
from server.storage import kept_secret


def submission_seed(settings: Settings, sha256: str) -> int:
    """The seed of a model submission's first sample set (set k uses seed + k): from the file hash under the
    server's secret salt, so a rescore draws the same images and no team can know them in advance."""
    return model_seed(sampling_salt(settings.data_dir, settings.model_sampling_salt), sha256)


def sampling_salt(data_dir: Path, configured: str | None = None) -> bytes:
    """The server's secret salt for model sampling seeds: `configured` (ARENA_MODEL_SAMPLING_SALT) when set,
    otherwise `{data_dir}/secrets/sampling-salt` (`kept_secret`)."""
    return (configured or kept_secret(data_dir, "sampling-salt")).encode()


def model_seed(salt: bytes, sha256: str) -> int:
    """The sampling seed of a model submission: HMAC-SHA256 of its file hash under the server's salt (48 bits, so
    JSON readers keep it exact). The same file gets the same seed on this server, so a rescore draws the same
    images; without the salt a team cannot compute the noise its model will be sampled with, nor search for a file
    whose hash gives a lucky one."""
    digest = hmac.new(salt, bytes.fromhex(sha256), hashlib.sha256).digest()
    return int.from_bytes(digest[:6], "big")
