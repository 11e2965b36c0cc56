"""Weights resolution, the offline conversion and its verification against fid-helper's TorchScript."""

from __future__ import annotations

import json
import urllib.request

import pytest
from typer.testing import CliRunner

from server.cli import app
from server.scoring import WeightsNotFoundError
from server.scoring.weights import CONVERTED_SHA256, file_sha256, hub_cache_path, resolve_weights


def test_missing_weights_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="arena weights import"):
        resolve_weights(allow_download=False, allow_convert=False)


def test_missing_explicit_path_is_an_error_not_a_fallback(random_weights, tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"nowhere\.pth"):
        resolve_weights(tmp_path / "nowhere.pth")


def test_local_weights_are_used_without_network(random_weights, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted although the hub cache holds the weights")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    found = resolve_weights()
    assert (found.source, found.path) == ("hub-cache", hub_cache_path())


def test_failed_download_falls_through_to_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    found = resolve_weights()
    assert found.source == "converted" and found.path == hub_cache_path()
    assert found.sha256 == CONVERTED_SHA256  # the conversion is byte-for-byte reproducible


def test_converted_weights_load_through_pytorch_fids_own_loader(real_weights):
    from pytorch_fid.inception import InceptionV3

    model = InceptionV3([3])  # no patching: pytorch-fid finds the converted file in the hub cache
    assert model.blocks[0][0].bn.weight.eq(1).all()  # TF batch norm has no scale


def test_weights_verify_passes_with_converted_weights(real_weights):
    result = CliRunner().invoke(app, ["weights", "verify", "--samples", "1"])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output


def test_weights_verify_fails_on_other_weights(random_weights):
    result = CliRunner().invoke(app, ["weights", "verify", "--samples", "1"])
    assert result.exit_code == 1 and "FAIL" in result.output


def test_weights_status_reports_source_and_sha256(real_weights):
    result = CliRunner().invoke(app, ["weights", "status", "--json"])
    status = json.loads(result.output)
    assert status["source"] == "hub-cache"
    assert status["sha256"] == file_sha256(hub_cache_path()) == CONVERTED_SHA256
    assert status["origin"].startswith("converted")


def test_weights_status_without_weights_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["weights", "status"])
    assert result.exit_code == 1 and "arena weights import" in result.output


def test_weights_import_writes_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["weights", "import"])
    assert result.exit_code == 0, result.output
    assert file_sha256(hub_cache_path()) == CONVERTED_SHA256
    assert "exists" in CliRunner().invoke(app, ["weights", "import"]).output
