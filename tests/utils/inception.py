"""Randomly initialized FID InceptionV3 weights, installed where pytorch-fid's own loader looks for them.

Unit tests use these so the real pytorch-fid code path (hub cache lookup, FIDInception blocks) runs without the
real 92 MB checkpoint. At least one test uses the real converted weights instead (see tests/server/scoring).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"


def random_fid_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    from server.scoring.network import empty_fid_inception

    torch.manual_seed(seed)
    net = empty_fid_inception()
    for module in net.modules():
        # torchvision's default init (std 0.1) makes activations explode over 94 convolutions; He init keeps
        # pool3 features finite and varied, which is all the tests need.
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net.state_dict()


def install_random_fid_weights(torch_home: Path, seed: int = 0) -> Path:
    """Write random FID weights to TORCH_HOME/hub/checkpoints/ (set TORCH_HOME to torch_home to use them)."""
    path = Path(torch_home) / "hub" / "checkpoints" / FID_WEIGHTS_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(random_fid_inception_state_dict(seed), path)
    return path
