"""The conditioning check: do a model's samples for label y look like class y to an independent classifier?

A small CNN is trained on the real training images (a tenth kept aside to measure its own accuracy), then
classifies samples generated for each label. A model that ignores its labels scores about 1 / num_classes per
label; a well-conditioned one approaches the classifier's accuracy on real images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from baselines.augment import random_xflip
from baselines.data import TrainingData, to_model_range


class SmallClassifier(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((1, 16), (16, 32), (32, 64), (64, 64)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


@dataclass
class ConditioningReport:
    classifier_accuracy_on_real: float  # on real training images the classifier never saw
    accuracy_per_label: dict[str, float]  # share of label-y samples classified as y


def train_classifier(data: TrainingData, *, steps: int = 300, batch_size: int = 64, seed: int = 0,
                     device: str = "cpu") -> tuple[SmallClassifier, float]:
    """Train on 90% of `data`; return the classifier and its accuracy on the other 10%."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)
    held = order[: max(1, len(data) // 10)]
    train = order[len(held) :] if len(order) > len(held) else order
    torch.manual_seed(seed)
    classifier = SmallClassifier(len(data.classes)).to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    for _ in tqdm(range(steps), desc="conditioning classifier", unit="step", leave=False):
        batch = train[torch.randint(len(train), (batch_size,), generator=generator)]
        images = random_xflip(to_model_range(data.images[batch]).to(device))
        loss = F.cross_entropy(classifier(images), data.labels[batch].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    classifier.eval()
    predicted = predict(classifier, to_model_range(data.images[held]))
    return classifier, (predicted == data.labels[held]).float().mean().item()


@torch.no_grad()
def predict(classifier: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    device = next(classifier.parameters()).device
    return torch.cat([classifier(images[i : i + batch_size].to(device)).argmax(1).cpu()
                      for i in range(0, len(images), batch_size)])


def conditioning_accuracy(classifier: nn.Module, samples: dict[str, torch.Tensor],
                          classes: list[str]) -> dict[str, float]:
    """{label: share of that label's samples (float [-1, 1], N x 1 x H x W) the classifier assigns to it}."""
    return {cls: (predict(classifier, samples[cls]) == classes.index(cls)).float().mean().item() for cls in samples}


def check_runs(runs: list, *, per_class: int = 200, classifier_steps: int = 300, device: str = "auto"):
    """Yield (run_dir, ConditioningReport) per run; one classifier, trained on the first run's training data."""
    from baselines.data import load_training_data, split_holdout
    from baselines.generate import load_generator, sample
    from baselines.train import read_run_config, resolve_device

    first = read_run_config(runs[0])
    data, _ = split_holdout(load_training_data(first["data"]["path"]), first["train"]["eval_holdout"])
    torch_device = resolve_device(device).type
    classifier, real_accuracy = train_classifier(data, steps=classifier_steps, device=torch_device)
    for run in runs:
        G, run_config = load_generator(run, device=torch_device)
        samples = sample(G, run_config["classes"], per_class, run_config["model_config"]["z_dim"], seed=1)
        yield run, ConditioningReport(real_accuracy, conditioning_accuracy(classifier, samples, data.classes))
