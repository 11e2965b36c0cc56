"""The one training loop shared by every baseline (nanoGPT / stylegan2-ada habits: one loop, one run folder).

    arena train dcgan --data arena-data/competitions/demo                   # the model's recommended settings
    arena train sngan --data ~/Face-Mask-Classification-20000-Dataset --device cuda --amp
    arena train sngan --data DIR --steps 200 --device cpu                   # a smoke run on a laptop
    arena train sngan --resume runs/00003-sngan --steps 40000               # continue exactly where it stopped

Each run writes `runs/NNNNN-MODEL/`:
    config.json          model config (recommended values + overrides), training options, classes, data source
    checkpoints/step-NNNNNNN.pt   {G, D, opt_G, opt_D, ema, config, step, rng}; the last few are kept
    samples/step-NNNNNNN.png      fixed noise, one row per class (EMA weights where the model has them)
    metrics.jsonl        one line per logged step (losses, images/s) and per evaluation (FID vs held-out train images)

Determinism: the data order of epoch e is a permutation seeded by (seed, e), noise and augmentations come from
torch's global generator, whose state is checkpointed; sampling and evaluation use their own generators and
eval mode, so turning them on or off never changes training. On CPU a resumed run's losses equal an uninterrupted
run's bit for bit.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.utils import save_image
from tqdm import tqdm

from baselines import evaluation
from baselines.augment import diff_augment, random_xflip
from baselines.data import TrainingData, load_training_data, split_holdout, to_model_range, to_uint8
from baselines.layers import check_image_size
from baselines.registry import load_model
from server.competition_dir import Competition
from submissions.atomic import write_atomically

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SAMPLE_COLUMNS = 8


@dataclass
class TrainOptions:
    model: str
    data: str
    out: str = "runs"
    epochs: int | None = None  # default: the model's recommended epochs
    steps: int | None = None  # overrides epochs
    batch_size: int | None = None
    lr: float | None = None  # sets G's learning rate; D's keeps its recommended ratio to G's (TTUR)
    device: str = "auto"
    amp: bool = False  # bfloat16 autocast on CUDA (ignored on CPU)
    seed: int = 0
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    eval_every: int = 2000  # periodic FID vs held-out training images when the scoring engine is available; 0: off
    eval_holdout: int = 500  # training images per class set aside for that FID (at most a tenth of a class)
    eval_images: int = 500  # generated images per class for that FID
    overrides: dict[str, Any] = field(default_factory=dict)  # any model config field, e.g. {"width": 16}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible; use --device cpu or auto.")
    return torch.device(device)


def model_config(options: TrainOptions) -> Any:
    """The model's recommended config with the command-line overrides applied."""
    config = load_model(options.model).Config()
    fields = {f.name: f for f in dataclasses.fields(config)}
    for key, value in options.overrides.items():
        if key not in fields:
            raise ValueError(f"--set {key}=...: {options.model} has no setting {key!r}; it has {', '.join(fields)}.")
        setattr(config, key, value)
    if options.batch_size is not None:
        config.batch_size = options.batch_size
    if options.lr is not None:
        config.lr_d = config.lr_d * options.lr / config.lr_g
        config.lr_g = options.lr
    return config


def next_run_dir(out: Path, model: str) -> Path:
    """runs/00012-dcgan: one more than the highest number already there."""
    out.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[:5]) for p in out.iterdir() if p.is_dir() and p.name[:5].isdigit()]
    return out / f"{max(numbers, default=-1) + 1:05d}-{model}"


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a training run (no {CONFIG_FILE}); pass a folder made by `arena train`.")
    return json.loads(path.read_text())


def checkpoint_paths(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / "checkpoints").glob("step-*.pt"))


