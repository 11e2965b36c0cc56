"""Calibration of the FID interval on real faces at competition size, in both regimes a leaderboard sees.

    python -m bench.calibration_features real                   # once: face-mask-4k through the network (cached)
    python -m bench.calibration_features generator --model G.onnx --sets 3 --images 1000      # once (cached)
    python -m bench.calibration                                 # seconds to minutes from the cached features

Reference (both regimes): per class, face-mask-4k photos as prepare makes them (64x64 grayscale), one per
near-duplicate group (the audit's groups, server/data/split.py: the folder holds augmented copies), a seeded
`--reference` public and `--reference` private images.
- real regime (a good entry, FID 20-60): the generator is "a photo drawn from the rest of the class".
- generator regime (a CPU-trained baseline, FID in the hundreds): the generator is the bundled model's samples.

Fresh sets: the pool of each regime (the remaining photos; the model's cached samples) is cut at random into
disjoint sets of n images, again for each of `--partitions` seeded partitions. Disjoint sets drawn without
replacement from a pool of N behave, for the variance, like independent draws from the population the pool came
from: for a linear statistic E[sample variance across disjoint sets] = S^2 / n exactly (the finite-population
correction (1 - n/N) of each set is offset by the negative covariance -S^2/N between disjoint sets), and FID is a
smooth function of the sets' moments; tests/server/scoring/test_calibration.py checks it on Gaussian features against
truly fresh sets. So the real spread of a set's FID is sqrt(mean over partitions of the variance of its sets'
FIDs), and the pairs for coverage are pairs of sets of one partition (disjoint, hence like independent).

Per regime, class, split and set size, for each estimator of uncertainty.py: the mean reported se over the real
sd (target 0.85-1.2) and the pairwise coverage: how often set j's FID lies inside set i's FID +- 1.96 se_i
(ideal 83.4% = P(|Z| < 1.96 / sqrt 2); target 78-90%). Ties: how often two sets of the same generator are tied by
the board's rule (ranking.statistically_tied), and how often a set is told apart from a set whose FID was shifted
by 3 reported standard errors of the difference (a second generator 3 se away). Writes
bench/results/calibration-<regimes>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.calibration_features import RESULTS, generator_set_path, real_features

CLASSES = ("with_mask", "without_mask")
SPLITS = ("public", "private")


@dataclass(frozen=True)
class Estimator:
    name: str
    counts: Callable[[int, int, int], np.ndarray]  # (n, replicates, seed) -> (replicates, n) counts
    scale: Callable[[int], float]  # se = scale(n) * sd(replicates)


def estimators() -> dict[str, Estimator]:
    from server.scoring.uncertainty import bootstrap_counts, half_sample_counts, half_sample_scale

    return {
        "bootstrap": Estimator("bootstrap", bootstrap_counts, lambda n: 1.0),
        "half-sampling": Estimator("half-sampling", half_sample_counts, half_sample_scale),
    }


def distinct_photos(data: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of one photo per near-duplicate group (the first name of each group)."""
    from server.data.audit import AuditedImage, find_duplicates
    from server.data.split import duplicate_groups
    from server.data.writer import encode_png

    names = [str(name) for name in data["names"]]
    audited = [AuditedImage(name, "train", encode_png(pixels), int(phash))
               for name, pixels, phash in zip(names, data["pixels"], data["phash"], strict=True)]
    groups = duplicate_groups(names, find_duplicates(audited))
    index = {name: i for i, name in enumerate(names)}
    return np.array(sorted(index[group[0]] for group in groups))


