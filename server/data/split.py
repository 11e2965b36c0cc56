"""`--test-fraction F`: hold out a seeded share of each class when the dataset has no test split of its own.

Many downloads are class folders only, and they hold augmented copies of the same photo (`augmented_image_12.jpg`,
`0_0_0 copy 10.jpg`). A plain random split puts a near-copy of a test image into training, and memorization then
scores as quality. So the split moves whole near-duplicate groups: images joined by the audit's exact or near pairs
(server/data/audit.py: perceptual hash, confirmed by pixel correlation), transitively, always land on one side.

Per class the test side gets round(F x images) images, filled by groups in a seeded random order (numpy PCG64 from
`seed`, the seed of the public/private split): a group that would overshoot a class's target is left in training,
so a class's test share can fall short of the target by less than its largest group; a group that spans classes
counts against each of them. The same dataset and seed give the same split on every run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.data.audit import DuplicateReport
from server.data.errors import DataPreparationError

# A separate stream of the prepare seed: changing the public/private split never moves images out of training.
SPLIT_STREAM = 24


@dataclass(frozen=True)
class TestSplit:
    """What `--test-fraction` did, for the summary and manifest.json's `audit.test_split`."""

    fraction: float
    seed: int
    counts: dict[str, dict[str, int]]  # class -> {"train": n, "test": n}
    groups_kept_together: int  # near-duplicate groups of two or more images, each kept on one side
    images_in_groups: int

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_test_fraction(fraction: float) -> None:
    if not 0 < fraction < 1:
        raise DataPreparationError(
            f"--test-fraction {fraction}: the share of each class held out as test images must lie between 0 and 1 "
            "(exclusive). Fix: pass e.g. --test-fraction 0.2."
        )


def duplicate_groups(paths: list[str], duplicates: DuplicateReport) -> list[list[str]]:
    """Every image's group: the connected components of the exact and near pairs (singletons included), sorted."""
    parent = {path: path for path in paths}

    def root(path: str) -> str:
        while parent[path] != path:
            parent[path] = parent[parent[path]]  # path halving keeps the trees flat
            path = parent[path]
        return path

    pairs = [(pair[0], pair[1]) for kind in duplicates.exact.values() for pair in kind]
    pairs += [(pair[0], pair[1]) for kind in duplicates.near.values() for pair in kind]
    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        members[root(path)].append(path)
    return sorted(sorted(group) for group in members.values())


def choose_test_images(
    classes_of: dict[str, str], duplicates: DuplicateReport, *, fraction: float, seed: int
) -> tuple[set[str], TestSplit]:
    """The images (by path) to hold out, and the split's summary. `classes_of`: image path -> class."""
    groups = duplicate_groups(sorted(classes_of), duplicates)
    sizes = Counter(classes_of.values())
    targets = {cls: round(fraction * count) for cls, count in sizes.items()}
    taken: Counter[str] = Counter()
    test: set[str] = set()
    for index in np.random.default_rng([seed, SPLIT_STREAM]).permutation(len(groups)):
        group = groups[index]
        need = Counter(classes_of[path] for path in group)
        if all(taken[cls] + count <= targets[cls] for cls, count in need.items()):
            taken.update(need)
            test.update(group)
    counts = {cls: {"train": sizes[cls] - taken[cls], "test": taken[cls]} for cls in sorted(sizes)}
    _require_both_sides(counts, fraction)
    together = [group for group in groups if len(group) > 1]
    return test, TestSplit(fraction=fraction, seed=seed, counts=counts, groups_kept_together=len(together),
                           images_in_groups=sum(map(len, together)))


def _require_both_sides(counts: dict[str, dict[str, int]], fraction: float) -> None:
    empty = [f"{cls}: {sides['train']} train, {sides['test']} test" for cls, sides in counts.items()
             if not sides["train"] or not sides["test"]]
    if empty:
        raise DataPreparationError(
            f"--test-fraction {fraction} leaves some classes without training or test images (a class needs "
            "images on both sides; near-duplicate groups move as a whole). Fix: add images to these classes, or "
            "choose a fraction that gives each side at least one image:",
            empty,
        )
