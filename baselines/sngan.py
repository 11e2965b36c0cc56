"""The strong baseline: a conditional SNGAN with a projection discriminator, trained the modern way.

G: ResNet blocks with conditional BatchNorm (the label picks each channel's scale and shift).
D: ResNet blocks with spectral normalization on every layer; score = psi(h) + <embed(y), h> (projection).
Training: hinge loss, TTUR (D learns 4x faster than G, Adam betas (0, 0.9)), an exponential moving average of G's
weights for sampling, DiffAugment (translation, cutout, brightness, contrast) on every D input and random
horizontal flips of the real images, since the training sets here are small (9,000 images per class).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from baselines.config import GANConfig
from baselines.layers import ConditionalBatchNorm2d


@dataclass
class Config(GANConfig):
    z_dim: int = 128
    width: int = 32
    epochs: int = 100  # augmentation keeps D from overfitting, so longer training keeps paying off
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    ema_decay: float = 0.999
    augment: str = "translation,cutout,brightness,contrast"
    xflip: bool = True


class GeneratorBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_classes: int):
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_channels, num_classes)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = ConditionalBatchNorm2d(out_channels, num_classes)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, labels)), scale_factor=2)
        h = self.conv2(F.relu(self.norm2(self.conv1(h), labels)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2))


class Generator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        w = config.width
        self.top_channels = 16 * w
        self.project = nn.Linear(config.z_dim, 4 * 4 * 16 * w)
        widths = (16 * w, 8 * w, 4 * w, 2 * w, w)  # 4 -> 8 -> 16 -> 32 -> 64
        self.blocks = nn.ModuleList(
            GeneratorBlock(c_in, c_out, num_classes) for c_in, c_out in zip(widths, widths[1:], strict=False)
        )
        self.to_image = nn.Sequential(nn.BatchNorm2d(w), nn.ReLU(), nn.Conv2d(w, 1, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(z).unflatten(1, (self.top_channels, 4, 4))  # keeps the channel count in an ONNX export
        for block in self.blocks:
            h = block(h, labels)
        return self.to_image(h)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, first: bool = False, downsample: bool = True):
        super().__init__()
        self.first, self.downsample = first, downsample
        self.conv1 = spectral_norm(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.shortcut = spectral_norm(nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)  # no ReLU on raw pixels
        h = self.conv2(F.relu(self.conv1(h)))
        shortcut = self.shortcut(x)
        if self.downsample:
            h, shortcut = F.avg_pool2d(h, 2), F.avg_pool2d(shortcut, 2)
        return h + shortcut


class Discriminator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        w = config.width
        self.blocks = nn.Sequential(
            DiscriminatorBlock(1, w, first=True),  # 32
            DiscriminatorBlock(w, 2 * w),  # 16
            DiscriminatorBlock(2 * w, 4 * w),  # 8
            DiscriminatorBlock(4 * w, 8 * w),  # 4
            DiscriminatorBlock(8 * w, 16 * w, downsample=False),
        )
        self.score = spectral_norm(nn.Linear(16 * w, 1))
        self.class_embedding = spectral_norm(nn.Embedding(num_classes, 16 * w))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(images)).sum(dim=[2, 3])
        return self.score(h).squeeze(1) + (self.class_embedding(labels) * h).sum(dim=1)


def discriminator_loss(D, real, fake, labels, config: Config):
    real_out, fake_out = D(real, labels), D(fake, labels)
    loss = F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()
    return loss, {"d_real": real_out.mean().item(), "d_fake": fake_out.mean().item()}


def generator_loss(D, fake, labels, config: Config):
    return -D(fake, labels).mean(), {}
