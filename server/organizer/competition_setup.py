"""New competitions from the organizer console: `arena data prepare` run in the background, outside the web process.

The page checks the request (slug free, numbers in range, the archive really a zip or tar), writes it under
{data_dir}/preparing/<slug>/ and starts `python -m server.organizer.competition_setup <job dir>`, which calls the same
`prepare_competition` as the CLI with tqdm writing its progress to the job's log. The page polls the log's last
progress line; when the job ends it shows a preview grid per class and the manifest's audit. The competition is
written `closed` and opens when the organizer says so. A failed job leaves no competition directory and no row.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from server.competition_dir import MANIFEST_FILE, Competition, CompetitionError, competitions_dir, write_config
from server.data.errors import DataPreparationError
from server.data.layout import ValidationPolicy
from server.data.prepare import SmallPolicy, prepare_competition
from server.errors import Conflict, InvalidSettings
from server.storage import write_sample_grid
from submissions.atomic import write_atomically
from submissions.competition import MAX_IMAGES_PER_CLASS, MAX_TITLE_CHARS, SubmissionKinds, control_character

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
REQUEST_FILE, LOG_FILE, RESULT_FILE = "request.json", "log.txt", "result.json"
PREVIEW_PER_CLASS = 16
# Below this many held-out images per class on a board, the reference statistics (a 2,048-dimensional mean and
# covariance) are estimated from few images: the covariance is far from full rank, FID is biased upward and the
# references' own sampling noise can outweigh small differences between teams.
MIN_TEST_IMAGES_PER_SPLIT = 500
# The form's choices: `arena data prepare`'s options of the same names.
CHOICES: dict[str, tuple[str, ...]] = {"validation": get_args(ValidationPolicy), "small": get_args(SmallPolicy),
                                       "submission_kinds": get_args(SubmissionKinds)}


@dataclass(frozen=True)
class PreparationRequest:
    slug: str
    title: str
    source: str  # a folder on the server, or the uploaded archive inside the job directory
    images_per_class: int
    public_fraction: float
    # The other options of `arena data prepare`, with its defaults.
    test_source: str | None = None
    class_map: dict[str, list[str]] | None = None
    validation: str = "test"
    small: str = "skip"
    dedupe: bool = False
    skip_bad: bool = False
    image_size: int = 64
    seed: int = 0
    submission_kinds: str = "images"
    test_fraction: float | None = None  # for a dataset without a test split (arena data prepare --test-fraction)

    def prepare_options(self) -> dict[str, Any]:
        """The keyword arguments of `prepare_competition` beyond source and out."""
        return {key: value for key, value in self.__dict__.items() if key != "source"}


def jobs_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "preparing"


def job_dir(data_dir: Path, slug: str) -> Path:
    return jobs_dir(data_dir) / slug


def check_request(*, data_dir: Path, slug: str, title: str, images_per_class: str, public_fraction: str,
                  known_slugs: set[str]) -> tuple[str, str, int, float]:
    """The form's fields as typed values, or InvalidSettings naming each bad field and its fix."""
    problems: dict[str, str] = {}
    slug = slug.strip()
    if not SLUG.match(slug):
        problems["slug"] = "lowercase letters, digits and dashes, starting with a letter or digit (e.g. masks-2026)"
    elif slug in known_slugs or (competitions_dir(data_dir) / slug).exists() or job_dir(data_dir, slug).exists():
        problems["slug"] = f"'{slug}' is taken by an existing or preparing competition; pick another"
    count_rule = f"a whole number from 1 to {MAX_IMAGES_PER_CLASS:,}"
    count = _number(images_per_class, int, problems, "images_per_class", count_rule)
    fraction = _number(public_fraction, float, problems, "public_fraction", "a number between 0 and 1, e.g. 0.5")
    if count is not None and not 1 <= count <= MAX_IMAGES_PER_CLASS:
        problems["images_per_class"] = count_rule
    if fraction is not None and not 0 < fraction < 1:  # NaN fails this too
        problems["public_fraction"] = "a number between 0 and 1 (exclusive), e.g. 0.5"
    title = title.strip()
    if len(title) > MAX_TITLE_CHARS:
        problems["title"] = f"at most {MAX_TITLE_CHARS} characters"
    elif control_character(title, multiline=False):
        problems["title"] = "one line of visible characters (no control characters)"
    if problems:
        listed = "; ".join(f"{field}: {message}" for field, message in problems.items())
        raise InvalidSettings(f"Competition not created: {listed}.", detail=problems)
    return slug, title or slug.replace("-", " ").capitalize(), int(count or 0), float(fraction or 0)


