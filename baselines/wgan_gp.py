"""Conditional WGAN-GP: the DCGAN generator, a convolutional critic with projection conditioning, gradient penalty.

The course team's version ignored the labels. Here the critic's score is psi(h) + <embed(y), h> (projection,
Miyato & Koyama 2018), so class information reaches G through the critic. The gradient penalty is taken on image
interpolates with the labels held fixed (interpolating labels has no meaning for a projection critic).
The critic has no BatchNorm: the penalty is per-sample, and batch statistics would couple samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baselines import dcgan
from baselines.config import GANConfig
from baselines.layers import downsampling_channels


@dataclass
class Config(GANConfig):
    label_dim: int = 50
    width: int = 64
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.9
    d_steps_per_g_step: int = 5  # n_critic
    gp_weight: float = 10.0  # lambda


class Generator(dcgan.Generator):
    """The DCGAN generator: same capacity, so the comparison isolates the loss and the critic."""


class Discriminator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        w = config.width
        layers: list[nn.Module] = []
        for c_in, c_out in downsampling_channels(w):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.score = nn.Linear(8 * w, 1)
        self.class_embedding = nn.Embedding(num_classes, 8 * w)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.features(images).sum(dim=[2, 3])
        return self.score(h).squeeze(1) + (self.class_embedding(labels) * h).sum(dim=1)


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    # In float32 even under --amp: the penalty differentiates D's gradient, where bfloat16 rounding dominates.
    with torch.autocast(real.device.type, enabled=False):
        mixed = (alpha * real.float() + (1 - alpha) * fake.float()).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(mixed, labels).float().sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def discriminator_loss(D, real, fake, labels, config: Config):
    real_out, fake_out = D(real, labels), D(fake, labels)
    wasserstein = real_out.mean() - fake_out.mean()
    penalty = gradient_penalty(D, real, fake, labels)
    return -wasserstein + config.gp_weight * penalty, {"wasserstein": wasserstein.item(), "gp": penalty.item()}


def generator_loss(D, fake, labels, config: Config):
    return -D(fake, labels).mean(), {}
