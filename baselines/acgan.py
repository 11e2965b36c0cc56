"""Auxiliary-classifier GAN (Odena et al., 2017): D also predicts the class, and both nets are trained to get it right.

G: the DCGAN generator with the label embedding multiplied into z (as in the paper) instead of concatenated.
D: strided convs with a real/fake head and a class head; the class loss is applied to real and fake images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.config import GANConfig
from baselines.layers import downsampling_channels, project_to_4x4, upsample_conv_block


@dataclass
class Config(GANConfig):
    width: int = 64
    class_weight: float = 1.0


class Generator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        w = config.width
        self.label_embedding = nn.Embedding(num_classes, config.z_dim)
        self.project = project_to_4x4(config.z_dim, 8 * w)
        self.blocks = nn.Sequential(
            upsample_conv_block(8 * w, 4 * w),
            upsample_conv_block(4 * w, 2 * w),
            upsample_conv_block(2 * w, w),
            upsample_conv_block(w, w // 2),
        )
        self.to_image = nn.Sequential(nn.Conv2d(w // 2, 1, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.to_image(self.blocks(self.project(z * self.label_embedding(labels))))


class Discriminator(nn.Module):
    def __init__(self, config: Config, num_classes: int):
        super().__init__()
        w = config.width
        layers: list[nn.Module] = []
        for index, (c_in, c_out) in enumerate(downsampling_channels(w)):
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=index == 0))
            if index > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.adversarial = nn.Linear(8 * w * 4 * 4, 1)
        self.classifier = nn.Linear(8 * w * 4 * 4, num_classes)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(images)  # labels are not an input: D has to recognize the class
        return self.adversarial(h).squeeze(1), self.classifier(h)


def discriminator_loss(D, real, fake, labels, config: Config):
    real_out, real_class = D(real, labels)
    fake_out, fake_class = D(fake, labels)
    adversarial = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
    classification = F.cross_entropy(real_class, labels) + F.cross_entropy(fake_class, labels)
    accuracy = (real_class.argmax(1) == labels).float().mean().item()
    return adversarial + config.class_weight * classification, {"d_class_acc": accuracy}


def generator_loss(D, fake, labels, config: Config):
    fake_out, fake_class = D(fake, labels)
    return F.softplus(-fake_out).mean() + config.class_weight * F.cross_entropy(fake_class, labels), {}
