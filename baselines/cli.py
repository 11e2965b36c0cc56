"""`arena train`, `arena generate`, `arena baseline run|check`: the baselines from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

from baselines.registry import MODEL_NAMES

baseline_app = typer.Typer(help="Reference baselines: train + generate + submit, and the conditioning check.",
                           no_args_is_help=True)

MODEL_HELP = f"Baseline to train: {', '.join(MODEL_NAMES)}."
DEVICE_HELP = "auto (CUDA when visible), cpu or cuda."


def _check_model(name: str) -> str:
    if name not in MODEL_NAMES:
        raise typer.BadParameter(f"unknown baseline {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return name


def parse_overrides(model: str, settings: list[str]) -> dict[str, object]:
    """`width=32` -> {"width": 32}, typed like the model's default value."""
    import dataclasses

    from baselines.registry import load_model

    defaults = dataclasses.asdict(load_model(_check_model(model)).Config())
    overrides: dict[str, object] = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep or key not in defaults:
            raise typer.BadParameter(f"--set {setting}: expected KEY=VALUE with KEY one of {', '.join(defaults)}")
        kind = type(defaults[key])
        overrides[key] = text.lower() in ("1", "true", "yes") if kind is bool else kind(text)
    return overrides


def train_command(
    model: str = typer.Argument(None, help=MODEL_HELP),
    data: str = typer.Option(None, "--data", help="Competition directory (its train/ part only) or class folders."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs (default: the model's recommended number)."),
    steps: int = typer.Option(None, "--steps", help="Training steps (batches); overrides --epochs."),
    batch_size: int = typer.Option(None, "--batch-size", help="Default: the model's recommended batch size."),
    lr: float = typer.Option(None, "--lr", help="G's learning rate; D's keeps its recommended ratio to it."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    amp: bool = typer.Option(False, "--amp", help="bfloat16 autocast on CUDA."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same run."),
    resume: Path = typer.Option(None, "--resume", help="Run folder to continue from its newest checkpoint."),
    out: Path = typer.Option(Path("runs"), "--out", help="Parent folder of the run folders."),
    sample_every: int = typer.Option(500, "--sample-every", help="Steps between sample grids."),
    checkpoint_every: int = typer.Option(1000, "--checkpoint-every", help="Steps between checkpoints."),
    eval_every: int = typer.Option(2000, "--eval-every", help="Steps between FIDs vs held-out train images; 0: none."),
    settings: list[str] = typer.Option([], "--set", help="Override a model setting, e.g. --set width=32 (repeatable)."),
) -> None:
    """Train a baseline; each run gets runs/NNNNN-MODEL/ with config, checkpoints, samples and metrics.jsonl."""
    from baselines.train import TrainOptions, new_run, resume_run

    if resume is not None:
        trainer = resume_run(resume, steps=steps, epochs=epochs)
    else:
        if model is None or data is None:
            raise typer.BadParameter("give a model and --data (or --resume RUN)")
        options = TrainOptions(
            model=_check_model(model), data=data, out=str(out), epochs=epochs, steps=steps, batch_size=batch_size,
            lr=lr, device=device, amp=amp, seed=seed, sample_every=sample_every, checkpoint_every=checkpoint_every,
            eval_every=eval_every, overrides=parse_overrides(model, settings),
        )
        trainer = new_run(options)
    trainer.run()
    typer.echo(f"run folder: {trainer.run_dir}")


def generate_command(
    run: Path = typer.Argument(..., help="Run folder made by `arena train`."),
    out: Path = typer.Option(None, "--out", help="Zip file to write."),
    model: Path = typer.Option(None, "--model", help="Instead of a zip, export the generator to this .onnx file."),
    per_class: int = typer.Option(None, "--per-class", help="Default: the competition's images_per_class (else 1000)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Default: the run's newest checkpoint."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    seed: int = typer.Option(0, "--seed", help="Noise seed: same seed, same zip."),
) -> None:
    """Sample a trained run (EMA weights where present) into a submission zip, or export it (--model out.onnx)."""
    if (out is None) == (model is None):
        raise typer.BadParameter("give exactly one of --out ZIP or --model FILE.onnx")
    if model is not None:
        from baselines.generate import export_run

        typer.echo(f"wrote {export_run(run, model, checkpoint=checkpoint)}")
        return
    from baselines.generate import generate_submission

    path = generate_submission(run, out, per_class=per_class, checkpoint=checkpoint, device=device, seed=seed)
    typer.echo(f"wrote {path}")


@baseline_app.command("run")
def baseline_run_command(
    model: str = typer.Argument(..., help=MODEL_HELP),
    data: str = typer.Option(..., "--data", help="Competition directory."),
    server: str = typer.Option(None, "--server", help="Server URL, e.g. http://localhost:8000, to submit to."),
    competition: str = typer.Option(None, "--competition", help="Competition slug on that server."),
    token: str = typer.Option(None, "--token", envvar="ARENA_ADMIN_TOKEN", help="Organizer (admin) token."),
    steps: int = typer.Option(None, "--steps", help="Shorten the run (default: the recommended epochs)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    amp: bool = typer.Option(False, "--amp", help="bfloat16 autocast on CUDA."),
    out: Path = typer.Option(Path("runs"), "--out", help="Parent folder of the run folders."),
) -> None:
    """Train with the recommended settings, write RUN/submission.zip and, given a server, submit it as a reference."""
    import httpx

    from baselines.generate import generate_submission
    from baselines.reference import submit_reference
    from baselines.train import TrainOptions, new_run

    if server and not (competition and token):
        raise typer.BadParameter("--server needs --competition SLUG and --token ADMIN_TOKEN")
    trainer = new_run(TrainOptions(model=_check_model(model), data=data, out=str(out), steps=steps, device=device,
                                   amp=amp))
    trainer.run()
    zip_path = generate_submission(trainer.run_dir, trainer.run_dir / "submission.zip", device=device)
    typer.echo(f"run folder: {trainer.run_dir}\nsubmission: {zip_path}")
    if server:
        with httpx.Client(base_url=server.rstrip("/"), timeout=300) as client:
            accepted = submit_reference(client, competition, model, zip_path, token)
        typer.echo(f"reference entry queued: submission {accepted['id']} ({accepted.get('status_url', '')})")


@baseline_app.command("check")
def baseline_check_command(
    runs: list[Path] = typer.Argument(..., help="Run folders to check (trained on the same data)."),
    per_class: int = typer.Option(200, "--per-class", help="Samples per label."),
    classifier_steps: int = typer.Option(300, "--classifier-steps", help="Training steps of the classifier."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Conditioning check: how often a classifier trained on real images agrees with each sample's label."""
    from baselines.conditioning import check_runs

    for run, report in check_runs(runs, per_class=per_class, classifier_steps=classifier_steps, device=device):
        labels = ", ".join(f"{cls} {acc:.0%}" for cls, acc in report.accuracy_per_label.items())
        typer.echo(f"{run.name}: {labels} (classifier on real images {report.classifier_accuracy_on_real:.0%})")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("generate")(generate_command)
    app.add_typer(baseline_app, name="baseline")
