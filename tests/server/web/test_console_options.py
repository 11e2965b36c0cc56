"""What a competition accepts (`submission_kinds`) is edited wherever settings are (the settings page, `arena admin
settings`, `arena data prepare`, the new-competition form) and shown on the home card; the new-competition form
offers `arena data prepare`'s options and warns when a board has few held-out images."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from server.cli import app
from server.competition_dir import Competition, competitions_dir
from server.organizer.competition_setup import MIN_TEST_IMAGES_PER_SPLIT
from tests.server.data.trees import make_tree
from tests.utils.server_factories import SETTINGS_URL, Arena, config_file, csrf_of, form_of, wait_for_preparation


def test_the_settings_page_switches_model_submissions_on_with_its_effect_and_history(organizer):  # noqa: F811
    arena, client = organizer
    page = client.get(SETTINGS_URL).text
    assert '<select id="submission_kinds" name="submission_kinds">' in page
    assert "an ONNX generator the server samples" in page  # the effect, next to the field
    assert "images only: a zip of 8 images per class" in arena.client().get("/").text
    saved = client.post(SETTINGS_URL, data=form_of(arena, client, submission_kinds="model"))
    assert saved.status_code == 303, saved.text
    assert json.loads(config_file(arena).read_text())["submission_kinds"] == "model"
    assert "<code>submission_kinds</code>" in client.get(SETTINGS_URL).text  # recorded in the history
    assert "models only: an ONNX generator" in arena.client().get("/").text
    refused = client.post(SETTINGS_URL, data=form_of(arena, client, submission_kinds="videos"))
    assert refused.status_code == 422 and "submission_kinds" in refused.text
    assert json.loads(config_file(arena).read_text())["submission_kinds"] == "model"


def test_arena_data_prepare_sets_what_a_competition_accepts_and_warns_of_few_test_images(tmp_path):
    source = make_tree(tmp_path / "dataset", train=2, test=4, size=80)
    out = tmp_path / "comp"
    result = CliRunner().invoke(app, ["data", "prepare", "--source", str(source), "--out", str(out),
                                      "--images-per-class", "2", "--submission-kinds", "model"])
    assert result.exit_code == 0, result.output
    assert Competition.load(out).config.submission_kinds == "model"
    assert "accepts      model" in result.output
    assert "few held-out images: with_mask public (2)" in result.output
    assert f"under {MIN_TEST_IMAGES_PER_SPLIT} per class on a board" in result.output


def test_the_new_competition_form_offers_prepares_options_and_warns_of_few_test_images(organizer, tmp_path):  # noqa: F811
    arena, client = organizer
    source = make_tree(tmp_path / "dataset", train=3, test=4, size=80)
    # A test image copied from the training set: --dedupe leaves it out.
    shutil.copy(next((source / "train" / "with_mask").glob("*.png")), source / "test" / "with_mask" / "copy.png")
    form_page = client.get("/admin/new").text
    for field in ("dedupe", "validation", "small", "skip_bad", "image_size", "seed", "test_folder", "class_map",
                  "submission_kinds"):
        assert f'name="{field}"' in form_page, field
    started = client.post("/admin/new", data={
        "csrf_token": csrf_of(form_page), "slug": "masks", "images_per_class": "3", "public_fraction": "0.5",
        "folder": str(source), "dedupe": "1", "image_size": "32", "seed": "7", "submission_kinds": "both",
        "class_map": "masked=with_mask\nbare=without_mask"})
    assert started.status_code == 303, started.text
    done = " ".join(wait_for_preparation(client, "masks").split())
    assert 'data-state="done"' in done
    competition = Competition.load(competitions_dir(arena.settings.data_dir) / "masks")
    assert (competition.config.image_size, competition.config.submission_kinds) == (32, "both")
    assert sorted(competition.classes) == ["bare", "masked"]
    assert len(competition.test_files("masked", "public")) + len(competition.test_files("masked", "private")) == 4
    assert 'id="few-references"' in done and "masked public (2)" in done
    assert "biased upward" in done


@pytest.mark.parametrize(("fields", "message"), [
    ({"validation": "sometimes"}, "validation: one of train, test, ignore"),
    ({"image_size": "4"}, "image_size: a whole number of at least 8"),
    ({"test_folder": "/no/such/held-out"}, "no such folder on the server"),
    ({"submission_kinds": "videos"}, "submission_kinds: one of images, model, both"),
    ({"class_map": "with_mask"}, "write NAME=FOLDER, one per line"),
])
def test_bad_prepare_options_are_refused_on_the_form(organizer, tmp_path, fields, message):  # noqa: F811
    arena, client = organizer
    source = make_tree(tmp_path / "dataset", train=1, test=2, size=80)
    form = {"csrf_token": csrf_of(client.get("/admin/new").text), "slug": "fresh", "images_per_class": "3",
            "public_fraction": "0.5", "folder": str(source), **fields}
    response = client.post("/admin/new", data=form)
    assert response.status_code == 422 and message in response.text, response.text
    assert not (arena.settings.data_dir / "preparing" / "fresh").exists()


def test_a_deadline_in_the_past_is_saved_with_a_warning(organizer):  # noqa: F811
    arena, client = organizer
    saved = client.post(SETTINGS_URL, data=form_of(arena, client, deadline="2020-01-01 12:00"))
    assert saved.status_code == 303
    page = client.get(SETTINGS_URL).text
    assert 'class="notice warn"' in page
    assert "The deadline 2020-01-01 12:00 UTC is in the past: uploads are refused from now on" in page
    client.post(SETTINGS_URL, data=form_of(arena, client, deadline="2099-01-01 12:00"))
    assert "is in the past" not in client.get(SETTINGS_URL).text  # a future deadline saves quietly


def test_the_lock_counts_scored_entries_apart_from_those_only_received(organizer):  # noqa: F811
    from server.db.crud import get_competition
    from server.uploads.rules import create_submission

    arena, client = organizer
    arena.scored_submission(arena.alpha, 100.0, 110.0)
    arena.scored_submission(arena.beta, 90.0, 95.0)
    with arena.database.sessionmaker() as session:
        create_submission(session=session, competition=get_competition(session=session, slug="test-comp"),
                          team=arena.alpha, sha256="f" * 64, size_bytes=1)  # queued, not scored
    page = client.get(SETTINGS_URL).text
    assert "Locked: 2 entries were scored and 1 more received under this value." in page
    refused = client.post(SETTINGS_URL, data=form_of(arena, client, images_per_class="9"))
    assert refused.status_code == 409 and "3 entries (2 scored)" in refused.text


def test_a_worker_building_references_says_so_and_queued_teams_see_scoring_wait_for_it(organizer):  # noqa: F811
    from server.db.crud import get_competition
    from server.jobs.reference_builds import claim_next_build, record_progress, request_build
    from server.uploads.rules import create_submission

    arena, client = organizer
    with arena.database.sessionmaker() as session:
        row = get_competition(session=session, slug="test-comp")
        build = request_build(session=session, competition=row, reason="test")
        submission, _ = create_submission(session=session, competition=row, team=arena.alpha, sha256="e" * 64,
                                          size_bytes=1)
        total = build.images_total
    team = arena.client()
    arena.sign_in(team, arena.alpha_token)
    waiting = " ".join(team.get(f"/submissions/{submission.id}").text.split())
    assert "Scoring waits for the competition's reference statistics" in waiting
    assert "queued for a scoring worker" in waiting

    with arena.database.sessionmaker() as session:
        claimed = claim_next_build(session=session, worker_id=arena.worker_id, engine="torch")
        assert claimed is not None and claimed.id == build.id
        done = total // 4
        record_progress(session=session, build_id=build.id, lease_id=claimed.lease_id,
                        progress={"classes": {"with_mask": {"done": done, "total": total // 2},
                                              "without_mask": {"done": 0, "total": total - total // 2}},
                                  "stage": "with_mask train"})
    percent = int(100 * done / total)
    workers = " ".join(client.get("/admin").text.split())
    assert f"building reference statistics of test-comp ({percent}%)" in workers
    assert ">idle<" not in workers
    status = " ".join(team.get(f"/submissions/{submission.id}/status").text.split())
    assert f"being built now: <strong>{percent}%</strong> ({done:,} of {total:,} images)" in status


def test_sign_up_is_refused_where_the_organizer_creates_teams(data_dir):
    from server.db.crud import get_competition, list_teams

    arena = Arena(data_dir, self_registration=False)
    visitor = arena.client()
    page = visitor.get("/c/test-comp/join").text
    assert 'id="join-closed"' in page and 'id="join-form"' not in page
    assert 'id="create-team-link"' not in visitor.get("/c/test-comp").text
    refused = visitor.post("/c/test-comp/join", data={"csrf_token": csrf_of(visitor.get("/signin").text),
                                                      "name": "sneaky"})
    assert refused.status_code == 401 and "created by the organizer" in refused.text
    with arena.database.sessionmaker() as session:
        names = [t.name for t in list_teams(session=session, competition=get_competition(session=session,
                                                                                          slug="test-comp"))]
    assert "sneaky" not in names
