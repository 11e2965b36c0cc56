import json

import pytest

from server.competition_dir import Competition, CompetitionError
from tests.utils.competition import make_competition


def test_tiny_competition_loads_with_splits(tmp_path):
    comp = make_competition(tmp_path, train_per_class=4, test_per_class=6)
    assert comp.classes == ["with_mask", "without_mask"]
    assert len(comp.train_files("with_mask")) == 4
    assert len(comp.test_files("with_mask", "public")) == 3
    assert len(comp.test_files("with_mask", "private")) == 3
    assert len(comp.test_files("with_mask")) == 6
    assert all(p.is_file() for p in comp.test_files("without_mask"))


def test_manifest_hash_ignores_listing_order(tmp_path):
    comp = make_competition(tmp_path)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    shuffled = list(reversed(comp.manifest.files))
    assert comp.manifest.hash_entries(shuffled) == raw["dataset_hash"]


def test_missing_config_names_the_fix(tmp_path):
    with pytest.raises(CompetitionError, match="arena data demo"):
        Competition.load(tmp_path / "nowhere")


def test_the_pages_read_the_memorization_threshold_by_the_scoring_rule(tmp_path):
    """A number is in force at once; "auto" only once the references' summary holds the calibrated value."""
    from server.competition_dir import REFERENCE_SUMMARY_FILE, memorization_eps

    fixed = make_competition(tmp_path / "fixed", memorization_eps=0.2)
    assert memorization_eps(fixed) == {"with_mask": 0.2, "without_mask": 0.2}
    auto = make_competition(tmp_path / "auto")
    assert auto.config.memorization_eps == "auto" and memorization_eps(auto) == {}
    auto.references_dir.mkdir(parents=True, exist_ok=True)
    summary = {"auto_eps": {"with_mask": 0.03, "without_mask": 0.05}}
    (auto.references_dir / REFERENCE_SUMMARY_FILE).write_text(json.dumps(summary))
    assert memorization_eps(auto) == summary["auto_eps"]
