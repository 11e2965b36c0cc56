"""The periodic FID of a training run, computed by the scoring engine (FID math lives only in server/scoring/).

Training must not depend on the scoring engine: when it is missing or the Inception weights are not installed
locally (this never downloads or converts them), the evaluation is skipped with one message naming the fix.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from tqdm import tqdm


@contextmanager
def cudnn_flags_kept():
    """The scoring engine sets cuDNN flags for exact FIDs; training goes on with its own afterwards."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = saved


class HoldoutFID:
    """FID per class of generated images against held-out training images; the reference side is computed once."""

    def __init__(self, holdout: dict[str, np.ndarray], device: str):
        self.holdout, self.device = holdout, device
        self.extractor = None
        self.references: dict = {}
        self.skipped = False

    def load_extractor(self):
        try:
            from server.scoring import FeatureExtractor
            from server.scoring.weights import find_local_weights
        except ImportError as exc:
            return self.skip(f"the scoring engine is not installed ({exc})")
        weights = find_local_weights()
        if weights is None:
            return self.skip("no FID Inception weights installed; run `arena weights import` to enable it")
        return FeatureExtractor(device=self.device, weights_path=weights.path)

    def skip(self, reason: str) -> None:
        tqdm.write(f"periodic FID skipped: {reason}")
        self.skipped = True

    def __call__(self, generated: dict[str, np.ndarray]) -> dict | None:
        """{"fid": {class: FID}, "fid_sum": ...} for uint8 (N, H, W) samples, or None when unavailable."""
        if self.skipped or not self.holdout:
            return None
        if self.extractor is None:
            self.extractor = self.load_extractor()
            if self.extractor is None:
                return None
        from server.scoring import ReferenceStats, fid_of_images

        fids = {}
        with cudnn_flags_kept():
            for cls, real in self.holdout.items():
                if cls not in self.references:
                    features = self.extractor.features_of_arrays(real)
                    self.references[cls] = ReferenceStats.of_features(features, self.extractor.device)
                fids[cls] = float(fid_of_images(self.references[cls], generated[cls], self.extractor))
        return {"fid": fids, "fid_sum": sum(fids.values())}