def check_options(form: dict[str, str]) -> dict[str, Any]:
    """The form's other `arena data prepare` options as typed values, or InvalidSettings naming each bad field."""
    problems: dict[str, str] = {}
    options: dict[str, Any] = {name: form.get(name) or getattr(PreparationRequest, name) for name in CHOICES}
    for name, choices in CHOICES.items():
        if options[name] not in choices:
            problems[name] = f"one of {', '.join(choices)}"
    options["dedupe"] = form.get("dedupe") == "1"
    options["skip_bad"] = form.get("skip_bad") == "1"
    options["image_size"] = _number(form.get("image_size") or "64", int, problems, "image_size", "a whole number "
                                    "of at least 8 (pixels)")
    options["seed"] = _number(form.get("seed") or "0", int, problems, "seed", "a whole number")
    if options["image_size"] is not None and options["image_size"] < 8:
        problems["image_size"] = "a whole number of at least 8 (pixels)"
    test_folder = (form.get("test_folder") or "").strip()
    if test_folder and not Path(test_folder).expanduser().is_dir():
        problems["test_folder"] = f"{test_folder}: no such folder on the server"
    options["test_source"] = str(Path(test_folder).expanduser().resolve()) if test_folder else None
    options["class_map"] = _class_map(form.get("class_map") or "", problems)
    if problems:
        listed = "; ".join(f"{field}: {message}" for field, message in problems.items())
        raise InvalidSettings(f"Competition not created: {listed}.", detail=problems)
    return options


def _class_map(text: str, problems: dict[str, str]) -> dict[str, list[str]] | None:
    """`--class NAME=FOLDER` as typed in the form, one per line: {NAME: [FOLDER, ...]} (None when empty)."""
    mapping: dict[str, list[str]] = {}
    for line in filter(None, (line.strip() for line in text.splitlines())):
        name, sep, folder = line.partition("=")
        if not (sep and name.strip() and folder.strip()):
            problems["class_map"] = f"'{line}': write NAME=FOLDER, one per line (e.g. with_mask=WithMask)"
            return None
        mapping.setdefault(name.strip(), []).append(folder.strip())
    return mapping or None


def few_reference_images(counts: dict[str, dict[str, int]]) -> list[str]:
    """Each class and board with fewer held-out images than MIN_TEST_IMAGES_PER_SPLIT, e.g. 'with_mask public (20)'."""
    return [f"{cls} {split} ({count})" for cls, per_split in counts.items() for split, count in per_split.items()
            if split != "train" and count < MIN_TEST_IMAGES_PER_SPLIT]


def check_test_fraction(text: str) -> float | None:
    """The optional test fraction field: empty (the dataset has its own test split) or a share in (0, 1)."""
    if not text.strip():
        return None
    problems: dict[str, str] = {}
    fraction = _number(text, float, problems, "test_fraction", "empty, or a number between 0 and 1, e.g. 0.2")
    if fraction is not None and not 0 < fraction < 1:
        problems["test_fraction"] = "empty, or a number between 0 and 1 (exclusive), e.g. 0.2"
    if problems:
        raise InvalidSettings(f"Competition not created: test_fraction: {problems['test_fraction']}.",
                              detail=problems)
    return float(fraction)


def _number(text: str, kind: type, problems: dict[str, str], field: str, rule: str) -> Any:
    try:
        return kind(text.strip())
    except ValueError:
        problems[field] = rule
        return None


def check_archive(path: Path, filename: str) -> None:
    if not (zipfile.is_zipfile(path) or tarfile.is_tarfile(path)):
        raise InvalidSettings(f"{filename}: not a zip or tar archive. Upload the dataset as .zip or .tar(.gz) of class "
                              "folders (e.g. train/<class>/*.png and test/<class>/*.png).",
                              detail={"archive": "not a zip or tar archive"})


