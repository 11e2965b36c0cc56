"""How long until the demo competition is ready: generating the data, then InceptionV3 features of every image.

    python -m bench.demo_data [--threads 2] [--train-per-class 400] [--test-per-class 200]

The reference statistics and memorization set need pool3 features of all train and test images; this times that
with pytorch-fid's InceptionV3 on the CPU, with random weights of the real architecture (the compute is the same
as with the real weights). Wall time suffers when other processes share the cores, so process CPU time is reported
too: divided by the thread count it estimates the wall time on idle cores. Prints a table and writes
bench/results/demo_data.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.report import print_rows, write_result
from server.data import make_demo_competition
from server.data.demo import DEFAULT_TEST_PER_CLASS, DEFAULT_TRAIN_PER_CLASS
from tests.utils.inception import install_random_fid_weights


def load_inception(torch_home: Path) -> torch.nn.Module:
    from pytorch_fid.inception import InceptionV3

    install_random_fid_weights(torch_home)
    os.environ["TORCH_HOME"] = str(torch_home)
    return InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


def timed(function, *args, **kwargs) -> tuple[object, float, float]:
    """(result, wall seconds, process CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def extract_features(model: torch.nn.Module, paths: list[Path], batch: int = 50) -> None:
    with torch.inference_mode():
        for i in range(0, len(paths), batch):
            images = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0 for p in paths[i : i + batch]]
            model(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-per-class", type=int, default=DEFAULT_TRAIN_PER_CLASS)
    parser.add_argument("--test-per-class", type=int, default=DEFAULT_TEST_PER_CLASS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        competition, generate_s, generate_cpu_s = timed(
            make_demo_competition,
            Path(tmp) / "demo",
            train_per_class=args.train_per_class,
            test_per_class=args.test_per_class,
        )
        paths = [p for cls in competition.classes for p in competition.train_files(cls) + competition.test_files(cls)]
        model = load_inception(Path(tmp) / "torch-home")
        _, features_s, features_cpu_s = timed(extract_features, model, paths)
    load = os.getloadavg()[0]
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f}",
        "torch_threads": args.threads,
        "images": len(paths),
        "generate_s": round(generate_s, 1),
        "generate_cpu_s": round(generate_cpu_s, 1),
        "features_s": round(features_s, 1),
        "features_cpu_s": round(features_cpu_s, 1),
        "features_img_per_s_idle_estimate": round(len(paths) / (features_cpu_s / args.threads), 2),
        "ready_s_idle_estimate": round(generate_cpu_s + features_cpu_s / args.threads, 1),
    }
    columns = ["images", "generate_s", "generate_cpu_s", "features_s", "features_cpu_s",
               "features_img_per_s_idle_estimate", "ready_s_idle_estimate"]
    print(result["machine"])
    print_rows(columns, [result])
    write_result("demo_data.json", result)


if __name__ == "__main__":
    main()
