"""`arena submission spec|check|sample`, `arena submit` and `arena login`: the team's commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

submission_app = typer.Typer(help="The submission format: print the rules, check a zip, make a sample zip.",
                             no_args_is_help=True)

COMPETITION_DIR = typer.Option(..., "--competition", "-c", help="Competition directory (holds competition.json).",
                               exists=True, file_okay=False)


def register(app: typer.Typer) -> None:
    app.add_typer(submission_app, name="submission")
    app.command("submit")(submit)
    app.command("login")(login)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _load_spec(competition_dir: Path):
    from submissions.competition import Competition, CompetitionError
    from submissions.spec import SubmissionSpec

    try:
        return SubmissionSpec.from_competition(Competition.load(competition_dir))
    except CompetitionError as exc:
        raise _fail(str(exc), 2) from exc


@submission_app.command("spec")
def spec(competition: Path = COMPETITION_DIR) -> None:
    """Print the rules a submission zip of this competition must follow."""
    typer.echo(_load_spec(competition).describe())


@submission_app.command("check")
def check(
    file: Path = typer.Argument(..., help="The zip (or .onnx model) to check."),
    competition: Path = COMPETITION_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (what the API returns)."),
) -> None:
    """Validate a zip or model offline, exactly as the server will. Exit 0 when valid, 1 when not."""
    from submissions.client import format_report
    from submissions.model import validate_submission
    from submissions.report import SubmissionInvalid

    try:
        report = validate_submission(file, _load_spec(competition)).report
    except SubmissionInvalid as exc:
        report = exc.report
    typer.echo(json.dumps(report.model_dump(mode="json"), indent=2) if as_json else format_report(report))
    raise typer.Exit(0 if report.valid else 1)


@submission_app.command("sample")
def sample(
    competition: Path = COMPETITION_DIR,
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the zip."),
    seed: int = typer.Option(0, help="Which training images are drawn."),
) -> None:
    """Pack a valid zip from the competition's TRAINING images: try the upload path in a minute.

    The memorization check will flag it (copied training images must never win), which is the point: you see
    the whole flow, including the penalty, before your model is ready.
    """
    import numpy as np

    from submissions.competition import Competition
    from submissions.packer import pack
    from submissions.png import decode_gray
    from submissions.report import PackError, Problem
    from submissions.spec import SubmissionSpec

    comp = Competition.load(competition)
    spec = SubmissionSpec.from_competition(comp)
    rng = np.random.default_rng(seed)
    images = {}
    for cls in spec.classes:
        files = comp.train_files(cls)
        if not files:
            raise _fail(f"{competition}: no training images of class {cls} in the manifest.")
        picks = rng.choice(len(files), spec.images_per_class, replace=len(files) < spec.images_per_class)
        arrays = []
        for i in picks:
            decoded = decode_gray(files[i].read_bytes(), str(files[i]))
            if isinstance(decoded, Problem):
                raise _fail(decoded.message)
            arrays.append(decoded)
        images[cls] = np.stack(arrays)
    try:
        pack(images, out, spec, progress=True)
    except PackError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"Wrote {out}: {spec.images_per_class} training images per class. It is a valid upload; the "
               "memorization check will flag it as copied images.")


def submit(
    file: Path = typer.Argument(..., help="The zip (or .onnx model, where the competition takes models) to upload.",
                                exists=True, dir_okay=False),
    server: str = typer.Option(..., "--server", "-s", help="Server URL, e.g. http://127.0.0.1:8000."),
    competition: str = typer.Option(..., "--competition", "-c", help="Competition slug."),
    token: str | None = typer.Option(None, "--token", "-t", help="Team token (else $ARENA_TOKEN or `arena login`)."),
    message: str | None = typer.Option(None, "--message", "-m", help="A note shown in your submission history."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the status until scored; print the scores."),
    competition_dir: Path | None = typer.Option(None, help="Validate against this directory instead of asking the "
                                                "server for the competition's format.", file_okay=False),
) -> None:
    """Validate a zip or model locally, upload it, and optionally wait for its score."""
    from submissions.client import ArenaClient, format_report, resolve_token
    from submissions.model import validate_submission
    from submissions.report import SubmissionError, SubmissionInvalid
    from submissions.results import score_table

    try:
        resolved = resolve_token(server, token)
        if not resolved:
            raise _fail("No team token: pass --token, set ARENA_TOKEN, or run `arena login --server URL --token T`.",
                        2)
        client = ArenaClient(server, resolved)
        spec = _load_spec(competition_dir) if competition_dir else client.spec(competition)
        try:
            validate_submission(file, spec)
        except SubmissionInvalid as exc:
            raise _fail(format_report(exc.report) + "\nNot uploaded: fix it first.") from exc
        created = client.upload(file, competition, message=message)
        typer.echo(f"Submission {created.get('id')} accepted: {created.get('status')}. {_quota_text(created)}")
        if wait:
            final = client.wait(created["id"], on_status=lambda s: typer.echo(f"  status: {s.get('status')}"))
            typer.echo(score_table(final))
            raise typer.Exit(0 if final.get("status") == "scored" else 1)
    except SubmissionError as exc:
        raise _fail(str(exc)) from exc


def _quota_text(created: dict) -> str:
    quota = created.get("quota")
    if not isinstance(quota, dict):
        return ""
    used, limit, reset = quota.get("used"), quota.get("limit"), quota.get("resets_at") or quota.get("reset_at")
    parts = [f"{used}/{limit} submissions today" if used is not None and limit is not None else "",
             f"quota resets at {reset}" if reset else ""]
    return "; ".join(p for p in parts if p)


def login(
    server: str = typer.Option(..., "--server", "-s", help="Server URL."),
    token: str = typer.Option(..., "--token", "-t", prompt=True, hide_input=True, help="Your team token."),
) -> None:
    """Store a team token for one server in your user config file."""
    from submissions.client import store_token

    path = store_token(server, token)
    typer.echo(f"Token for {server} saved in {path}.")
