"""Settings every baseline shares; each model file subclasses `GANConfig` with its recommended values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GANConfig:
    z_dim: int = 100
    batch_size: int = 64
    epochs: int = 50
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    d_steps_per_g_step: int = 1  # WGAN-GP's n_critic: D updates on every batch, G on every n-th
    ema_decay: float = 0.0  # 0 disables the EMA copy of G
    augment: str = ""  # DiffAugment policy applied to every D input, e.g. "translation,cutout,brightness,contrast"
    xflip: bool = False  # random horizontal flips of the real images
