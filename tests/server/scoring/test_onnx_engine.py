"""The onnxruntime engine: engine choice, the cached ONNX export (fingerprinted, rebuilt when stale or corrupt)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from server.scoring.onnx_engine import (
    EngineUnavailableError,
    OnnxPool3,
    ensure_export,
    export_path,
    export_state,
    pool3_module,
    resolve_engine,
)
from server.scoring.weights import file_sha256, hub_cache_path


@pytest.fixture
def exported(random_weights):
    """The random weights and their export (built once per session: it lives next to the session's weights)."""
    weights = hub_cache_path()
    sha = file_sha256(weights)
    return weights, sha, ensure_export(weights, sha)


def test_auto_is_onnxruntime_on_cpu_and_torch_on_cuda():
    assert resolve_engine("auto", "cpu") == "onnxruntime"
    assert resolve_engine("auto", "cuda") == "torch"
    assert resolve_engine("torch", "cpu") == "torch"
    with pytest.raises(EngineUnavailableError, match="--engine torch"):
        resolve_engine("onnxruntime", "cuda")
    with pytest.raises(ValueError, match="unknown engine 'tensorrt'"):
        resolve_engine("tensorrt", "cpu")  # type: ignore[arg-type]


def test_export_sits_next_to_the_weights_with_their_fingerprint(exported):
    weights, sha, path = exported
    assert path == export_path(weights) and path.parent == weights.parent
    record = json.loads(path.with_name(path.name + ".json").read_text())
    assert record["weights_sha256"] == sha and record["onnx_sha256"] == file_sha256(path)
    assert export_state(path, sha) == "current"
    assert export_state(path, "0" * 64) == "stale"  # other weights: never used for them


def test_export_runs_any_image_size_like_the_torch_module(exported):
    weights, _, path = exported
    images = np.random.default_rng(3).random((2, 3, 32, 48), dtype=np.float32)  # resized to 299 inside the graph
    with torch.inference_mode():
        expected = pool3_module(weights)(torch.from_numpy(images)).numpy()
    ours = OnnxPool3(path)(images)
    assert ours.shape == (2, 2048)
    assert np.abs(ours - expected).max() <= 1e-4 * np.abs(expected).max()


def test_a_corrupt_export_is_rebuilt_not_used(exported):
    weights, sha, path = exported
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte in the middle of the weights: still loadable
    path.write_bytes(bytes(damaged))
    assert export_state(path, sha) == "corrupt"
    assert ensure_export(weights, sha) == path
    assert export_state(path, sha) == "current" and path.read_bytes() == original  # the export is reproducible
