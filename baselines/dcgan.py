"""The course's conditional DCGAN: linear to 4x4x512, upsample + conv blocks with BatchNorm, label embeddings.

G: the label embedding is concatenated to z, projected to a 4x4x512 map, then upsampled four times to 64x64.
D: the label embedding becomes an extra 64x64 input plane; strided 4x4 convs with BatchNorm and LeakyReLU.
Loss: the standard non-saturating GAN loss (binary cross-entropy on logits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.config import GANConfig
from baselines.layers import project_to_4x4, upsample_conv_block


@dataclass
class Config(GANConfig):
    label_dim: int = 50
    width: int = 64  # channels of the last generator block and the first discriminator block


class Generator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        w = config.width
        self.label_embedding = nn.Embedding(num_classes, config.label_dim)
        self.project = project_to_4x4(config.z_dim + config.label_dim, 8 * w)
        self.blocks = nn.Sequential(
            upsample_conv_block(8 * w, 4 * w),  # 8x8
            upsample_conv_block(4 * w, 2 * w),  # 16x16
            upsample_conv_block(2 * w, w),  # 32x32
            upsample_conv_block(w, w // 2),  # 64x64
        )
        self.to_image = nn.Sequential(nn.Conv2d(w // 2, 1, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.label_embedding(labels)], dim=1))
        return self.to_image(self.blocks(h))


def _down(in_channels: int, out_channels: int, *, batch_norm: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class Discriminator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        w = config.width
        self.label_plane = nn.Sequential(nn.Embedding(num_classes, 64 * 64), nn.Unflatten(1, (1, 64, 64)))
        self.net = nn.Sequential(
            *_down(2, w, batch_norm=False),  # 32x32
            *_down(w, 2 * w),  # 16x16
            *_down(2 * w, 4 * w),  # 8x8
            *_down(4 * w, 8 * w),  # 4x4
            nn.Flatten(),
            nn.Linear(8 * w * 4 * 4, 1),
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([images, self.label_plane(labels)], dim=1)).squeeze(1)


def discriminator_loss(D, real, fake, labels, config: Config):
    real_out, fake_out = D(real, labels), D(fake, labels)
    loss = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()  # BCE: real -> 1, fake -> 0
    return loss, {"d_real": real_out.mean().item(), "d_fake": fake_out.mean().item()}


def generator_loss(D, fake, labels, config: Config):
    return F.softplus(-D(fake, labels)).mean(), {}
