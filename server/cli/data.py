"""`arena data ...`: create competition directories (demo data or a real dataset clone)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

import typer

from server.competition_dir import CONFIG_FILE
from server.data import demo
from server.data.audit import NEAR_MAX_DISTANCE, NEAR_MIN_CORRELATION, PAIR_KINDS

if TYPE_CHECKING:
    from server.competition_dir import Competition
    from server.data.prepare import PrepareReport
    from server.data.split import TestSplit

data_app = typer.Typer(help="Create competition data: a procedural demo or a prepared dataset.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


@data_app.command("demo")
def demo_command(
    out: Path = typer.Option(..., "--out", help="Competition directory to create."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same images (byte for byte)."),
    train_per_class: int = typer.Option(demo.DEFAULT_TRAIN_PER_CLASS, "--train-per-class", min=1),
    test_per_class: int = typer.Option(demo.DEFAULT_TEST_PER_CLASS, "--test-per-class", min=1),
    images_per_class: int = typer.Option(
        demo.DEFAULT_IMAGES_PER_CLASS, "--images-per-class", min=1, help="Images per class a submission holds."
    ),
    slug: str = typer.Option("demo", "--slug", help="Competition id in URLs (lowercase, digits, dashes)."),
    title: str = typer.Option(demo.DEMO_TITLE, "--title"),
) -> None:
    """Generate a synthetic face-mask competition (64x64 grayscale faces with and without masks)."""
    from server.data import DataPreparationError, make_demo_competition

    existed = (out / CONFIG_FILE).is_file()
    try:
        competition = make_demo_competition(
            out,
            seed=seed,
            train_per_class=train_per_class,
            test_per_class=test_per_class,
            images_per_class=images_per_class,
            slug=slug,
            title=title,
        )
    except DataPreparationError as exc:
        _fail(exc)
    _summarize(competition.root, unchanged=existed)


@data_app.command("prepare")
def prepare_command(
    source: Path = typer.Option(
        ..., "--source", help="Dataset root (a folder, .zip or .tar(.gz)) with split folders (train/, Test/, "
        "Validation/, ...) of class folders; or, with --test-source, the training class folders."
    ),
    out: Path = typer.Option(..., "--out", help="Competition directory to create."),
    test_source: Path | None = typer.Option(
        None, "--test-source", help="Held-out class folders (folder or archive), when the source has no test split."
    ),
    classes: list[str] = typer.Option(
        [], "--class", metavar="NAME=FOLDER", help="Competition class NAME takes the images of class folder FOLDER "
        "(repeatable; repeat a NAME to merge folders). Default: every folder, named in snake case (WithMask -> "
        "with_mask)."
    ),
    validation: Literal["train", "test", "ignore"] = typer.Option(
        "test", "--validation", help="Where a validation split's images go."
    ),
    small: Literal["upscale", "skip", "error"] = typer.Option(
        "skip", "--small", help="Images smaller than --image-size: leave out (listed), enlarge, or stop."
    ),
    dedupe: bool = typer.Option(False, "--dedupe", help="Leave out test images that duplicate training images."),
    test_fraction: float | None = typer.Option(
        None, "--test-fraction", help="For a dataset without a test split: hold out this share of each class "
        "(seeded by --seed), keeping near-duplicate images on one side."
    ),
    slug: str | None = typer.Option(None, "--slug", help="Competition id in URLs; default: the --out folder name."),
    title: str | None = typer.Option(None, "--title"),
    images_per_class: int = typer.Option(
        1000, "--images-per-class", min=1, help="Images per class a submission holds."
    ),
    image_size: int = typer.Option(64, "--image-size", min=8, help="Images are resized to this square size."),
    public_fraction: float = typer.Option(
        0.5, "--public-fraction", min=0.0, max=1.0, help="Share of test images on the public leaderboard."
    ),
    submission_kinds: Literal["images", "model", "both"] = typer.Option(
        "images", "--submission-kinds", help="What teams upload: images (a zip of PNGs), model (an ONNX generator "
        "the server samples) or both; `arena admin settings --submission-kinds` changes it later."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the public/private split."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out unreadable files (listed) instead of stopping."),
    max_extract_gb: float = typer.Option(20.0, "--max-extract-gb", min=0.0, help="Largest archive contents accepted."),
    workers: int = typer.Option(0, "--workers", min=0, help="Decoding processes; 0: one per core (at most 8)."),
) -> None:
    """Prepare a competition from a downloaded dataset of class folders (Kaggle, Hugging Face, GitHub)."""
    from server.data import DataPreparationError, prepare_competition

    try:
        result = prepare_competition(
            source,
            out,
            test_source=test_source,
            class_map=_class_map(classes),
            validation=validation,
            small=small,
            dedupe=dedupe,
            test_fraction=test_fraction,
            slug=slug,
            title=title,
            images_per_class=images_per_class,
            image_size=image_size,
            public_fraction=public_fraction,
            submission_kinds=submission_kinds,
            seed=seed,
            skip_bad=skip_bad,
            workers=workers or None,
            max_extract_bytes=int(max_extract_gb * 1024**3),
        )
    except DataPreparationError as exc:
        _fail(exc)
    _print_report(result.report, image_size)
    _summarize(result.competition.root, unchanged=result.unchanged)


def _class_map(pairs: list[str]) -> dict[str, list[str]] | None:
    """`--class NAME=FOLDER` options as {NAME: [FOLDER, ...]} (None when there are none)."""
    mapping: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not (sep and name.strip() and folder.strip()):
            _fail(ValueError(f"--class {pair!r}: expected NAME=FOLDER, e.g. --class with_mask=WithMask."))
        mapping.setdefault(name.strip(), []).append(folder.strip())
    return mapping or None


def _print_report(report: PrepareReport, image_size: int) -> None:
    """What prepare found and did: splits, class mapping, left-out files, duplicates (all in manifest.json)."""
    layout = report.layout
    default = ", the default" if report.validation == "test" else ""
    for split, root in layout.roots.items():
        part = report.validation if split == "validation" else split
        note = f" (--validation {report.validation}{default})" if split == "validation" else ""
        typer.echo(f"Split   {layout.show(root)} -> {part}{note}")
    for cls, folders in sorted(layout.mapping().items()):
        typer.echo(f"Class   {cls} <- {', '.join(folders)}")
    if report.test_split:
        _print_test_split(report.test_split)
    for folder in layout.left_out:
        typer.echo(f"Unused  {folder}")
    if report.renamed:
        typer.echo(f"Renamed {len(report.renamed)} file(s) whose names collide (e.g. 10.jpg and 10.png): "
                   "manifest.json audit.renamed lists them")
    if report.small:
        action = "enlarged (--small upscale)" if report.small_policy == "upscale" else "left out (--small skip)"
        typer.echo(f"Small   {len(report.small)} image(s) under {image_size}x{image_size} {action}")
    if report.unreadable:
        _echo_list(f"Left out {len(report.unreadable)} unusable file(s) (--skip-bad):", report.unreadable)
    if report.duplicates:
        _print_duplicates(report)


def _print_test_split(split: TestSplit) -> None:
    shares = ", ".join(f"{cls} {sides['train']} train / {sides['test']} test"
                       for cls, sides in split.counts.items())
    typer.echo(f"Held out {split.fraction:g} of each class as test (--test-fraction, seed {split.seed}): {shares}; "
               f"{split.groups_kept_together} near-duplicate group(s) ({split.images_in_groups} images) kept on one "
               "side")


def _print_duplicates(report: PrepareReport) -> None:
    assert report.duplicates is not None
    counts = report.duplicates.counts()
    typer.echo(f"Duplicates (pairs: exact / near: pHash <= {NEAR_MAX_DISTANCE} bits apart, pixel correlation >= "
               f"{NEAR_MIN_CORRELATION}):")
    for kind in PAIR_KINDS:
        typer.echo(f"  {kind.replace('_', ' '):18} {counts['exact'][kind]} / {counts['near'][kind]}")
    across = [*report.duplicates.exact["across_train_test"], *report.duplicates.near["across_train_test"]]
    if report.dropped:
        _echo_list(f"  --dedupe left out {len(report.dropped)} test image(s) that copy training images:",
                   [f"{path} ({source})" for path, source in report.dropped.items()])
    elif across:
        _echo_list("  test images that copy training images (pass --dedupe to leave them out):",
                   [f"{pair[1]} ~ {pair[0]}" for pair in across])


def _echo_list(title: str, lines: list[str], shown: int = 10) -> None:
    typer.echo(title)
    for line in lines[:shown]:
        typer.echo(f"  - {line}")
    if len(lines) > shown:
        typer.echo(f"  ... and {len(lines) - shown} more (all in manifest.json)")


def _fail(exc: Exception) -> NoReturn:
    typer.echo(f"Error: {exc}", err=True)
    raise typer.Exit(2)


def _summarize(root: Path, *, unchanged: bool) -> None:
    from server.competition_dir import Competition

    competition = Competition.load(root)
    state = "already up to date (same dataset hash), left untouched" if unchanged else "written"
    typer.echo(f"Competition {competition.slug!r} at {root}: {state}.")
    for cls in competition.classes:
        typer.echo(
            f"  {cls}: {len(competition.train_files(cls))} train, {len(competition.test_files(cls, 'public'))} "
            f"public test, {len(competition.test_files(cls, 'private'))} private test"
        )
    typer.echo(f"  accepts      {competition.config.submission_kinds} (--submission-kinds; arena admin settings "
               "changes it)")
    typer.echo(f"  dataset hash {competition.manifest.dataset_hash}")
    typer.echo(f"  sample grid  {root / 'preview.png'}")
    _warn_few_reference_images(competition)


def _warn_few_reference_images(competition: Competition) -> None:
    from server.organizer.competition_setup import MIN_TEST_IMAGES_PER_SPLIT, few_reference_images

    counts = {cls: {split: len(competition.test_files(cls, split)) for split in ("public", "private")}
              for cls in competition.classes}
    few = few_reference_images(counts)
    if few:
        typer.echo(f"Warning: few held-out images: {', '.join(few)}, under {MIN_TEST_IMAGES_PER_SPLIT} per class on "
                   "a board. FID compares generated images with these images' statistics (a 2,048-dimensional "
                   "covariance); from so few, FID is biased upward and their noise can outweigh small differences "
                   "between teams. Use more test images if the dataset has them (--validation test, a larger "
                   "--test-source).", err=True)
