"""Finding a dataset's splits and classes the way its authors named them, and naming every output file.

Splits: the folders of the dataset root, matched case-insensitively and ignoring separators against the aliases in
SPLIT_ALIASES. A download that wraps everything in one folder (`Face Mask Dataset/Train/...`) is entered. The
validation split goes where `--validation` says (default `test`: it is held out by the dataset's authors, and a
larger test set makes the FID reference statistics less noisy; it also lets train/val-only datasets work as they
are).

Classes: each class folder maps to a competition class. Automatically, a folder's name in snake case is its class
(`WithMask`, `with-mask`, `With Mask` -> `with_mask`; the course's `with_mask` stays itself); two folders of one
split that map to the same class are ambiguous. Explicitly, `--class NAME=FOLDER` (repeatable; a repeated NAME
merges folders) lists the competition's classes; folders not named are left out and reported.

Output names: `<stem>.png`, unless several source files of one output folder share a stem (`10.jpg` and `10.png`,
or the same name in Test/ and Validation/); then each of them becomes `<stem>-<8 hex of sha256(origin)>.png`, where
origin is `<split>/<class folder>/<file name>`: distinct, and the same on every rerun, from a folder or an archive.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from server.data.errors import DataPreparationError
from server.data.sources import SourceTree, is_ignored

Part = Literal["train", "test"]
ValidationPolicy = Literal["train", "test", "ignore"]
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "test": ("test", "testing"),
    "validation": ("val", "valid", "validation"),
}
PART_PAIRS: tuple[tuple[Part, Part], ...] = (("train", "test"), ("test", "train"))
CLASS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ClassFolder:
    split: str  # where the dataset put it: train | test | validation
    part: Part  # where its images go in the competition
    cls: str  # the competition class
    path: Path


@dataclass(frozen=True)
class SourceImage:
    path: Path
    part: Part
    cls: str
    name: str  # output file name
    shown: str  # how messages name the source file


@dataclass
class Layout:
    roots: dict[str, Path]  # split -> its folder
    folders: list[ClassFolder]
    show: Callable[[Path], str]  # how messages name a source path
    left_out: list[str] = field(default_factory=list)  # folders not used, and why

    @property
    def classes(self) -> list[str]:
        return sorted({folder.cls for folder in self.folders})

    def mapping(self) -> dict[str, list[str]]:
        """Competition class -> the source folders it takes images from (split/folder), for the summary."""
        used: dict[str, list[str]] = defaultdict(list)
        for folder in self.folders:
            used[folder.cls].append(f"{folder.path.parent.name}/{folder.path.name}")
        return dict(used)


def class_key(name: str) -> str:
    """A folder name in snake case: `WithMask`, `with-mask`, `With Mask`, `with_mask` -> `with_mask`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.sub(r"([a-z0-9])([A-Z])|([A-Z])([A-Z][a-z])", r"\1\3_\2\4", ascii_name)
    return re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")


