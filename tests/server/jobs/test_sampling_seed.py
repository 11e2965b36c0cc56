"""The sampling seed of a model submission: its file hash under a server secret, so a rescore draws the same images
and no team can compute them before it submits."""

from __future__ import annotations

import hashlib
import stat

import numpy as np

from server.config import Settings
from server.jobs.model_entries import sample_images
from server.jobs.sampling_seeds import sampling_salt, submission_seed
from submissions import SubmissionSpec
from tests.utils import onnx_models
from tests.utils.competition import make_competition


def test_the_sampling_salt_is_a_private_file_made_once(tmp_path):
    data_dir = tmp_path / "data"
    salt = sampling_salt(data_dir)
    path = data_dir / "secrets" / "sampling-salt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(salt) == 64
    assert sampling_salt(data_dir) == salt  # a restart reads it; nothing is remade
    assert sampling_salt(tmp_path / "other") != salt
    assert sampling_salt(data_dir, "a-configured-secret") == b"a-configured-secret"  # ARENA_MODEL_SAMPLING_SALT


def test_same_file_same_images_on_one_server_unpredictable_elsewhere(tmp_path):
    """The seed is the file hash under the server's secret: a restarted server (a rescore) draws the same images, a
    server with another salt (a team guessing) draws different ones, and the hash alone no longer names the seed."""
    model = onnx_models.generator(tmp_path / "g.onnx")
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    spec = SubmissionSpec.from_competition(make_competition(tmp_path / "comp", images_per_class=4))
    server, restarted, other = (Settings(data_dir=tmp_path / name) for name in ("a", "a", "b"))
    seeds = [submission_seed(settings, sha) for settings in (server, restarted, other)]
    assert seeds[0] == seeds[1] != seeds[2] and int(sha[:8], 16) not in seeds
    first, again, elsewhere = (sample_images(model, spec, settings, device="cpu", seed=seed)
                               for settings, seed in zip((server, restarted, other), seeds, strict=True))
    assert all(np.array_equal(first[c], again[c]) for c in spec.classes)
    assert not any(np.array_equal(first[c], elsewhere[c]) for c in spec.classes)
