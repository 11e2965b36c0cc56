"""Randomly initialized FID InceptionV3 weights, installed where pytorch-fid's own loader looks for them.

Unit tests use these so the real pytorch-fid code path (hub cache lookup, FIDInception blocks) runs without the
real 92 MB checkpoint. At least one test uses the real converted weights instead (see tests/scoring).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"


def random_fid_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    from pytorch_fid import inception as fid

    torch.manual_seed(seed)
    net = fid._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fid.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid.FIDInceptionE_1(1280)
    net.Mixed_7c = fid.FIDInceptionE_2(2048)
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
