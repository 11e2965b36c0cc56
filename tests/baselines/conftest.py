"""Fixtures for the baselines' tests: tiny competitions and small models, one CPU thread."""

from __future__ import annotations

import pytest
import torch

from tests.utils.competition import make_competition


@pytest.fixture(autouse=True)
def one_thread():
    # The test machine's cores are shared; one thread avoids oversubscription stalls and keeps losses reproducible.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def competition(tmp_path):
    return make_competition(tmp_path / "comp", train_per_class=12, test_per_class=4, images_per_class=6)
