"""The course's 4th-place model: FC + transposed-conv generator, 5-conv discriminator with a label channel, LSGAN.

G: [z, one-hot(y)] -> FC 1024 -> FC 128x8x8 -> three stride-2 transposed convs to 64x64 (InfoGAN-style layout).
D: the label is an extra input channel holding y / (num_classes - 1); five convs, the last one 4x4 to a score.
Loss: least squares (Mao et al., 2017). The team trained 200 epochs without augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.config import GANConfig


@dataclass
class Config(GANConfig):
    epochs: int = 200


class Generator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Sequential(
            nn.Linear(config.z_dim + num_classes, 1024), nn.BatchNorm1d(1024), nn.ReLU(inplace=True),
            nn.Linear(1024, 128 * 8 * 8), nn.BatchNorm1d(128 * 8 * 8), nn.ReLU(inplace=True),
            nn.Unflatten(1, (128, 8, 8)),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(labels, self.num_classes).to(z.dtype)
        return self.deconv(self.fc(torch.cat([z, one_hot], dim=1)))


class Discriminator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Conv2d(2, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),  # 32
            nn.Conv2d(64, 128, 4, stride=2, padding=1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2, inplace=True),  # 16
            nn.Conv2d(128, 256, 4, stride=2, padding=1), nn.BatchNorm2d(256), nn.LeakyReLU(0.2, inplace=True),  # 8
            nn.Conv2d(256, 512, 4, stride=2, padding=1), nn.BatchNorm2d(512), nn.LeakyReLU(0.2, inplace=True),  # 4
            nn.Conv2d(512, 1, 4),
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        level = labels.to(images.dtype) / max(1, self.num_classes - 1)
        label_channel = level[:, None, None, None].expand(-1, 1, *images.shape[2:])
        return self.net(torch.cat([images, label_channel], dim=1)).flatten()


def discriminator_loss(D, real, fake, labels, config: Config):
    real_out, fake_out = D(real, labels), D(fake, labels)
    loss = 0.5 * ((real_out - 1) ** 2).mean() + 0.5 * (fake_out**2).mean()
    return loss, {"d_real": real_out.mean().item(), "d_fake": fake_out.mean().item()}


def generator_loss(D, fake, labels, config: Config):
    return 0.5 * ((D(fake, labels) - 1) ** 2).mean(), {}
