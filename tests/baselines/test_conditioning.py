"""The conditioning check's classifier separates real classes, and scores samples by whether they match labels."""

from __future__ import annotations

from baselines.conditioning import conditioning_accuracy, train_classifier
from baselines.data import load_training_data, to_model_range
from tests.utils.competition import make_competition


def test_classifier_agrees_with_true_labels_and_rejects_swapped_ones(tmp_path):
    competition = make_competition(tmp_path, train_per_class=40, test_per_class=2)
    data = load_training_data(competition.root)
    classifier, real_accuracy = train_classifier(data, steps=60, batch_size=16)
    assert real_accuracy >= 0.9  # the tiny classes differ in brightness: easy to tell apart

    by_class = {cls: to_model_range(data.of_class(i)) for i, cls in enumerate(data.classes)}
    faithful = conditioning_accuracy(classifier, by_class, data.classes)
    swapped = conditioning_accuracy(classifier, dict(zip(data.classes, reversed(by_class.values()), strict=True)),
                                    data.classes)
    assert min(faithful.values()) >= 0.9
    assert max(swapped.values()) <= 0.1
