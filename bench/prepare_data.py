"""How fast `arena data prepare` converts a dataset shaped like Face-Mask-Classification-20000-Dataset.

    python bench/prepare_data.py [--per-class 250] [--workers 2]

Builds a synthetic clone (224x224 grayscale PNGs in train/<class>/ and test/<class>/, 4:1 like the real one),
times the preparation, extrapolates to the real 20,000 images, and writes bench/results/prepare_data.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.data import prepare_competition  # noqa: E402

REAL_DATASET_IMAGES = 20_000


def make_clone(root: Path, per_class: int) -> int:
    """Smooth random 224x224 grayscale images (PNG compresses them like photos, unlike pure noise)."""
    rng = np.random.default_rng(0)
    count = 0
    for cls in ("with_mask", "without_mask"):
        for part, n in (("train", per_class * 4 // 5), ("test", per_class // 5)):
            folder = root / part / cls
            folder.mkdir(parents=True)
            for i in range(n):
                coarse = Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8))
                coarse.resize((224, 224), Image.Resampling.BICUBIC).save(folder / f"{cls}-{i:05d}.png")
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        images = make_clone(Path(tmp) / "clone", args.per_class)
        wall, cpu = time.perf_counter(), time.process_time()
        prepare_competition(Path(tmp) / "clone", Path(tmp) / "out", progress=False, workers=args.workers)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        "workers": args.workers,
        "images": images,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "img_per_s": round(images / wall, 1),
        "real_dataset_s_estimate": round(REAL_DATASET_IMAGES * wall / images, 1),
    }
    print(result["machine"])
    columns = ["workers", "images", "wall_s", "cpu_s", "img_per_s", "real_dataset_s_estimate"]
    print(" | ".join(columns))
    print(" | ".join(str(result[c]) for c in columns))
    out = Path(__file__).resolve().parent / "results" / "prepare_data.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
