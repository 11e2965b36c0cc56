"""The spec: built from a competition or the server settings, and described in words."""

from __future__ import annotations

from server.config import Settings
from submissions import SubmissionSpec
from submissions.report import RULES
from tests.utils.competition import make_competition


def test_from_competition_and_config_agree(tmp_path):
    competition = make_competition(tmp_path, images_per_class=5, image_size=32)
    spec = SubmissionSpec.from_competition(competition, max_problems=3)
    assert spec == SubmissionSpec.from_competition(competition.config, max_problems=3)
    assert (spec.classes, spec.images_per_class, spec.image_size, spec.max_problems) == (
        ["with_mask", "without_mask"], 5, 32, 3)


def test_offline_defaults_equal_the_server_defaults(tmp_path):
    competition = make_competition(tmp_path)
    assert SubmissionSpec.from_competition(competition) == SubmissionSpec.from_competition(
        competition, **Settings().zip_limits)


def test_the_server_limits_reach_the_spec(tmp_path):
    settings = Settings(max_zip_entries=7, max_uncompressed_bytes=8, max_compression_ratio=9, max_image_pixels=10)
    spec = SubmissionSpec.from_competition(make_competition(tmp_path), **settings.zip_limits)
    assert (spec.max_entries, spec.max_uncompressed_bytes, spec.max_compression_ratio, spec.max_image_pixels) == (
        7, 8, 9, 10)


def test_api_listing_validates_directly():
    listing = {"slug": "x", "title": "X", "classes": ["a"], "images_per_class": 2, "image_size": 8, "mode": "L"}
    assert SubmissionSpec.model_validate(listing).classes == ["a"]


def test_description_names_every_rule_and_the_numbers(tmp_path):
    text = SubmissionSpec.from_competition(make_competition(tmp_path, images_per_class=7)).describe()
    assert all(rule in text for rule in RULES)
    assert "exactly 7 PNG images of 64x64" in text and "with_mask/" in text