class Trainer:
    def __init__(self, run_dir: Path, run_config: dict[str, Any], data: TrainingData, holdout: dict[str, np.ndarray]):
        self.run_dir, self.run_config = run_dir, run_config
        self.options = TrainOptions(**run_config["train"])
        self.model = load_model(self.options.model)
        self.config = self.model.Config(**run_config["model_config"])
        self.data = data
        self.device = resolve_device(self.options.device)
        # The whole uint8 training set fits on any GPU (18,000 images: 74 MB): no host-to-device copy per step.
        self.images, self.labels = data.images.to(self.device), data.labels.to(self.device)
        self.holdout_fid = evaluation.HoldoutFID(holdout, self.device.type)
        self.total_steps: int = run_config["total_steps"]
        self.steps_per_epoch = max(1, len(data) // self.config.batch_size)
        num_classes = len(data.classes)

        torch.manual_seed(self.options.seed)
        self.G = self.model.Generator(self.config, num_classes).to(self.device)
        self.D = self.model.Discriminator(self.config, num_classes).to(self.device)
        betas = (self.config.beta1, self.config.beta2)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=self.config.lr_g, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=self.config.lr_d, betas=betas)
        self.ema = copy.deepcopy(self.G).eval().requires_grad_(False) if self.config.ema_decay > 0 else None
        self.step = 0
        self.last_losses: dict[str, float] = {}
        self.fixed_noise, self.fixed_labels = self.fixed_inputs(SAMPLE_COLUMNS, seed=self.options.seed)

    # --- data -------------------------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> torch.Tensor:
        """The batch of 1-based `step`: a slice of epoch e's permutation, seeded by (seed, e), so resume is exact."""
        epoch, position = divmod(step - 1, self.steps_per_epoch)
        generator = torch.Generator().manual_seed(self.options.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.data), generator=generator)
        size = self.config.batch_size
        return order[position * size : (position + 1) * size]

    def real_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        indices = self.batch_indices(step).to(self.device)
        images, labels = to_model_range(self.images[indices]), self.labels[indices]
        return (random_xflip(images) if self.config.xflip else images), labels

    def fixed_inputs(self, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        num_classes = len(self.data.classes)
        noise = torch.randn(num_classes * per_class, self.config.z_dim, generator=generator)
        labels = torch.arange(num_classes).repeat_interleave(per_class)
        return noise.to(self.device), labels.to(self.device)

    # --- one step -----------------------------------------------------------------------------------------------
    def discriminator_input(self) -> Callable[[torch.Tensor, torch.Tensor], Any]:
        if not self.config.augment:
            return self.D
        return lambda images, labels: self.D(diff_augment(images, self.config.augment), labels)

    def autocast(self):
        # bfloat16 keeps float32's range, so no loss scaling is needed; on CPU it would only be slower.
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.options.amp and self.device.type == "cuda")

    def train_step(self, step: int) -> dict[str, float]:
        real, labels = self.real_batch(step)
        generator_step = step % self.config.d_steps_per_g_step == 0
        critic = self.discriminator_input()
        z = torch.randn(real.size(0), self.config.z_dim, device=self.device)
        with self.autocast(), torch.set_grad_enabled(generator_step):
            fake = self.G(z, labels)
        with self.autocast():
            d_loss, stats = self.model.discriminator_loss(critic, real, fake.detach(), labels, self.config)
        self.opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_D.step()
        losses = {"d_loss": d_loss.item(), **stats}
        if generator_step:
            with self.autocast():
                g_loss, g_stats = self.model.generator_loss(critic, fake, labels, self.config)
            self.opt_G.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_G.step()
            self.update_ema()
            losses.update(g_loss=g_loss.item(), **g_stats)
        return losses

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.ema is None:
            return
        # Warm-up as in TensorFlow's ExponentialMovingAverage(num_updates): early on the average follows G closely,
        # instead of holding on to the random initial weights for the first ~1/(1 - decay) updates.
        updates = self.step // self.config.d_steps_per_g_step
        decay = min(self.config.ema_decay, (1 + updates) / (10 + updates))
        for ema_param, param in zip(self.ema.parameters(), self.G.parameters(), strict=True):
            ema_param.lerp_(param, 1.0 - decay)
        for ema_buffer, buffer in zip(self.ema.buffers(), self.G.buffers(), strict=True):
            ema_buffer.copy_(buffer)  # BatchNorm statistics follow G itself

    # --- outputs ----------------------------------------------------------------------------------------------
    def sampling_generator(self) -> torch.nn.Module:
        return self.ema if self.ema is not None else self.G

    @torch.no_grad()
    def generate(self, noise: torch.Tensor, labels: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Eval mode (BatchNorm running statistics): sampling must not change the training state."""
        G = self.sampling_generator()
        was_training = G.training
        G.eval()
        chunks = range(0, len(noise), batch)
        images = torch.cat([G(noise[i : i + batch], labels[i : i + batch]).float() for i in chunks])
        G.train(was_training)
        return images

    def save_samples(self) -> Path:
        path = self.run_dir / "samples" / f"step-{self.step:07d}.png"
        path.parent.mkdir(exist_ok=True)
        images = self.generate(self.fixed_noise, self.fixed_labels)
        save_image(images, path, nrow=SAMPLE_COLUMNS, normalize=True, value_range=(-1, 1), pad_value=1.0)
        return path

    def evaluate(self) -> dict[str, Any] | None:
        if not self.holdout_fid.holdout or self.holdout_fid.skipped:
            return None
        noise, labels = self.fixed_inputs(self.options.eval_images, seed=self.options.seed + 1)
        images = to_uint8(self.generate(noise, labels))
        generated = {cls: images[labels.cpu().numpy() == i] for i, cls in enumerate(self.data.classes)}
        return self.holdout_fid(generated)

    def log(self, record: dict[str, Any]) -> None:
        with (self.run_dir / METRICS_FILE).open("a") as file:
            file.write(json.dumps(record) + "\n")

    # --- checkpoints ------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "config": self.run_config, "step": self.step, "last_losses": self.last_losses, "rng": rng,
        }

    def save_checkpoint(self) -> Path:
        folder = self.run_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        path = folder / f"step-{self.step:07d}.pt"
        state = self.state()
        write_atomically(path, lambda temporary: torch.save(state, temporary))  # never a truncated checkpoint
        for old in checkpoint_paths(self.run_dir)[: -self.options.keep_checkpoints]:
            old.unlink()
        return path

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.step, self.last_losses = state["step"], state["last_losses"]
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)

    # --- the loop ---------------------------------------------------------------------------------------------
    def due(self, every: int) -> bool:
        return self.step % every == 0 or self.step == self.total_steps

    def run(self, max_seconds: float | None = None) -> None:
        """Train to `total_steps`; with `max_seconds`, stop early at that wall time (equal-time comparisons)."""
        deadline = None if max_seconds is None else time.perf_counter() + max_seconds
        self.G.train()
        self.D.train()
        started, images_seen = time.perf_counter(), 0
        bar = self.progress_bar(max_seconds)
        while self.step < self.total_steps:
            self.step += 1
            self.last_losses.update(self.train_step(self.step))
            images_seen += self.config.batch_size
            if deadline is not None and time.perf_counter() >= deadline:
                self.total_steps = self.step  # this step becomes the last: final log, samples, evaluation, checkpoint
            bar.update(1 if deadline is None else min(time.perf_counter() - started, bar.total) - bar.n)
            if self.due(self.options.log_every):
                elapsed = time.perf_counter() - started
                self.log({"step": self.step, "epoch": (self.step - 1) // self.steps_per_epoch, **self.last_losses,
                          "images_per_s": images_seen / elapsed})
                bar.set_postfix({"step": self.step} | {k: f"{v:.3f}" for k, v in self.last_losses.items()
                                                       if k.endswith("loss")})
            if self.due(self.options.sample_every):
                self.save_samples()
            if self.options.eval_every and self.due(self.options.eval_every):
                self.record_evaluation(bar)
            if self.due(self.options.checkpoint_every):
                self.save_checkpoint()
        bar.close()

    def progress_bar(self, max_seconds: float | None) -> tqdm:
        """Steps towards `total_steps`; under a time budget, seconds of it (the step count is then in the postfix)."""
        if max_seconds is None:
            return tqdm(total=self.total_steps, initial=self.step, unit="step", desc=self.run_dir.name,
                        dynamic_ncols=True)
        return tqdm(total=max_seconds, unit="s", desc=self.run_dir.name, dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")

    def record_evaluation(self, bar: tqdm) -> None:
        result = self.evaluate()
        if result is not None:
            self.log({"step": self.step, **result})
            bar.write(f"step {self.step}: FID vs held-out training images {result['fid_sum']:.2f}")


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop records written after the checkpoint a run resumes from, so metrics.jsonl reads as one clean run."""
    path = run_dir / METRICS_FILE
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def prepare_data(run_config: dict[str, Any]) -> tuple[TrainingData, dict[str, np.ndarray]]:
    data = load_training_data(run_config["data"]["path"])
    if data.classes != run_config["classes"]:
        raise ValueError(f"{run_config['data']['path']}: classes {data.classes} differ from the run's "
                         f"{run_config['classes']}; resume with the data the run started on.")
    return split_holdout(data, run_config["train"]["eval_holdout"])


def new_run(options: TrainOptions) -> Trainer:
    config = model_config(options)
    data = load_training_data(options.data)
    if data.competition_root is not None:
        check_image_size(Competition.load(data.competition_root).config.image_size)
    train_data, holdout = split_holdout(data, options.eval_holdout)
    steps_per_epoch = max(1, len(train_data) // config.batch_size)
    total_steps = options.steps or steps_per_epoch * (options.epochs or config.epochs)
    run_dir = next_run_dir(Path(options.out), options.model)
    run_dir.mkdir()
    run_config = {
        "model": options.model,
        "model_config": dataclasses.asdict(config),
        "train": dataclasses.asdict(options),
        "classes": data.classes,
        "data": {"path": str(Path(options.data).resolve()),
                 "competition": str(data.competition_root.resolve()) if data.competition_root else None,
                 "train_images": len(train_data), "holdout_images": sum(len(v) for v in holdout.values())},
        "total_steps": total_steps,
    }
    (run_dir / CONFIG_FILE).write_text(json.dumps(run_config, indent=2) + "\n")
    return Trainer(run_dir, run_config, train_data, holdout)


def resume_run(run_dir: Path, *, steps: int | None = None, epochs: int | None = None) -> Trainer:
    """Continue a run from its newest checkpoint; `steps`/`epochs` may extend it."""
    run_config = read_run_config(run_dir)
    checkpoints = checkpoint_paths(run_dir)
    if not checkpoints:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint to resume from; start a new run instead.")
    data, holdout = prepare_data(run_config)
    batch_size = run_config["model_config"]["batch_size"]
    if steps or epochs:
        run_config["total_steps"] = steps or max(1, len(data) // batch_size) * epochs
        (run_dir / CONFIG_FILE).write_text(json.dumps(run_config, indent=2) + "\n")
    trainer = Trainer(run_dir, run_config, data, holdout)
    trainer.load_checkpoint(checkpoints[-1])
    truncate_metrics(run_dir, trainer.step)
    return trainer


def train(options: TrainOptions) -> Path:
    trainer = new_run(options)
    trainer.run()
    return trainer.run_dir
