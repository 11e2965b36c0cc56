"""Model submissions: a valid ONNX generator passes and samples; each broken rule is reported with its fix."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from submissions import SubmissionInvalid, SubmissionSpec
from submissions.model import validate_model, validate_submission
from submissions.orphans import reap_orphans, sampling_processes
from submissions.report import MODEL_RULES
from submissions.sampling import (
    SamplingFailed,
    SamplingJob,
    choose_providers,
    provider_name,
    run_capped,
    sample_model,
    sampling_command,
)
from tests.utils import onnx_models
from tests.utils.competition import make_competition


@pytest.fixture
def spec(tmp_path):
    competition = make_competition(tmp_path / "comp", images_per_class=5)
    return SubmissionSpec.from_competition(competition).model_copy(
        update={"model_memory_bytes": 2 * 2**30, "model_time_limit_s": 20.0})


def rules_of(path, spec, **kwargs) -> list[str]:
    with pytest.raises(SubmissionInvalid) as caught:
        validate_model(path, spec, **kwargs)
    problems = caught.value.report.problems
    assert all(p.file == path.name and p.found and p.fix for p in problems)
    return [p.rule for p in problems]


def test_a_valid_generator_passes_and_samples_deterministically(spec, tmp_path):
    info = validate_model(onnx_models.generator(tmp_path / "g.onnx"), spec)
    assert (info.latent_size, info.classes, len(info.sha256)) == (4, ["with_mask", "without_mask"], 64)
    job = SamplingJob(model=str(info.path), labels=[0, 1], per_class=5, latent_size=4, image_size=64, seed=7,
                      batch_size=3)
    first = sample_model(job, memory_bytes=2**31, time_limit_s=30)
    assert first.shape == (2, 5, 64, 64) and first.dtype == np.uint8 and first.std() > 0
    assert np.array_equal(first, sample_model(job, memory_bytes=2**31, time_limit_s=30))
    other = sample_model(SamplingJob(**{**job.__dict__, "seed": 8}), memory_bytes=2**31, time_limit_s=30)
    assert not np.array_equal(first, other)


def test_custom_operator_is_rejected(spec, tmp_path):
    assert rules_of(onnx_models.custom_op(tmp_path / "custom.onnx"), spec) == ["operator_not_allowed"]


def test_a_loop_is_rejected_before_it_runs(spec, tmp_path):
    assert rules_of(onnx_models.looping(tmp_path / "loop.onnx"), spec) == ["operator_not_allowed"]


def test_wrong_output_shape_declared_and_at_run_time(spec, tmp_path):
    declared = onnx_models.generator(tmp_path / "declared.onnx", out_shape=("batch", 3, 64, 64))
    assert rules_of(declared, spec) == ["wrong_output"]
    # Declared right, but the graph makes 32x128 images: caught by the dry run.
    lying = onnx_models.generator(tmp_path / "lying.onnx", image_shape=(-1, 1, 32, 128))
    assert rules_of(lying, spec) == ["dry_run_failed"]


def test_metadata_and_inputs_are_checked(spec, tmp_path):
    wrong_classes = onnx_models.generator(tmp_path / "c.onnx", classes=["cat", "dog"])
    assert rules_of(wrong_classes, spec) == ["metadata"]
    assert rules_of(onnx_models.generator(tmp_path / "m.onnx", metadata={}), spec) == ["metadata"]
    assert rules_of(onnx_models.generator(tmp_path / "o.onnx", opset=9), spec) == ["opset_out_of_range"]


def test_a_file_over_the_cap_is_rejected_unread(spec, tmp_path):
    huge = tmp_path / "huge.onnx"
    with huge.open("wb") as handle:  # a sparse 200 MB file: costs no disk and no time
        handle.truncate(200 * 10**6)
    assert os.path.getsize(huge) == 200 * 10**6 > spec.max_model_bytes
    assert rules_of(huge, spec) == ["model_too_large"]


def test_not_onnx(spec, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    assert rules_of(junk, spec) == ["not_onnx"]


def test_unbounded_allocation_is_stopped_by_the_memory_cap(spec, tmp_path):
    assert rules_of(onnx_models.unbounded_allocation(tmp_path / "alloc.onnx"), spec) == ["dry_run_memory"]


def test_the_watchdog_alone_stops_a_model_whose_memory_grows_past_the_cap(tmp_path):
    """The CUDA path sets no rlimit: the resident-memory watchdog must stop a model filling 2 GiB on its own."""
    path = onnx_models.unbounded_allocation(tmp_path / "grow.onnx", elements=2**29)
    job = SamplingJob(model=str(path), labels=[0], per_class=2, latent_size=4, image_size=64, seed=0)
    cap = 512 * 2**20
    started = time.monotonic()
    with pytest.raises(SamplingFailed) as caught:
        run_capped(sampling_command(job, tmp_path / "out.npy"), memory_bytes=cap, time_limit_s=60,
                   kernel_limit=False)
    assert caught.value.kind == "memory" and "over the cap of 512 MiB, and was stopped" in str(caught.value)
    used_mib = float(str(caught.value).split()[3])
    assert 512 < used_mib < 2048 and time.monotonic() - started < 30  # stopped on its way, not at the end
    # The same model under the kernel limit (the CPU path) fails at its allocation, before filling anything.
    with pytest.raises(SamplingFailed) as caught:
        sample_model(job, memory_bytes=cap, time_limit_s=60)
    assert caught.value.kind == "memory" and "needs more than the memory cap" in str(caught.value)


@pytest.mark.parametrize(("device", "available", "expected", "says_why"), [
    ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"], False),
    ("cuda", ["CPUExecutionProvider"], ["CPUExecutionProvider"], True),  # onnxruntime without GPU support
    ("cuda:1", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"],
     False),
])
def test_providers_follow_the_device_and_what_onnxruntime_offers(device, available, expected, says_why):
    providers, why = choose_providers(device, available, gpu_memory_bytes=3 * 2**30)
    assert [provider_name(p) for p in providers] == expected and (why is not None) == says_why
    if why:
        assert "install onnxruntime-gpu" in why and "sampling on the CPU" in why
    if expected[0] == "CUDAExecutionProvider":
        options = providers[0][1]
        assert options["device_id"] == "1" and options["gpu_mem_limit"] == str(3 * 2**30)


def test_the_installed_runtime_decides_the_fallback():
    """This machine's onnxruntime: a cuda worker samples on the CPU exactly when the CUDA provider is missing."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    providers, why = choose_providers("cuda", available, gpu_memory_bytes=2**30)
    assert (provider_name(providers[0]) == "CUDAExecutionProvider") == ("CUDAExecutionProvider" in available)
    assert (why is None) == ("CUDAExecutionProvider" in available)


