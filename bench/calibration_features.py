"""Pool3 features for the calibration benchmark (bench/calibration.py), computed once and cached in bench/results/.

    python -m bench.calibration_features real                       # every usable face-mask-4k photo, per class
    python -m bench.calibration_features generator --model G.onnx --sets 20 --images 1000
    python -m bench.calibration_features generator --model G.onnx --sets 20 --seed 1020 --classes without_mask

`real`: each photo of ../shared/data/face-mask-4k as `arena data prepare` makes it (64x64 grayscale, photos smaller
than 64 px left out as prepare's default --small skip does), its perceptual hash (for the near-duplicate groups)
and its features -> bench/results/calibration-real-<class>.npz.
`generator`: `--sets` fresh sample sets of a model submission (ONNX, sampled as the worker samples it: seeds
seed, seed + 1, ...) -> bench/results/calibration-generator-<model sha[:12]>-<class>-<images>-<seed>.npz, one file
per set, so an interrupted run resumes where it stopped. Progress goes to stderr (tqdm) and one line per set.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
IMAGE_SIZE = 64


def shared_data(name: str) -> Path:
    """`shared/data/<name>` beside this checkout or any folder above it (CI keeps shared/ beside the checkout)."""
    for parent in ROOT.parents:
        candidate = parent / "shared" / "data" / name
        if candidate.is_dir():
            return candidate
    raise SystemExit(f"shared/data/{name} not found beside {ROOT} or any folder above it")


def extractor():
    from server.scoring.features import FeatureExtractor
    from server.scoring.weights import resolve_weights

    return FeatureExtractor(device="cpu", weights_path=resolve_weights(allow_download=False).path, engine="auto")


def real_features(cls: str) -> dict[str, np.ndarray]:
    """{names, phash, features} of one class of face-mask-4k, from the cache or the network."""
    path = RESULTS / f"calibration-real-{cls}.npz"
    if path.is_file():
        return dict(np.load(path))
    from server.data.audit import perceptual_hash
    from server.data.prepare import UnusableImage, load_competition_image

    folder = shared_data("face-mask-4k") / cls
    names, pixels = [], []
    for file in sorted(folder.iterdir()):
        try:
            pixels.append(load_competition_image(file, IMAGE_SIZE))
        except UnusableImage:
            continue  # smaller than 64 px, as prepare's default --small skip leaves out
        names.append(file.name)
    images = np.stack(pixels)
    started = time.perf_counter()
    features = extractor().features_of_arrays(images, progress=True, label=f"real {cls}")
    print(f"real {cls}: {len(images)} images in {time.perf_counter() - started:.0f} s", flush=True)
    result = {"names": np.array(names), "phash": np.array([perceptual_hash(p) for p in pixels], np.uint64),
              "features": features, "pixels": images}
    RESULTS.mkdir(parents=True, exist_ok=True)
    np.savez(path, **result)
    return result


def generator_set_path(model: Path, cls: str, images: int, seed: int) -> Path:
    sha = hashlib.sha256(model.read_bytes()).hexdigest()[:12]
    return RESULTS / f"calibration-generator-{sha}-{cls}-{images}-{seed}.npz"


def generator_sets(model: Path, images: int, seeds: list[int], *, classes: list[str] | None = None,
                   extract: bool = True) -> dict[str, list[np.ndarray]]:
    """{class: [features of each set]} of the model's sample sets at these seeds, for `classes` (default: all of the
    model's; missing sets skipped unless `extract`). Every class is sampled, as the worker samples, so a seed's images
    of a class are the same whichever classes are asked for; only the asked ones go through the network."""
    from submissions.sampling import SamplingJob, run_job

    model_classes, latent_size = model_metadata(model)
    classes = classes or model_classes
    out: dict[str, list[np.ndarray]] = {cls: [] for cls in classes}
    network = None
    for seed in seeds:
        paths = {cls: generator_set_path(model, cls, images, seed) for cls in classes}
        if not all(p.is_file() for p in paths.values()):
            if not extract:
                continue
            network = network or extractor()
            started = time.perf_counter()
            sampled, _ = run_job(SamplingJob(model=str(model), labels=list(range(len(model_classes))),
                                             per_class=images, latent_size=latent_size, image_size=IMAGE_SIZE,
                                             seed=seed))
            for cls in classes:
                images_of_class = sampled[model_classes.index(cls)]
                features = network.features_of_arrays(images_of_class, progress=True, label=f"seed {seed} {cls}")
                RESULTS.mkdir(parents=True, exist_ok=True)
                np.savez(paths[cls], features=features)
            print(f"set seed {seed}: {len(classes)} x {images} images in {time.perf_counter() - started:.0f} s",
                  flush=True)
        for cls in classes:
            out[cls].append(np.load(paths[cls])["features"])
    return out


def model_metadata(model: Path) -> tuple[list[str], int]:
    """The model's classes (label i is classes[i]) and latent size, from its metadata as `arena generate` writes it."""
    import json

    import onnx

    props = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    return list(json.loads(props["classes"])), int(props["latent_size"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["real", "generator"])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--sets", type=int, default=20)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--classes", help="generator: comma-separated classes to extract (default: all)")
    args = parser.parse_args()
    if args.what == "real":
        for cls in ("with_mask", "without_mask"):
            real_features(cls)
    else:
        if args.model is None:
            sys.exit("generator: pass --model G.onnx (arena generate RUN --model G.onnx)")
        generator_sets(args.model, args.images, [args.seed + k for k in range(args.sets)],
                       classes=args.classes.split(",") if args.classes else None)


if __name__ == "__main__":
    main()
