"""Reference entries against the real API app (SQLite): a baseline team is created once and reused on reruns."""

from __future__ import annotations

import pytest

from baselines.generate import generate_submission
from baselines.reference import ReferenceSubmissionError, submit_reference
from baselines.train import TrainOptions, new_run
from tests.utils.server_factories import ADMIN_TOKEN, bearer, close_app, open_app


@pytest.fixture
def server(data_dir, tmp_path):
    app = open_app(data_dir, f"sqlite:///{tmp_path / 'arena.db'}")
    with app.client as client:
        yield client, app.competition
    close_app(app)


def test_reference_entry_uses_one_baseline_team(server, tmp_path):
    client, competition = server
    trainer = new_run(TrainOptions(model="dcgan", data=str(competition.root), out=str(tmp_path / "runs"), steps=1,
                                   batch_size=4, overrides={"width": 8}))
    trainer.run()
    first = generate_submission(trainer.run_dir, tmp_path / "a.zip", device="cpu", seed=0)
    second = generate_submission(trainer.run_dir, tmp_path / "b.zip", device="cpu", seed=1)

    accepted = submit_reference(client, competition.slug, "dcgan", first, ADMIN_TOKEN)
    again = submit_reference(client, competition.slug, "dcgan", second, ADMIN_TOKEN)  # rerun: same team

    assert accepted["id"] != again["id"]
    teams = client.get(f"/api/admin/competitions/{competition.slug}/teams", headers=bearer(ADMIN_TOKEN)).json()
    assert [(t["name"], t["is_baseline"]) for t in teams["data"]] == [("baseline-dcgan", True)]


def test_wrong_organizer_token_is_explained(server, tmp_path):
    client, competition = server
    zip_path = tmp_path / "x.zip"
    zip_path.write_bytes(b"unused")
    with pytest.raises(ReferenceSubmissionError, match="creating team baseline-dcgan failed \\(401\\)"):
        submit_reference(client, competition.slug, "dcgan", zip_path, "not-the-admin-token")
