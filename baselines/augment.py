"""DiffAugment (Zhao et al., 2020) for 1-channel images, and random horizontal flips of real images.

DiffAugment applies the same kind of random, differentiable transform to real and fake images before D sees them,
so D cannot memorize a small training set while G still gets gradients through the transform.
All randomness comes from torch's global generator, so a checkpointed RNG state makes resumed runs identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)


def contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    shift_y, shift_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-shift_y, shift_y + 1, size=(n, 1, 1), device=x.device)
    tx = torch.randint(-shift_x, shift_x + 1, size=(n, 1, 1), device=x.device)
    grid_b, grid_y, grid_x = torch.meshgrid(
        torch.arange(n, device=x.device), torch.arange(h, device=x.device), torch.arange(w, device=x.device),
        indexing="ij",
    )
    grid_y = torch.clamp(grid_y + ty + 1, 0, h + 1)
    grid_x = torch.clamp(grid_x + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # zero border: pixels shifted in from outside are blank
    return padded.permute(0, 2, 3, 1).contiguous()[grid_b, grid_y, grid_x].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    cut_h, cut_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    offset_y = torch.randint(0, h + (1 - cut_h % 2), size=(n, 1, 1), device=x.device)
    offset_x = torch.randint(0, w + (1 - cut_w % 2), size=(n, 1, 1), device=x.device)
    grid_b, grid_y, grid_x = torch.meshgrid(
        torch.arange(n, device=x.device), torch.arange(cut_h, device=x.device), torch.arange(cut_w, device=x.device),
        indexing="ij",
    )
    grid_y = torch.clamp(grid_y + offset_y - cut_h // 2, min=0, max=h - 1)
    grid_x = torch.clamp(grid_x + offset_x - cut_w // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[grid_b, grid_y, grid_x] = 0
    return x * mask.unsqueeze(1)


TRANSFORMS = {"brightness": brightness, "contrast": contrast, "translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> list[str]:
    names = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = sorted(set(names) - set(TRANSFORMS))
    if unknown:
        raise ValueError(f"augment policy {policy!r}: unknown {unknown}; choose from {sorted(TRANSFORMS)}.")
    return names


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    for name in parse_policy(policy):
        x = TRANSFORMS[name](x)
    return x


def random_xflip(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(x.size(0), 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)
