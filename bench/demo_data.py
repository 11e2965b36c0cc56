"""How long until the demo competition is ready: generating the data, then InceptionV3 features of every image.

    python bench/demo_data.py [--threads 2] [--train-per-class 400] [--test-per-class 200]

The reference statistics and memorization set need pool3 features of all train and test images; this times that
with pytorch-fid's InceptionV3 on the CPU (random weights of the real architecture when the real ones are not in
TORCH_HOME: the compute is the same). Prints a table and writes bench/results/demo_data.json.
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
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.data import make_demo_competition  # noqa: E402
from server.data.demo import DEFAULT_TEST_PER_CLASS, DEFAULT_TRAIN_PER_CLASS  # noqa: E402
from tests.utils.inception import install_random_fid_weights  # noqa: E402


def load_inception(torch_home: Path) -> torch.nn.Module:
    from pytorch_fid.inception import InceptionV3

    if not (Path(os.environ.get("TORCH_HOME", "")) / "hub" / "checkpoints").is_dir():
        install_random_fid_weights(torch_home)
        os.environ["TORCH_HOME"] = str(torch_home)
    return InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


def feature_seconds(model: torch.nn.Module, paths: list[Path], batch: int = 50) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(paths), batch):
            images = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0 for p in paths[i : i + batch]]
            model(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-per-class", type=int, default=DEFAULT_TRAIN_PER_CLASS)
    parser.add_argument("--test-per-class", type=int, default=DEFAULT_TEST_PER_CLASS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        competition = make_demo_competition(
            Path(tmp) / "demo", train_per_class=args.train_per_class, test_per_class=args.test_per_class
        )
        generate = time.perf_counter() - start
        paths = [p for cls in competition.classes for p in competition.train_files(cls) + competition.test_files(cls)]
        model = load_inception(Path(tmp) / "torch-home")
        features = feature_seconds(model, paths)
    result = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": args.threads,
        "images": len(paths),
        "generate_s": round(generate, 2),
        "features_s": round(features, 2),
        "features_img_per_s": round(len(paths) / features, 2),
        "total_s": round(generate + features, 2),
    }
    print(f"{'images':>8} {'generate s':>11} {'features s':>11} {'img/s':>7} {'total s':>8}")
    print(
        f"{result['images']:>8} {result['generate_s']:>11} {result['features_s']:>11} "
        f"{result['features_img_per_s']:>7} {result['total_s']:>8}"
    )
    out = Path(__file__).resolve().parent / "results" / "demo_data.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
