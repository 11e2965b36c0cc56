"""Scoring one entry needs no database (server/jobs/entries.py): what a worker anywhere runs on a claimed job."""

from __future__ import annotations

import pytest

from server.config import Settings
from server.jobs.entries import EntryJob, score_entry, write_entry_images
from server.storage import grid_path
from tests.utils.server_factories import submission_zip


def test_an_entry_is_scored_from_its_inputs_alone_and_its_images_written_after(scorer, scoring_competition,
                                                                                 tmp_path):
    upload = tmp_path / "entry.zip"
    upload.write_bytes(submission_zip(scoring_competition, seed=3))
    settings = Settings(data_dir=tmp_path / "data")
    stages: list[str] = []
    job = EntryJob(kind="zip", path=upload, sha256="0" * 64, competition=scoring_competition)
    entry = score_entry(job, scorer=scorer, settings=settings, stage=stages.append)
    assert entry.result.score_public == pytest.approx(entry.report.score_public)
    assert entry.result.score_public > 0
    assert entry.result.sample_sets is None and stages == []  # a zip has no sample sets to report on
    assert set(entry.images) == set(scoring_competition.classes)
    assert not (tmp_path / "data").exists()  # nothing written yet: the caller decides where the images go
    write_entry_images(settings.data_dir, 7, entry)
    assert all(grid_path(settings.data_dir, 7, cls).is_file() for cls in scoring_competition.classes)
