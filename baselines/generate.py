"""Sample a trained run and pack the images into a submission zip (the format itself lives in `submissions/`).

    arena generate runs/00003-sngan --out sngan.zip                 # images_per_class of the run's competition
    arena generate runs/00003-sngan --out sngan.zip --checkpoint runs/00003-sngan/checkpoints/step-0040000.pt
    arena generate runs/00003-sngan --out practice.zip --per-class 100          # a smaller practice zip
    arena generate runs/00003-sngan --model sngan.onnx                         # the generator as a model submission
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from baselines.registry import load_model
from baselines.train import checkpoint_paths, read_run_config, resolve_device
from server.competition_dir import Competition

DEFAULT_PER_CLASS = 1000


def load_generator(run_dir: Path, checkpoint: Path | None = None, device: str = "auto") -> tuple[torch.nn.Module, dict]:
    """The run's generator in eval mode: its EMA weights when it kept them, else G's."""
    run_config = read_run_config(run_dir)
    if checkpoint is None:
        checkpoints = checkpoint_paths(run_dir)
        if not checkpoints:
            raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint yet; train longer or pass --checkpoint.")
        checkpoint = checkpoints[-1]
    model = load_model(run_config["model"])
    config = model.Config(**run_config["model_config"])
    G = model.Generator(config, len(run_config["classes"]))
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    G.load_state_dict(state["ema"] if state.get("ema") is not None else state["G"])
    return G.to(resolve_device(device)).eval(), run_config


@torch.no_grad()
def sample(G: torch.nn.Module, classes: list[str], per_class: int, z_dim: int, *, seed: int = 0,
           batch_size: int = 500) -> dict[str, torch.Tensor]:
    """{class: float (N, 1, 64, 64) in [-1, 1]} on the CPU; the noise is seeded, so the same call gives the same zip."""
    device = next(G.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    images: dict[str, torch.Tensor] = {}
    with tqdm(total=per_class * len(classes), desc="generating", unit="img", leave=False) as progress:
        for index, cls in enumerate(classes):
            parts = []
            for start in range(0, per_class, batch_size):
                count = min(batch_size, per_class - start)
                z = torch.randn(count, z_dim, generator=generator).to(device)
                labels = torch.full((count,), index, dtype=torch.long, device=device)
                parts.append(G(z, labels).float().clamp(-1, 1).cpu())
                progress.update(count)
            images[cls] = torch.cat(parts)
    return images


def competition_of(run_config: dict[str, Any]) -> Competition | None:
    root = run_config["data"].get("competition")
    return Competition.load(root) if root and Path(root, "competition.json").is_file() else None


def generate_submission(run_dir: Path, out: Path, *, per_class: int | None = None, checkpoint: Path | None = None,
                        device: str = "auto", seed: int = 0) -> Path:
    from submissions import SubmissionSpec, pack

    G, run_config = load_generator(run_dir, checkpoint, device)
    competition = competition_of(run_config)
    spec = SubmissionSpec.from_competition(competition) if competition is not None else None
    if per_class is None:
        per_class = competition.config.images_per_class if competition is not None else DEFAULT_PER_CLASS
    classes = run_config["classes"]
    images = sample(G, classes, per_class, run_config["model_config"]["z_dim"], seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A count other than the competition's makes a practice zip: pack it against the classes only.
    target = spec if spec is not None and spec.images_per_class == per_class else classes
    pack(images, out, target, progress=True)
    return out


def export_onnx(G: torch.nn.Module, out: Path, *, classes: list[str], z_dim: int, opset: int = 17) -> Path:
    """Write G in the model-submission format (submissions.model): inputs z, label; output images; metadata.

    The legacy TorchScript exporter (dynamo=False) needs no extra package and gives one self-contained file.
    """
    import onnx

    G = G.cpu().eval()
    example = (torch.zeros(2, z_dim), torch.zeros(2, dtype=torch.long))
    batch = {0: "batch"}
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(G, example, str(out), dynamo=False, opset_version=opset, input_names=["z", "label"],
                          output_names=["images"], dynamic_axes={"z": batch, "label": batch, "images": batch})
    model = onnx.load(str(out))
    onnx.helper.set_model_props(model, {"latent_size": str(z_dim), "classes": json.dumps(classes)})
    onnx.save(model, str(out))
    return out


def export_run(run_dir: Path, out: Path, *, checkpoint: Path | None = None) -> Path:
    """`arena generate RUN --model out.onnx`: the run's generator (EMA weights where kept) as an ONNX file."""
    G, run_config = load_generator(run_dir, checkpoint, device="cpu")
    return export_onnx(G, out, classes=run_config["classes"], z_dim=run_config["model_config"]["z_dim"])