def check_folder(folder: str) -> Path:
    path = Path(folder.strip()).expanduser()
    if not folder.strip() or not path.is_dir():
        raise InvalidSettings(f"{folder or '(empty)'}: no such folder on the server. Give the absolute path of the "
                              "dataset folder, or upload an archive.", detail={"folder": "no such folder"})
    return path.resolve()


def start(*, data_dir: Path, request: PreparationRequest, archive: Path | None = None) -> Path:
    """Write the job directory (moving an uploaded archive into it) and start the preparing process."""
    directory = job_dir(data_dir, request.slug)
    try:
        directory.mkdir(parents=True)
    except FileExistsError as exc:
        raise Conflict(f"'{request.slug}' is already being prepared.") from exc
    if archive is not None:
        target = directory / f"dataset{''.join(Path(request.source).suffixes[-2:]) or '.zip'}"
        shutil.move(archive, target)
        request = PreparationRequest(**{**request.__dict__, "source": str(target)})
    (directory / REQUEST_FILE).write_text(json.dumps({**request.__dict__, "data_dir": str(data_dir)}))
    with (directory / LOG_FILE).open("wb") as log:
        subprocess.Popen([sys.executable, "-m", "server.organizer.competition_setup", str(directory)], stdout=log,
                         stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ})
    return directory


def run(directory: Path) -> None:
    """The preparing process: prepare, mark closed, write previews and the result (or the failure's message)."""
    values = json.loads((directory / REQUEST_FILE).read_text())
    data_dir = Path(values.pop("data_dir"))
    request = PreparationRequest(**values)
    out = competitions_dir(data_dir) / request.slug
    try:
        result = prepare_competition(request.source, out, **request.prepare_options(), progress=True)
        competition = result.competition
        write_config(competition.root, competition.config.model_copy(update={"status": "closed"}))
        _write_previews(competition, directory / "preview")
        _write_result(directory, state="done", message="", summary=_summary(competition))
    except (DataPreparationError, CompetitionError, OSError, ValueError) as exc:
        shutil.rmtree(out, ignore_errors=True)
        _write_result(directory, state="failed", message=str(exc), summary={})
    finally:
        for archive in directory.glob("dataset.*"):
            archive.unlink(missing_ok=True)


def _write_previews(competition: Competition, folder: Path) -> None:
    import numpy as np
    from PIL import Image

    for cls in competition.classes:
        files = competition.train_files(cls)[:PREVIEW_PER_CLASS]
        images = np.stack([np.asarray(Image.open(path).convert("L")) for path in files])
        write_sample_grid(folder / f"{cls}.png", images, side=4)


def _summary(competition: Competition) -> dict[str, Any]:
    manifest = json.loads((competition.root / MANIFEST_FILE).read_text())
    counts = {cls: {split: len(competition.files(cls, split)) for split in ("train", "public", "private")}
              for cls in competition.classes}
    return {"counts": counts, "audit": manifest.get("audit") or {}, "dataset_hash": manifest["dataset_hash"]}


def _write_result(directory: Path, *, state: str, message: str, summary: dict[str, Any]) -> None:
    document = json.dumps({"state": state, "message": message, **summary})
    write_atomically(directory / RESULT_FILE, lambda temporary: temporary.write_text(document))


def state(data_dir: Path, slug: str) -> dict[str, Any]:
    """running (with the last progress line), done (with counts and audit) or failed (with the message)."""
    directory = job_dir(data_dir, slug)
    if not directory.is_dir():
        return {"state": "missing"}
    result = directory / RESULT_FILE
    if result.is_file():
        return json.loads(result.read_text())
    log = (directory / LOG_FILE).read_bytes().decode(errors="replace") if (directory / LOG_FILE).exists() else ""
    lines = [line.strip() for line in re.split(r"[\r\n]+", log) if line.strip()]
    return {"state": "running", "progress": lines[-1] if lines else "starting"}


def forget(data_dir: Path, slug: str) -> None:
    """Drop a finished job's directory (after the organizer opened the competition or dismissed a failure)."""
    shutil.rmtree(job_dir(data_dir, slug), ignore_errors=True)


if __name__ == "__main__":
    run(Path(sys.argv[1]))
