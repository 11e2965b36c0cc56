"""The periodic FID of a training run, computed by the scoring engine (FID math lives only in server/scoring/).

Training must not depend on the scoring engine: when it is missing or its Inception weights are not installed,
the evaluation is skipped with one message naming the fix, and training goes on.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

_unavailable_reported = False


def _report_unavailable(reason: str) -> None:
    global _unavailable_reported
    if not _unavailable_reported:
        tqdm.write(f"periodic FID skipped: {reason}")
        _unavailable_reported = True


def fid_against_holdout(generated: dict[str, np.ndarray], holdout: dict[str, np.ndarray], *,
                        device: str) -> dict | None:
    """{"fid": {class: FID}, "fid_sum": ...} of uint8 (N, H, W) samples vs held-out training images, or None."""
    try:
        from server.scoring import WeightsNotFoundError, fid_of_images
    except ImportError as exc:
        _report_unavailable(f"the scoring engine is not installed ({exc})")
        return None
    try:
        fids = {cls: float(fid_of_images(generated[cls], holdout[cls], device=device)) for cls in holdout}
    except WeightsNotFoundError as exc:
        _report_unavailable(str(exc))
        return None
    return {"fid": fids, "fid_sum": sum(fids.values())}
