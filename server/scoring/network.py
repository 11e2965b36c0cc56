"""pytorch-fid's FID InceptionV3, built by pytorch-fid itself from a given weights file.

The bottom of the scoring chain: it imports nothing from the rest of `server.scoring` (weights.py builds on it).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from unittest import mock


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


@contextmanager
def pytorch_fid_loading(path: Path):
    """Make pytorch-fid's InceptionV3 load `path`.

    pytorch-fid hard-codes its loader (torch.hub.load_state_dict_from_url on the release URL), so an explicit
    path can only reach it by swapping that one function while the model is built.
    """
    import torch
    from pytorch_fid import inception

    def load(url, *args, **kwargs):
        return torch.load(path, map_location="cpu", weights_only=True)

    with _loader_lock, mock.patch.object(inception, "load_state_dict_from_url", load):
        yield


_loader_lock = threading.Lock()