def references_and_pool(cls: str, size: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """{split: reference features}, the pool of the remaining distinct photos, and how many photos were copies."""
    data = real_features(cls)
    keep = distinct_photos(data)
    order = np.random.default_rng([seed, CLASSES.index(cls)]).permutation(keep)
    features = data["features"]
    references = {"public": features[order[:size]], "private": features[order[size : 2 * size]]}
    return references, features[order[2 * size :]], len(data["features"]) - len(keep)


def generator_pool(model_sha: str, cls: str) -> np.ndarray:
    """Every cached sample set of the model for this class, stacked."""
    paths = sorted(RESULTS.glob(f"calibration-generator-{model_sha}-{cls}-*.npz"))
    return np.concatenate([np.load(path)["features"] for path in paths]) if paths else np.zeros((0, 2048))


def disjoint_sets(pool: np.ndarray, n: int, partitions: int, seed: int):
    """Each partition: the pool cut at random into len(pool) // n disjoint sets of n."""
    for partition in range(partitions):
        order = np.random.default_rng([seed, n, partition]).permutation(len(pool))
        yield [pool[order[k * n : (k + 1) * n]] for k in range(len(pool) // n)]


def gaussian_sets(pool: np.ndarray, n: int, sets: int, seed: int):
    """One 'partition' of `sets` fresh sets from the Gaussian with the pool's mean and covariance (exactly: mean +
    standard normals times the pool's centred rows / sqrt(N - 1)): a generator that can be sampled without end."""
    centred = (pool - pool.mean(axis=0)) / np.sqrt(len(pool) - 1)
    rng = np.random.default_rng([seed, n, 7])
    yield [pool.mean(axis=0) + rng.standard_normal((n, len(pool))) @ centred for _ in range(sets)]


def measure_cell(partitions, references: dict, n: int, replicates: int, methods: dict[str, Estimator]) -> dict:
    """FIDs and every estimator's se of each set of each partition, against both splits."""
    from server.scoring.frechet import ReferenceStats, frechet_distance_to_reference
    from server.scoring.uncertainty import frechet_replicates, reference_factor

    stats = {split: ReferenceStats.of_features(features) for split, features in references.items()}
    factors = {split: reference_factor(stats[split], references[split]) for split in SPLITS}
    cell: dict = {split: {"fid": [], **{m: [] for m in methods}, "seconds": dict.fromkeys(methods, 0.0)}
                  for split in SPLITS}
    for partition, sets in enumerate(partitions):
        rows: dict = {split: {"fid": [], **{m: [] for m in methods}} for split in SPLITS}
        for k, features in enumerate(sets):
            for name, method in methods.items():
                counts = method.counts(n, replicates, 1000 * partition + k)
                for split in SPLITS:
                    started = time.perf_counter()
                    reps = frechet_replicates(stats[split], factors[split], features, counts)
                    rows[split][name].append(method.scale(n) * float(np.std(reps, ddof=1)))
                    cell[split]["seconds"][name] += time.perf_counter() - started
            for split in SPLITS:
                rows[split]["fid"].append(frechet_distance_to_reference(stats[split], features))
        for split in SPLITS:
            for key, values in rows[split].items():
                cell[split][key].append(values)
    return cell


def summarize(cell: dict, methods: dict[str, Estimator]) -> dict:
    """Per split: FIDs, the real sd, and per estimator se / sd, coverage and tie rates."""
    from server.boards.ranking import statistically_tied
    from submissions.results import Z_95

    out = {}
    for split in SPLITS:
        fids = np.array(cell[split]["fid"])  # (partitions, sets)
        sd = float(np.sqrt(np.mean(np.var(fids, axis=1, ddof=1))))
        row = {"sets_per_partition": fids.shape[1], "partitions": fids.shape[0], "fid_mean": float(fids.mean()),
               "fid_min": float(fids.min()), "fid_max": float(fids.max()), "sd_between_sets": sd}
        for name in methods:
            se = np.array(cell[split][name])
            pairs = [(p, i, j) for p in range(fids.shape[0]) for i in range(fids.shape[1])
                     for j in range(fids.shape[1]) if i != j]
            covered = [abs(fids[p, j] - fids[p, i]) <= Z_95 * se[p, i] for p, i, j in pairs]
            tied = [statistically_tied(fids[p, i], se[p, i], fids[p, j], se[p, j]) for p, i, j in pairs if i < j]
            # A second generator whose true FID is 3 standard errors of the difference worse: set j shifted.
            apart = [not statistically_tied(fids[p, i], se[p, i], fids[p, j] + 3 * np.hypot(se[p, i], se[p, j]),
                                            se[p, j]) for p, i, j in pairs if i < j]
            # ... and one whose FID is 3 standard errors of one entry worse (set j shifted by 3 se_j).
            apart_one = [not statistically_tied(fids[p, i], se[p, i], fids[p, j] + 3 * se[p, j], se[p, j])
                         for p, i, j in pairs if i < j]
            row[name] = {"mean_se": float(se.mean()), "se_over_sd": float(se.mean() / sd),
                         "se_over_sd_95": ratio_range(float(se.mean()), sd, fids.shape[1] - 1),
                         "coverage": float(np.mean(covered)), "pairs": len(pairs),
                         "same_generator_tied": float(np.mean(tied)), "three_se_apart_told": float(np.mean(apart)),
                         "three_single_se_apart_told": float(np.mean(apart_one)),
                         "seconds_per_set": cell[split]["seconds"][name] / se.size}
        out[split] = row
    return out


def ratio_range(se: float, sd: float, df: int) -> list[float]:
    """The 95% range of se / (the true sd) that a between-set sd measured with `df` degrees of freedom allows
    (df * sd^2 / true^2 ~ chi-square(df) for normal FIDs): with 20 sets the sd alone is uncertain by about +-30%.
    df is one partition's sets - 1; the other partitions re-cut the same images and add little."""
    from scipy.stats import chi2

    return [se / sd * np.sqrt(chi2.ppf(q, df) / df) for q in (0.025, 0.975)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=int, default=250, help="Real images per split (public, private).")
    parser.add_argument("--partitions", type=int, default=8, help="Random partitions of each pool into sets.")
    parser.add_argument("--replicates", type=int, default=None, help="Default: uncertainty.REPLICATES.")
    parser.add_argument("--model", default="calibration-mlp_cgan.onnx", help="The generator, in bench/results/.")
    parser.add_argument("--sizes", default="200,500,1000")
    parser.add_argument("--regimes", default="real,generator,gaussian-real,gaussian-generator")
    parser.add_argument("--gaussian-sets", type=int, default=30, help="Fresh sets per Gaussian cell.")
    parser.add_argument("--estimators", default="bootstrap,half-sampling")
    parser.add_argument("--classes", default=",".join(CLASSES))
    parser.add_argument("--seed", type=int, default=24)
    args = parser.parse_args()
    from server.scoring.uncertainty import REPLICATES

    replicates = args.replicates or REPLICATES
    methods = {name: estimators()[name] for name in args.estimators.split(",")}
    model = RESULTS / args.model
    model_sha = generator_set_path(model, "x", 0, 0).name.split("-")[2] if model.is_file() else "none"
    started, load_before = time.perf_counter(), os.getloadavg()
    results = []
    for regime in args.regimes.split(","):
        for cls in args.classes.split(","):
            references, real_pool, copies = references_and_pool(cls, args.reference, args.seed)
            pool = real_pool if regime.endswith("real") else generator_pool(model_sha, cls)
            for n in map(int, args.sizes.split(",")):
                if len(pool) < 2 * n and not regime.startswith("gaussian"):
                    print(f"{regime} {cls} n={n}: pool of {len(pool)} holds fewer than two sets; skipped")
                    continue
                partitions = (gaussian_sets(pool, n, args.gaussian_sets, args.seed) if regime.startswith("gaussian")
                              else disjoint_sets(pool, n, args.partitions, args.seed))
                cell = measure_cell(partitions, references, n, replicates, methods)
                summary = summarize(cell, methods)
                results.append({"regime": regime, "class": cls, "images_per_set": n, "pool": len(pool),
                                "reference_per_split": args.reference, "copies_left_out": copies,
                                "splits": summary, "fids": {s: cell[s]["fid"] for s in SPLITS},
                                "se": {s: {m: cell[s][m] for m in methods} for s in SPLITS}})
                print_cell(results[-1], methods)
    out = RESULTS / f"calibration-{args.regimes.replace(',', '+')}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"replicates": replicates, "model": args.model, "results": results,
                               "wall_s": time.perf_counter() - started,
                               "load_average_1m": [load_before[0], os.getloadavg()[0]]}, indent=1))
    print(f"wrote {out} ({time.perf_counter() - started:.0f} s; load {load_before[0]:.1f} -> "
          f"{os.getloadavg()[0]:.1f})")


def print_cell(result: dict, methods: dict[str, Estimator]) -> None:
    for split, row in result["splits"].items():
        line = (f"{result['regime']:9} {result['class']:12} {split:7} n={result['images_per_set']:<5} "
                f"sets {row['partitions']}x{row['sets_per_partition']:<3} FID {row['fid_min']:7.1f}-"
                f"{row['fid_max']:<7.1f} sd {row['sd_between_sets']:6.3f}")
        for name in methods:
            m = row[name]
            low, high = m["se_over_sd_95"]
            line += (f" | {name}: se/sd {m['se_over_sd']:.2f} ({low:.2f}-{high:.2f}) cov {m['coverage']:.0%} "
                     f"tied {m['same_generator_tied']:.0%} 3se {m['three_se_apart_told']:.0%}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