def test_a_model_that_runs_too_long_is_killed(spec, tmp_path):
    slow = onnx_models.slow(tmp_path / "slow.onnx")
    assert rules_of(slow, spec.model_copy(update={"model_time_limit_s": 4.0})) == ["dry_run_timeout"]


def test_nan_output_fails_the_dry_run(spec, tmp_path):
    path = onnx_models.nan_images(tmp_path / "nan.onnx")
    assert rules_of(path, spec) == ["dry_run_failed"]
    with pytest.raises(SamplingFailed) as caught:
        sample_model(SamplingJob(model=str(path), labels=[0], per_class=2, latent_size=4, image_size=64, seed=0),
                     memory_bytes=2**31, time_limit_s=30)
    assert caught.value.kind == "non_finite"


def test_every_rule_is_described_in_the_spec(spec):
    text = spec.model_copy(update={"submission_kinds": "both"}).describe()
    assert "Submission kinds: both" in text and "A zip with one folder per class" in text
    assert all(rule in text for rule in MODEL_RULES)
    assert "ONNX" not in spec.describe()  # an images-only competition does not mention models


def test_submission_check_takes_a_model_where_the_competition_does(tmp_path):
    from typer.testing import CliRunner

    from server.cli import app

    competition = make_competition(tmp_path / "comp", images_per_class=5, submission_kinds="both")
    model = onnx_models.generator(tmp_path / "g.onnx")
    checked = CliRunner().invoke(app, ["submission", "check", str(model), "--competition", str(competition.root)])
    assert checked.exit_code == 0, checked.output
    # It says what was checked, not "OK valid:  images" (a model has no image counts).
    assert "valid: ONNX generator: latent size" in checked.output and "with_mask, without_mask" in checked.output
    assert "one batch of 8 sampled" in checked.output and " images" not in checked.output.split("(sha256")[0]
    spec_text = CliRunner().invoke(app, ["submission", "spec", "--competition", str(competition.root)]).output
    assert "Submission kinds: both" in spec_text and "operator_not_allowed" in spec_text
    broken = onnx_models.custom_op(tmp_path / "custom.onnx")
    failed = CliRunner().invoke(app, ["submission", "check", str(broken), "--competition", str(competition.root)])
    assert failed.exit_code == 1 and "operator_not_allowed" in failed.output


def test_a_model_sent_to_an_images_only_competition_is_named_and_told_the_competition_takes_images(tmp_path):
    from typer.testing import CliRunner

    from server.cli import app

    competition = make_competition(tmp_path / "comp", images_per_class=5)  # submission_kinds: images
    model = onnx_models.generator(tmp_path / "g.onnx")
    checked = CliRunner().invoke(app, ["submission", "check", str(model), "--competition", str(competition.root)])
    assert checked.exit_code == 1
    assert "[kind_not_accepted] g.onnx" in checked.output and "found: an ONNX model" in checked.output
    assert "this competition takes images only" in checked.output and "not a readable zip" not in checked.output
    renamed = tmp_path / "upload.bin"  # the same bytes under another name: told by its content
    renamed.write_bytes(model.read_bytes())
    with pytest.raises(SubmissionInvalid) as caught:
        validate_submission(renamed, SubmissionSpec.from_competition(competition), name="upload.bin")
    assert [(p.rule, p.file) for p in caught.value.report.problems] == [("kind_not_accepted", "upload.bin")]


