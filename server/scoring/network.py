"""pytorch-fid's FID InceptionV3, built by pytorch-fid itself from a given weights file."""

from __future__ import annotations

from pathlib import Path

from server.scoring.weights import pytorch_fid_loading


def empty_fid_inception():
    """pytorch-fid's FID Inception architecture without weights (the conversion's target layout).

    Mirrors pytorch_fid.inception.fid_inception_v3 minus its download, which cannot be skipped there.
    """
    from pytorch_fid import inception as fid

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
    return net


def load_pool3_inception(weights: Path):
    """`InceptionV3([3])` exactly as pytorch-fid builds it (own resize to 299 and [-1, 1] normalization)."""
    from pytorch_fid.inception import InceptionV3

    with pytorch_fid_loading(weights):
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return model.eval()
