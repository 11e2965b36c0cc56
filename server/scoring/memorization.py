"""The memorization check (MiFID, as in Kaggle's Generative Dog Images) and the automatic threshold.

d = mean over generated images of min over the memorization set (train + test of the class) of 1 - |cos|.
If d < eps, the class FID is divided by max(d, 1e-15): copies of real images (d ~ 0) can never win.
eps "auto" = 0.5 x the mean nearest-neighbour distance of the held-out test images to the training images, so
fresh samples of the real distribution (which sit about that far from the data) are not penalized.
"""

from __future__ import annotations

import numpy as np

AUTO_EPS_FACTOR = 0.5
MIN_DISTANCE = 1e-15
CHUNK = 1024


def normalized(features: np.ndarray) -> np.ndarray:
    """L2-normalized rows as float32 (cosine similarity becomes a dot product)."""
    features = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32)


def nearest_cosine_distances(queries: np.ndarray, memory: np.ndarray, device: str = "cpu") -> np.ndarray:
    """For each normalized query row, min over normalized memory rows of 1 - |cos|; chunked to bound memory."""
    return nearest_neighbours(queries, memory, device)[0]


def nearest_neighbours(
    queries: np.ndarray, memory: np.ndarray, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(distance, memory row) of each normalized query's nearest memory row by 1 - |cos|."""
    import torch

    memory_t = torch.as_tensor(memory, device=device)
    distances, rows = [], []
    for start in range(0, len(queries), CHUNK):
        chunk = torch.as_tensor(queries[start : start + CHUNK], device=device)
        similarity, row = (chunk @ memory_t.T).abs().max(dim=1)
        distances.append((1.0 - similarity.clamp(max=1.0).double()).cpu().numpy())
        rows.append(row.cpu().numpy())
    if not distances:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(distances), np.concatenate(rows)


def memorization_distance(generated: np.ndarray, memory: np.ndarray, device: str = "cpu") -> float:
    """d = mean_i min_j (1 - |cos(g_i, m_j)|) for raw generated features and a normalized memorization set."""
    return float(nearest_cosine_distances(normalized(generated), memory, device).mean())


def auto_eps(test_normalized: np.ndarray, train_normalized: np.ndarray, device: str = "cpu") -> float:
    """0.5 x mean nearest-neighbour cosine distance of the test images to the training images."""
    return AUTO_EPS_FACTOR * float(nearest_cosine_distances(test_normalized, train_normalized, device).mean())


def penalize(raw_fid: float, distance: float, eps: float) -> tuple[float, bool]:
    """(penalized FID, whether the penalty applied)."""
    if distance < eps:
        return raw_fid / max(distance, MIN_DISTANCE), True
    return raw_fid, False