@pytest.mark.parametrize("location", ["/etc/passwd", "../secret.bin", "../../etc/passwd"])
@pytest.mark.parametrize("sparse", [False, True], ids=["value", "sparse_value"])
def test_a_constant_with_external_data_is_not_self_contained(spec, tmp_path, location, sparse):
    """A Constant's tensor pointing at any file was passed by the static checks and reached onnxruntime."""
    path = onnx_models.external_constant(tmp_path / "leak.onnx", location, sparse=sparse)
    with pytest.raises(SubmissionInvalid) as caught:
        validate_model(path, spec)
    (problem,) = caught.value.report.problems
    assert problem.rule == "external_data_attribute"
    assert "Constant node 'leak'" in problem.found and location in problem.found and "sparse_value" * sparse in \
        problem.found
    assert "save_as_external_data=False" in problem.fix


def test_external_data_inside_a_subgraph_is_found(spec, tmp_path):
    path = onnx_models.external_in_subgraph(tmp_path / "branch.onnx", "/etc/passwd")
    with pytest.raises(SubmissionInvalid) as caught:
        validate_model(path, spec)
    problems = {p.rule: p for p in caught.value.report.problems}
    assert set(problems) == {"external_data_subgraph", "operator_not_allowed"}
    assert "subgraph 'then_branch' of If node" in problems["external_data_subgraph"].found
    assert "/etc/passwd" in problems["external_data_subgraph"].found


def test_an_external_initializer_has_its_own_rule(spec, tmp_path):
    path = onnx_models.external_initializer(tmp_path / "weights.onnx", "weights.bin")
    assert rules_of(path, spec) == ["external_data_initializer"]


def test_submission_check_names_the_external_constant(tmp_path):
    from typer.testing import CliRunner

    from server.cli import app

    competition = make_competition(tmp_path / "comp", images_per_class=5, submission_kinds="both")
    model = onnx_models.external_constant(tmp_path / "leak.onnx", "/etc/passwd")
    checked = CliRunner().invoke(app, ["submission", "check", str(model), "--competition", str(competition.root)])
    assert checked.exit_code == 1, checked.output
    assert "external_data_attribute" in checked.output and "/etc/passwd" in checked.output


def test_the_cpu_time_limit_stops_a_model_nobody_watches_any_more(tmp_path):
    """The last resort when the watcher is frozen: RLIMIT_CPU ends the child on its own (SIGXCPU)."""
    slow = onnx_models.slow(tmp_path / "slow.onnx")
    job = SamplingJob(model=str(slow), labels=[0], per_class=1, latent_size=4, image_size=64, seed=0)
    started = time.monotonic()
    returncode, _ = run_capped(sampling_command(job, tmp_path / "out.npy"), memory_bytes=2**31, time_limit_s=120,
                               kernel_limit=True, cpu_seconds=2)
    assert returncode == -signal.SIGXCPU and time.monotonic() - started < 60


def test_orphaned_work_folders_are_removed_and_live_ones_kept(tmp_path):
    """After a SIGKILL the owner's folder stays; the next worker's start removes it, never a live owner's."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / f"arena-sample-{dead.pid}-abc"
    live = tmp_path / f"arena-sample-{os.getpid()}-def"
    unnamed = tmp_path / "arena-sample-xyz"  # the older naming: no owner known, nothing uses it, two hours old
    recent = tmp_path / "arena-sample-new"  # unnamed and fresh: its owner may be about to start its child
    for folder in (orphan, live, unnamed, recent):
        folder.mkdir()
        (folder / "images.npy").write_bytes(b"partial")
    os.utime(unnamed, (time.time() - 7200, time.time() - 7200))
    killed, removed = reap_orphans(tmp_path)
    assert (killed, sorted(removed)) == ([], sorted([orphan, unnamed]))
    assert live.is_dir() and recent.is_dir() and not orphan.exists() and not unnamed.exists()


def test_an_orphaned_sampler_is_killed_with_its_folder(tmp_path):
    """A sampler whose owner died without taking it along (the kernel's signal missed) is ended at worker start."""
    slow = onnx_models.slow(tmp_path / "slow.onnx")
    job = SamplingJob(model=str(slow), labels=[0], per_class=1, latent_size=4, image_size=64, seed=0, tag="t")
    owner = subprocess.Popen(["true"])
    owner.wait()
    folder = tmp_path / f"arena-sample-{owner.pid}-x"
    folder.mkdir()
    orphan = subprocess.Popen(sampling_command(job, folder / "images.npy"), start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not any(p.pid == orphan.pid for p in sampling_processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        killed, removed = reap_orphans(tmp_path)
        assert killed == [orphan.pid] and removed == [folder]
        assert orphan.wait(timeout=10) == -signal.SIGKILL
    finally:
        orphan.kill()
