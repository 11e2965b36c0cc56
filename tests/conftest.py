"""Fixtures shared by every test module."""

from __future__ import annotations

import os

import pytest

# Keep tests off the user's real data dir and hub cache; each test that needs them gets a tmp_path.
os.environ.setdefault("ARENA_DATA_DIR", "/nonexistent-arena-data-dir-set-by-a-test")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh ARENA_DATA_DIR for one test."""
    path = tmp_path / "arena-data"
    path.mkdir()
    monkeypatch.setenv("ARENA_DATA_DIR", str(path))
    return path
