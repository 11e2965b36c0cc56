import json

import pytest

from server.competition import Competition, CompetitionError
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
