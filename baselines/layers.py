"""Building blocks shared by several baselines."""

from __future__ import annotations

import torch
from torch import nn


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose per-channel scale and shift come from the class label (as in SNGAN/BigGAN generators)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gain = self.gain(labels)[:, :, None, None]
        bias = self.bias(labels)[:, :, None, None]
        return self.norm(x) * gain + bias


def upsample_conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Nearest-neighbour upsampling then a 3x3 conv: the course DCGAN's block, free of transposed-conv checkerboards."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def project_to_4x4(in_features: int, channels: int) -> nn.Sequential:
    """A generator's stem: the input vector to a 4x4 map of `channels`, batch-normalised, ReLU."""
    return nn.Sequential(
        nn.Linear(in_features, 4 * 4 * channels, bias=False),
        nn.Unflatten(1, (channels, 4, 4)),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    )


def downsampling_channels(width: int) -> list[tuple[int, int]]:
    """(in, out) channels of a discriminator's four stride-2 convolutions, from a 64x64 grey image to 4x4."""
    channels = (1, width, 2 * width, 4 * width, 8 * width)
    return list(zip(channels, channels[1:], strict=False))


def check_image_size(image_size: int) -> None:
    if image_size != 64:
        raise ValueError(
            f"image_size {image_size}: the baselines are built for 64x64 images; "
            "prepare the competition with image_size 64."
        )
