"""How fast `arena data prepare` converts and audits a messy download the size of the course's dataset.

    python -m bench.prepare_data [--images 20000] [--workers 2]

Builds a synthetic download shaped like Kaggle's face-mask datasets, with their mess: a wrapper folder,
capitalized Train/ Test/ Validation/ splits (80/13/7 %), CamelCase class folders (WithMask, WithoutMask), numbered
file names that collide between Test/ and Validation/ and as `N.jpg` next to `N.png` (1 %), 5 % images smaller than
64x64, 2 % test images that copy a training image (half byte-identical, half re-encoded at another size). Images are
smooth random pictures, 80 % RGB JPEG and 20 % PNG, 96-256 px. Times `prepare_competition` (decode, convert,
encode, audit, write), counts the CPU seconds of all its processes (on a shared machine, files / (CPU s / workers)
is the rate it reaches with the cores to itself), checks the planted copies are found, and writes
bench/results/prepare_data.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.report import print_rows, write_result
from server.data import prepare_competition

SPLITS = (("Train", 0.80), ("Test", 0.13), ("Validation", 0.07))
CLASSES = ("WithMask", "WithoutMask")


def picture(seed: int, size: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)


def write_folder(job: tuple[Path, int, int]) -> None:
    """One split/class folder of `count` images, seeded by `seed`."""
    folder, count, seed = job
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.random() < 0.05
        size = int(rng.integers(34, 64) if small else rng.integers(96, 257))
        image = picture(seed * 1_000_000 + i, size)
        if rng.random() < 0.8:
            image.save(folder / f"{i}.jpg", quality=90)
        else:
            image.save(folder / f"{i}.png")
        if rng.random() < 0.01:  # a different picture under the same stem
            picture(seed * 1_000_000 + i + 500_000, size).save(folder / f"{i}.png")


def make_download(root: Path, images: int) -> int:
    """The messy tree under root/Face Mask Dataset; returns the number of planted train->test copies."""
    base = root / "Face Mask Dataset"
    jobs = [(base / split / cls, int(images * share / len(CLASSES)), 100 * s + c)
            for s, (split, share) in enumerate(SPLITS) for c, cls in enumerate(CLASSES)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(write_folder, jobs)
    planted = 0
    rng = np.random.default_rng(7)
    for cls in CLASSES:
        train = sorted((base / "Train" / cls).iterdir())
        tests = sorted((base / "Test" / cls).iterdir())
        for k, target in enumerate(rng.choice(len(tests), int(0.02 * len(tests)), replace=False)):
            source = train[int(rng.integers(len(train)))]
            with Image.open(source) as image:
                if min(image.size) < 64:
                    continue
                destination = tests[target]
                destination.unlink()
                if k % 2:
                    image.convert("RGB").resize((image.width + 20, image.height + 20)).save(
                        destination.with_name(f"copy-{k}.jpg"), quality=85)
                else:
                    shutil.copy(source, destination.with_name(f"copy-{k}{source.suffix}"))
                planted += 1
    return planted


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the decoding worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        planted = make_download(Path(tmp) / "download", args.images)
        files = sum(1 for p in Path(tmp, "download").rglob("*") if p.is_file())
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = prepare_competition(Path(tmp) / "download", Path(tmp) / "out", workers=args.workers, progress=False)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    report = result.report
    assert report.duplicates is not None
    counts = report.duplicates.counts()
    found = counts["exact"]["across_train_test"] + counts["near"]["across_train_test"]
    row = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, Python {platform.python_version()}",
        "workers": args.workers,
        "files": files,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "img_per_s": round(files / wall, 1),
        # What the same work gives when the cores are not shared: the machine is shared by several developers.
        "img_per_s_if_cpu_bound": round(files / (cpu / args.workers), 1),
        "small_left_out": len(report.small),
        "renamed": len(report.renamed),
        "copies_planted": planted,
        "across_pairs_found": found,
    }
    print(row.pop("machine"))
    print_rows(list(row), [row])
    write_result("prepare_data.json", row)


if __name__ == "__main__":
    main()
