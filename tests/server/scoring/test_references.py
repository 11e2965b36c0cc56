"""The reference cache: what it stores, when it is reused and when it is rebuilt."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from server.competition_dir import REFERENCE_CACHE_FILE, Competition, reference_cache_file
from server.competition_dir import REFERENCE_SUMMARY_FILE as SUMMARY_FILE
from server.scoring import Scorer
from server.scoring.features import FeatureExtractor
from server.scoring.memorization import auto_eps
from server.scoring.references import expected_metadata, load_references


def test_cache_holds_statistics_memorization_set_and_eps(random_competition):
    competition, scorer = random_competition
    references = scorer.prepare(competition)
    leftovers = sorted(p.name for p in competition.references_dir.iterdir())
    # no temporary files left behind
    assert leftovers == sorted([reference_cache_file(scorer.extractor.engine), SUMMARY_FILE])
    engine = scorer.extractor.engine
    assert references.metadata == expected_metadata(competition, scorer.extractor.weights_sha256, engine)
    for cls in competition.classes:
        refs = references.classes[cls]
        assert {split: s.count for split, s in refs.stats.items()} == {"public": 2, "private": 2, "all": 4}
        root, sigma = refs.stats["all"].sqrt_sigma, refs.stats["all"].sigma
        np.testing.assert_allclose(root @ root, sigma, atol=1e-8 * np.abs(sigma).max())
        assert refs.memory.shape == (2 + 4, 2048)
        np.testing.assert_allclose(np.linalg.norm(refs.memory, axis=1), 1.0, rtol=1e-5)
        train, test = refs.memory[:2], refs.memory[2:]
        assert refs.auto_eps == pytest.approx(auto_eps(test, train)) and refs.auto_eps > 0
    summary = json.loads((competition.references_dir / SUMMARY_FILE).read_text())
    assert set(summary["auto_eps"]) == set(competition.classes)


def test_cache_keeps_the_raw_test_features_and_the_memory_files(random_competition):
    competition, scorer = random_competition
    engine = scorer.extractor.engine
    stored = load_references(competition.references_dir / reference_cache_file(engine),
                             expected_metadata(competition, scorer.extractor.weights_sha256, engine))
    assert stored is not None
    refs = stored.classes["with_mask"]
    public = scorer.extractor.features_of_files(competition.test_files("with_mask", "public"))
    np.testing.assert_array_equal(refs.test_features["public"], public)  # float32 storage is exact
    assert refs.stats["public"].mu == pytest.approx(public.mean(axis=0), rel=1e-12)
    assert refs.test_features["all"].shape == (4, 2048) and refs.train_count == 2
    assert [refs.memory_file(competition, "with_mask", row)[0] for row in range(6)] == [
        "train", "train", "public", "public", "private", "private"]
    split, file = refs.memory_file(competition, "with_mask", 4)
    assert (competition.root / file) == competition.test_files("with_mask", "private")[0]


def test_an_older_cache_without_the_test_features_is_rebuilt(random_competition, tmp_path):
    competition, scorer = random_competition
    copy = Competition.load(shutil.copytree(competition.root, tmp_path / "copy"))
    engine = scorer.extractor.engine
    path = copy.references_dir / reference_cache_file(engine)
    with np.load(path) as archive:
        old = {k: archive[k] for k in archive.files if "/test/" not in k and not k.endswith("train_count")}
    metadata = json.loads(str(old["metadata"]))
    del metadata["contents_version"]
    old["metadata"] = np.array(json.dumps(metadata, sort_keys=True))
    np.savez(path, **old)
    rebuilt = scorer.prepare(copy, progress=False)
    assert rebuilt.metadata["contents_version"] == expected_metadata(copy, scorer.extractor.weights_sha256, engine)[
        "contents_version"]
    assert rebuilt.classes["with_mask"].test_features["public"].shape == (2, 2048)


def test_a_new_process_reuses_the_cache(random_competition, random_weights, monkeypatch):
    competition, scorer = random_competition

    def no_features(*args, **kwargs):
        raise AssertionError("references recomputed although the cache is valid")

    monkeypatch.setattr(FeatureExtractor, "features_of_files", no_features)
    fresh = Scorer(FeatureExtractor(device="cpu", engine=scorer.extractor.engine)).prepare(competition)
    np.testing.assert_array_equal(fresh.classes["with_mask"].memory,
                                  scorer.prepare(competition).classes["with_mask"].memory)


@pytest.mark.parametrize(
    "changed",
    ["dataset_hash", "weights_sha256", "engine", "dims", "preprocessing_version", "counts", "contents_version"],
)
def test_cache_is_stale_when_an_input_changes(random_competition, changed):
    competition, scorer = random_competition
    metadata = expected_metadata(competition, scorer.extractor.weights_sha256, scorer.extractor.engine)
    path = competition.references_dir / reference_cache_file(scorer.extractor.engine)
    assert load_references(path, metadata) is not None
    altered = {**metadata, changed: {"with_mask": {"train": 99}} if changed == "counts" else "other"}
    assert load_references(path, altered) is None


def test_dataset_change_changes_the_metadata(random_competition, tmp_path):
    competition, scorer = random_competition
    copy = tmp_path / "copy"
    shutil.copytree(competition.root, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"] = [e for e in manifest["files"] if e["path"] != "train/with_mask/00000.png"]
    manifest["dataset_hash"] = "changed"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    changed = expected_metadata(Competition.load(copy), scorer.extractor.weights_sha256, "onnxruntime")
    assert load_references(copy / "references" / reference_cache_file("onnxruntime"), changed) is None


def test_a_corrupt_or_half_written_cache_is_ignored(random_competition, tmp_path):
    competition, scorer = random_competition
    metadata = expected_metadata(competition, scorer.extractor.weights_sha256, scorer.extractor.engine)
    broken = tmp_path / REFERENCE_CACHE_FILE
    broken.write_bytes((competition.references_dir / reference_cache_file(scorer.extractor.engine)).read_bytes()[:1000])
    assert load_references(broken, metadata) is None
    broken.write_bytes(b"not a zip")
    assert load_references(broken, metadata) is None


def test_eps_is_the_configured_number_or_the_calibrated_one(random_competition):
    competition, scorer = random_competition
    references = scorer.prepare(competition)
    strict = Competition(root=competition.root, config=competition.config.model_copy(update={"memorization_eps": 0.3}))
    for cls in competition.classes:
        assert references.eps(competition, cls) == references.classes[cls].auto_eps
        assert references.eps(strict, cls) == 0.3


def test_each_engine_keeps_its_own_cache_and_never_reads_the_others(random_competition, random_weights, tmp_path):
    competition, scorer = random_competition
    assert scorer.extractor.engine == "onnxruntime"  # the CPU default when onnxruntime is installed
    copy = tmp_path / "copy"
    shutil.copytree(competition.root, copy)
    competition = Competition.load(copy)
    torch_refs = Scorer(FeatureExtractor(device="cpu", engine="torch")).prepare(competition)
    assert torch_refs.path.name == REFERENCE_CACHE_FILE and torch_refs.metadata["engine"] == "torch"
    onnx_path = competition.references_dir / reference_cache_file("onnxruntime")
    onnx_metadata = expected_metadata(competition, scorer.extractor.weights_sha256, "onnxruntime")
    assert load_references(onnx_path, onnx_metadata) is not None  # the torch build left it alone
    # a torch cache put where the onnxruntime one belongs is refused (and so rebuilt), not mixed in
    shutil.copy(torch_refs.path, onnx_path)
    assert load_references(onnx_path, onnx_metadata) is None
