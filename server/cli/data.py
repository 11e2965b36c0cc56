"""`arena data ...`: create competition directories (demo data or a real dataset clone)."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from server.competition import CONFIG_FILE
from server.data import demo

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
        ..., "--source", help="Dataset root with train/<class>/ and test/<class>/, or (with --test-source) the "
        "training class folders."
    ),
    out: Path = typer.Option(..., "--out", help="Competition directory to create."),
    test_source: Path | None = typer.Option(
        None, "--test-source", help="Held-out class folders, when they are not SOURCE/test."
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
    seed: int = typer.Option(0, "--seed", help="Seeds the public/private split."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out unreadable or too small images (listed)."),
) -> None:
    """Prepare a competition from a dataset of class folders (e.g. Face-Mask-Classification-20000-Dataset)."""
    from server.data import DataPreparationError, prepare_competition

    try:
        result = prepare_competition(
            source,
            out,
            test_source=test_source,
            slug=slug,
            title=title,
            images_per_class=images_per_class,
            image_size=image_size,
            public_fraction=public_fraction,
            seed=seed,
            skip_bad=skip_bad,
        )
    except DataPreparationError as exc:
        _fail(exc)
    if result.skipped:
        typer.echo(f"Left out {len(result.skipped)} unusable image(s) (--skip-bad):", err=True)
        for line in result.skipped:
            typer.echo(f"  - {line}", err=True)
    _summarize(result.competition.root, unchanged=result.unchanged)


def _fail(exc: Exception) -> NoReturn:
    typer.echo(f"Error: {exc}", err=True)
    raise typer.Exit(2)


def _summarize(root: Path, *, unchanged: bool) -> None:
    from server.competition import Competition

    competition = Competition.load(root)
    state = "already up to date (same dataset hash), left untouched" if unchanged else "written"
    typer.echo(f"Competition {competition.slug!r} at {root}: {state}.")
    for cls in competition.classes:
        typer.echo(
            f"  {cls}: {len(competition.train_files(cls))} train, {len(competition.test_files(cls, 'public'))} "
            f"public test, {len(competition.test_files(cls, 'private'))} private test"
        )
    typer.echo(f"  dataset hash {competition.manifest.dataset_hash}")
    typer.echo(f"  sample grid  {root / 'preview.png'}")
