"""Calibration of the FID interval: does one sample set's 95% interval cover the scores of fresh sample sets?

    python -m bench.calibration                        # 20 sets x 100 images vs 200 held-aside real images
    python -m bench.calibration --sets 20 --images 200 --reference 400

A fixed generator: the demo data's procedural face renderer (server/data/demo.py), one class. The reference is a
held-aside set of its images (its own seed); each of `--sets` fresh sample sets (fresh seeds) is scored as a
submission is: FID against the reference with the bootstrap standard error of server/scoring/uncertainty.py
(REPLICATES resamples, seeded by the images). Coverage = over all ordered pairs (i, j), i != j, how often set j's
FID lies inside set i's interval FID_i +- 1.96 se_i. Both scores are noisy, so a perfectly calibrated 95% interval
covers another set's score about 83% of the time (P(|Z| < 1.96 / sqrt(2))); target 80-100%. Also printed: the
bootstrap se against the actual standard deviation of the sets' FIDs. Features use the real FID weights (converted
offline when absent) on the fast CPU engine (`--engine auto`: ONNX Runtime).

The network is nearly all of the cost (sets x images + reference images, each once), so the features of every set
are cached in bench/results/calibration-features-*.npz, keyed by everything that shapes them: a rerun with more
sets, or after a change to the bootstrap, extracts only what is new. Writes
bench/results/calibration-<class>-<images>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def measure(args: argparse.Namespace) -> dict:
    from server.scoring.features import FeatureExtractor
    from server.scoring.frechet import ReferenceStats, frechet_distance_to_reference
    from server.scoring.uncertainty import (
        REPLICATES,
        Z_95,
        bootstrap_counts,
        frechet_replicates,
        interval_of,
        reference_factor,
        seed_of,
    )
    from server.scoring.weights import resolve_weights

    extractor = FeatureExtractor(device="cpu", weights_path=resolve_weights(allow_download=False).path,
                                 engine=args.engine)
    features = CachedFeatures(extractor, args)
    real = features.of("reference", args.reference, seed=args.seed, stream=1)
    reference = ReferenceStats.of_features(real)
    factor = reference_factor(reference, real)
    sets, bootstrap_s = [], 0.0
    for index in range(args.sets):
        generated, images = features.of(f"set {index + 1}/{args.sets}", args.images, seed=args.seed + 1 + index,
                                        stream=2, with_images=True)
        started = time.perf_counter()
        fid = frechet_distance_to_reference(reference, generated)
        counts = bootstrap_counts(len(generated), REPLICATES, seed_of(images, args.cls))
        sets.append(interval_of(fid, frechet_replicates(reference, factor, generated, counts)))
        bootstrap_s += time.perf_counter() - started
    fids = np.array([s.point for s in sets])
    covered = [sets[i].low <= fids[j] <= sets[i].high for i in range(len(sets)) for j in range(len(sets)) if i != j]
    return {
        "class": args.cls, "sets": args.sets, "images_per_set": args.images, "reference_images": args.reference,
        "replicates": REPLICATES, "engine": extractor.engine, "fids": fids.tolist(),
        "standard_errors": [s.se for s in sets], "coverage": float(np.mean(covered)),
        "fid_sd_between_sets": float(np.std(fids, ddof=1)), "mean_bootstrap_se": float(np.mean([s.se for s in sets])),
        "ideal_coverage": float(2 * _normal_cdf(Z_95 / np.sqrt(2)) - 1), "network_s": features.network_s,
        "images_extracted": features.extracted, "bootstrap_s": bootstrap_s,
    }


class CachedFeatures:
    """Features of the renderer's images, from the network once and from bench/results afterwards."""

    def __init__(self, extractor, args: argparse.Namespace):
        self.extractor, self.args = extractor, args
        self.network_s, self.extracted = 0.0, 0

    def of(self, label: str, count: int, *, seed: int, stream: int, with_images: bool = False):
        from server.data.demo import generate_faces

        images = generate_faces(count, seed=seed, with_mask=self.args.cls == "with_mask", stream=stream)
        path = RESULTS / (f"calibration-features-{self.args.cls}-{count}-{seed}-{stream}-{self.extractor.engine}-"
                          f"{self.extractor.weights_sha256[:12]}.npz")
        if path.is_file():
            features = np.load(path)["features"]
        else:
            started = time.perf_counter()
            features = self.extractor.features_of_arrays(images, progress=True, label=label)
            self.network_s += time.perf_counter() - started
            self.extracted += count
            RESULTS.mkdir(parents=True, exist_ok=True)
            np.savez(path, features=features)
        return (features, images) if with_images else features


def _normal_cdf(x: float) -> float:
    from statistics import NormalDist

    return NormalDist().cdf(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=20)
    parser.add_argument("--images", type=int, default=100, help="Images per fresh sample set.")
    parser.add_argument("--reference", type=int, default=200, help="Held-aside real images.")
    parser.add_argument("--cls", default="without_mask", choices=["with_mask", "without_mask"])
    parser.add_argument("--seed", type=int, default=9000)
    parser.add_argument("--engine", default="auto", choices=["auto", "torch", "onnxruntime"])
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()
    result = measure(args) | {"wall_s": time.perf_counter() - started,
                              "load_average_1m": [load_before[0], os.getloadavg()[0]]}
    print(f"\nCalibration, class {result['class']}: {result['sets']} fresh sets of {result['images_per_set']} "
          f"images vs {result['reference_images']} held-aside real images, {result['replicates']} replicates, "
          f"engine {result['engine']}")
    print(f"{'FID of the sets (mean, sd between sets)':<48}{np.mean(result['fids']):>10.3f}"
          f"{result['fid_sd_between_sets']:>10.3f}")
    print(f"{'bootstrap se (mean over sets)':<48}{result['mean_bootstrap_se']:>20.3f}")
    print(f"{'coverage of other sets by one 95% interval':<48}{result['coverage']:>19.1%}"
          f"  (ideal {result['ideal_coverage']:.1%}; target 80-100%)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"calibration-{args.cls}-{args.images}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"network {result['network_s']:.0f} s for {result['images_extracted']} new images (the rest cached), "
          f"bootstraps {result['bootstrap_s']:.1f} s; load average {result['load_average_1m'][0]:.1f} -> "
          f"{result['load_average_1m'][1]:.1f}")
    print(f"wrote {out}  ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
