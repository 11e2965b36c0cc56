"""The course's MLP conditional GAN: label embedding concatenated to the input, LeakyReLU, BatchNorm, MSE loss.

Follows the classic PyTorch-GAN `cgan.py` the course started from: D's outputs are regressed to 1 (real) and
0 (fake) with a mean-squared error (a least-squares GAN).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.config import GANConfig

IMAGE_PIXELS = 64 * 64


@dataclass
class Config(GANConfig):
    label_dim: int = 10


def _linear_block(in_features: int, out_features: int, *, batch_norm: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features, momentum=0.2))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class Generator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        self.label_embedding = nn.Embedding(num_classes, config.label_dim)
        self.net = nn.Sequential(
            *_linear_block(config.z_dim + config.label_dim, 128, batch_norm=False),
            *_linear_block(128, 256),
            *_linear_block(256, 512),
            *_linear_block(512, 1024),
            nn.Linear(1024, IMAGE_PIXELS),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([z, self.label_embedding(labels)], dim=1))
        return out.view(-1, 1, 64, 64)


class Discriminator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        self.label_embedding = nn.Embedding(num_classes, config.label_dim)
        self.net = nn.Sequential(
            *_linear_block(IMAGE_PIXELS + config.label_dim, 512, batch_norm=False),
            nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 1),
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([images.flatten(1), self.label_embedding(labels)], dim=1)
        return self.net(flat).squeeze(1)


def discriminator_loss(D, real, fake, labels, config: Config):
    real_out, fake_out = D(real, labels), D(fake, labels)
    loss = 0.5 * (F.mse_loss(real_out, torch.ones_like(real_out)) + F.mse_loss(fake_out, torch.zeros_like(fake_out)))
    return loss, {"d_real": real_out.mean().item(), "d_fake": fake_out.mean().item()}


def generator_loss(D, fake, labels, config: Config):
    fake_out = D(fake, labels)
    return F.mse_loss(fake_out, torch.ones_like(fake_out)), {}