def loose_key(name: str) -> str:
    """Lowercase letters and digits only: `Train`, `TRAIN`, `with-mask`, `WithMask` match `train`, `withmask`."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def split_of(name: str) -> str | None:
    return next((split for split, aliases in SPLIT_ALIASES.items() if loose_key(name) in aliases), None)


def subfolders(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not is_ignored(p.name)]


def find_layout(
    train: SourceTree,
    test: SourceTree | None,
    *,
    validation: ValidationPolicy = "test",
    class_map: dict[str, list[str]] | None = None,
    hold_out: bool = False,
) -> Layout:
    """Where each competition class's train and test images are (see the module docstring for the rules).

    hold_out (--test-fraction): every image is a training image here; prepare then moves a share to test."""
    trees = [tree for tree in (train, test) if tree is not None]

    def show(path: Path) -> str:
        return next(tree.show(path) for tree in trees if path.is_relative_to(tree.root))

    roots = _unsplit_root(train, test) if hold_out else _split_roots(train, test, validation)
    parts: dict[str, Part] = {"train": "train", "test": "test", "validation": "test"}
    if validation != "ignore":
        parts["validation"] = validation
    layout = Layout(roots=roots, folders=[], show=show)
    if "validation" in roots and validation == "ignore":
        layout.left_out.append(f"{show(roots.pop('validation'))} (--validation ignore)")
    for split, root in roots.items():
        mapped, unused = _map_classes(root, split, class_map, show)
        layout.folders += [ClassFolder(split, parts[split], cls, path) for cls, path in mapped]
        layout.left_out += [f"{show(path)} (not named by --class)" for path in unused]
    if class_map:
        _require_named_folders(layout, class_map)
    if not hold_out:
        _require_both_parts(layout)
    return layout


def _require_named_folders(layout: Layout, class_map: dict[str, list[str]]) -> None:
    found = {(folder.cls, folder.path.name) for folder in layout.folders}
    problems = [
        f"--class {cls}={name}: no such folder in {', '.join(map(layout.show, layout.roots.values()))}"
        for cls, names in class_map.items() for name in names
        if not any(found_cls == cls and loose_key(found_name) == loose_key(name) for found_cls, found_name in found)
    ]
    if problems:
        folders = sorted({p.name for root in layout.roots.values() for p in subfolders(root)})
        raise DataPreparationError(
            f"Some --class folders do not exist (class folders found: {', '.join(folders)}). Fix: spell FOLDER as "
            "one of those:",
            problems,
        )


def _split_roots(train: SourceTree, test: SourceTree | None, validation: ValidationPolicy) -> dict[str, Path]:
    if test is not None:
        return {"train": _unwrap(train.root, _holds_class_folders), "test": _unwrap(test.root, _holds_class_folders)}
    root = _unwrap(train.root, lambda folder: any(split_of(p.name) for p in subfolders(folder)))
    found: dict[str, list[Path]] = defaultdict(list)
    for folder in subfolders(root):
        if split := split_of(folder.name):
            found[split].append(folder)
    clashes = [" and ".join(map(train.show, folders)) for folders in found.values() if len(folders) > 1]
    if clashes:
        raise DataPreparationError(
            f"{train.show(root)}: several folders name the same split. Fix: remove or rename all but one of each:",
            clashes,
        )
    roots = {split: found[split][0] for split in SPLIT_ALIASES if split in found}  # train, test, validation
    covered = set(roots) | ({validation} if "validation" in roots else set())
    missing = [split for split in ("train", "test") if split not in covered]
    if missing and _holds_class_folders(root):
        raise DataPreparationError(
            f"{train.show(root)}: class folders only ({', '.join(p.name + '/' for p in subfolders(root))}), no "
            "train/ and no test/ folder: the dataset has no held-out split. Fix: pass --test-fraction F (e.g. 0.2) "
            "to hold out a seeded share of each class (near-duplicate images kept on one side), or pass the "
            "held-out class folders as --test-source."
        )
    if missing:
        names = ", ".join(p.name + "/" for p in subfolders(root)) or "none"
        raise DataPreparationError(
            f"{train.show(root)}: no {' and no '.join(f'{split}/ folder' for split in missing)} (looked for "
            f"{', '.join(a for s in missing for a in SPLIT_ALIASES[s])} in any case; found "
            f"{names}). A source holds train/<class>/ and test/<class>/ image folders. Fix: point --source at the "
            "dataset's root (a folder or its .zip / .tar.gz), or pass the training class folders as --source and "
            "the held-out ones as --test-source, or, when the dataset has no held-out split at all, pass "
            "--test-fraction F (e.g. 0.2) to hold out a seeded share of each class, near-duplicates kept together."
        )
    return roots


def _unsplit_root(train: SourceTree, test: SourceTree | None) -> dict[str, Path]:
    """--test-fraction: the one folder of training images (the class folders, or a lone train/ split)."""
    if test is not None:
        raise DataPreparationError(
            "--test-fraction holds out test images from a dataset without a test split, but --test-source already "
            "gives one. Fix: drop --test-fraction to use the --test-source images, or drop --test-source."
        )
    root = _unwrap(train.root, lambda folder: _holds_class_folders(folder) or _holds_split_folders(folder))
    splits = {split_of(p.name): p for p in subfolders(root) if split_of(p.name)}
    held_out = [train.show(p) for split, p in splits.items() if split != "train"]
    if held_out:
        raise DataPreparationError(
            f"{train.show(root)}: --test-fraction holds out test images from a dataset without a held-out split, "
            f"but this one has {' and '.join(held_out)}. Fix: drop --test-fraction to use the dataset's own split "
            "(--dedupe leaves out its test images that copy training images)."
        )
    return {"train": splits.get("train", root)}


def _holds_split_folders(folder: Path) -> bool:
    return any(split_of(p.name) for p in subfolders(folder))


def _unwrap(root: Path, is_dataset_root: Callable[[Path], bool]) -> Path:
    """Enter single wrapper folders (`download/Face Mask Dataset/...`) down to the dataset's root, if one is there.

    A folder is a wrapper when it is the only folder here and holds folders itself (a class folder holds files).
    """
    folder = root
    while not is_dataset_root(folder):
        inside = subfolders(folder)
        if len(inside) != 1 or not subfolders(inside[0]):
            return root  # no dataset root below: problems are reported at the folder given
        folder = inside[0]
    return folder


def _holds_class_folders(folder: Path) -> bool:
    inside = subfolders(folder)
    return bool(inside) and all(not subfolders(p) for p in inside)


def _map_classes(
    root: Path, split: str, class_map: dict[str, list[str]] | None, show: Callable[[Path], str]
) -> tuple[list[tuple[str, Path]], list[Path]]:
    """(competition class, folder) pairs of one split, and the folders not used."""
    folders = subfolders(root)
    if not folders:
        raise DataPreparationError(
            f"{show(root)}: no class folders in the {split} images. Fix: put each class's images in its own folder, "
            f"e.g. {show(root)}/with_mask/ and {show(root)}/without_mask/."
        )
    if class_map:
        named = [(cls, _named_folder(show(root), folders, cls, name)) for cls, names in class_map.items()
                 for name in names]
        mapped = [(cls, path) for cls, path in named if path is not None]
        used = {path for _, path in mapped}
        return mapped, [path for path in folders if path not in used]
    by_class: dict[str, list[Path]] = defaultdict(list)
    for path in folders:
        by_class[class_key(path.name)].append(path)
    _refuse_unmappable(show(root), by_class)
    return [(cls, paths[0]) for cls, paths in sorted(by_class.items())], []


def _named_folder(root: str, folders: list[Path], cls: str, name: str) -> Path | None:
    """The folder `--class CLS=NAME` names in this split: exactly, else ignoring case and separators; None when
    absent here."""
    exact = [p for p in folders if p.name == name]
    matches = exact or [p for p in folders if loose_key(p.name) == loose_key(name)]
    if len(matches) > 1:
        raise DataPreparationError(
            f"{root}: --class {cls}={name} matches several folders. Fix: spell the folder exactly as one of:",
            [p.name for p in matches],
        )
    return matches[0] if matches else None


def _refuse_unmappable(root: str, by_class: dict[str, list[Path]]) -> None:
    problems = [f"{' and '.join(p.name for p in paths)} would both be class {cls!r}"
                for cls, paths in by_class.items() if cls and len(paths) > 1]
    problems += [f"{p.name!r} has no letters or digits to name a class" for p in by_class.get("", [])]
    if problems:
        found = ", ".join(p.name for paths in by_class.values() for p in paths)
        raise DataPreparationError(
            f"{root}: the class folders cannot be mapped to class names automatically (folders found: {found}). "
            "Fix: name each competition class and its folder with --class NAME=FOLDER (repeatable):",
            problems,
        )


def check_class_names(class_map: dict[str, list[str]]) -> None:
    bad = [cls for cls in class_map if not CLASS_NAME.match(cls)]
    if bad:
        raise DataPreparationError(
            "--class: class names become submission folder names and may hold only letters, digits, '_', '-' and "
            "'.'. Fix: choose other names for:",
            bad,
        )


def _require_both_parts(layout: Layout) -> None:
    where: dict[str, dict[Part, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for folder in layout.folders:
        where[folder.cls][folder.part].append(folder.path.parent)
    show = layout.show
    problems = []
    for cls, parts in sorted(where.items()):
        for part, other in PART_PAIRS:
            if parts[part] and not parts[other]:
                roots = [root for split, root in layout.roots.items() if (split == "train") == (other == "train")]
                problems.append(
                    f"class {cls!r} is in {' and '.join(map(show, sorted(set(parts[part]))))} but missing in "
                    f"{' and '.join(map(show, roots))}"
                )
    if problems:
        raise DataPreparationError(
            "Training and test images must have the same classes. Fix: add the missing class folders (with images), "
            "remove the extra ones, or map folders explicitly with --class NAME=FOLDER:",
            problems,
        )


def source_images(layout: Layout) -> list[SourceImage]:
    """Every source file with its output name (unique per output folder, see the module docstring), sorted."""
    show = layout.show
    groups: dict[tuple[Part, str], list[tuple[Path, str]]] = defaultdict(list)
    for folder in layout.folders:
        for path in _files_in(folder, show):
            groups[(folder.part, folder.cls)].append((path, f"{folder.split}/{folder.path.name}/{path.name}"))
    images = []
    for (part, cls), files in sorted(groups.items()):
        for (path, _), name in zip(files, output_names(files), strict=True):
            images.append(SourceImage(path=path, part=part, cls=cls, name=name, shown=show(path)))
    return sorted(images, key=lambda image: (image.part, image.cls, image.name))


def output_names(files: list[tuple[Path, str]]) -> list[str]:
    """`<stem>.png` for each (path, origin), with colliding stems disambiguated by a hash of their origin."""
    stems: dict[str, int] = defaultdict(int)
    for path, _ in files:
        stems[path.stem] += 1
    taken = {f"{stem}.png" for stem, count in stems.items() if count == 1}
    names = []
    for path, origin in files:
        if stems[path.stem] == 1:
            names.append(f"{path.stem}.png")
            continue
        digest = hashlib.sha256(origin.encode()).hexdigest()
        length = 8
        while (name := f"{path.stem}-{digest[:length]}.png") in taken:  # a real file already has that name
            length += 4
        taken.add(name)
        names.append(name)
    return names


def _files_in(folder: ClassFolder, show: Callable[[Path], str]) -> list[Path]:
    entries = [p for p in sorted(folder.path.iterdir()) if not is_ignored(p.name)]
    if not entries:
        raise DataPreparationError(
            f"{show(folder.path)}: the class folder is empty. Fix: add the {folder.part} images of class "
            f"{folder.cls!r}, or remove the class from both parts."
        )
    nested = [show(p) for p in entries if not p.is_file()]
    if nested:
        raise DataPreparationError(
            f"{show(folder.path)}: a class folder must hold image files only, not folders. Fix: move these out:",
            nested,
        )
    return entries
