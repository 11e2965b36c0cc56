"""The baselines by name. Each model module exposes `Config`, `Generator`, `Discriminator`,
`discriminator_loss(D, real, fake, labels, config)` and `generator_loss(D, fake, labels, config)`."""

from __future__ import annotations

import importlib
from types import ModuleType

# Ordered from the weakest to the strongest, as the benchmark table shows them.
MODEL_NAMES = ("mlp_cgan", "dcgan", "wgan_gp", "acgan", "infogan_style", "sngan")


def load_model(name: str) -> ModuleType:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown baseline {name!r}; choose one of: {', '.join(MODEL_NAMES)}.")
    return importlib.import_module(f"baselines.{name}")
