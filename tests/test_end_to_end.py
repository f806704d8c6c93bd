"""End to end on real data: train a small CNN on Fashion-MNIST, convert, simulate.

The data is the same on every machine: 1,000 training images (the embedded sample's, which
the full set gives too) and the first 1,000 test images.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import snnconv
from models import fashion_mnist_train_sample
from snnconv import zoo
from snnconv.data import calibration_subset, load_dataset

#: Passes over the 1,000 training images.
EPOCHS = 8


def small_cnn() -> nn.Module:
    """A LeNet-shaped net, narrower so that the test runs in seconds."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 5, padding=2),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(16 * 7 * 7, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, object, object]:
    torch.manual_seed(0)
    train = fashion_mnist_train_sample()
    test = load_dataset("fashion-mnist", "test", limit=1000)
    model = zoo.train(small_cnn(), train, epochs=EPOCHS, batch_size=64, seed=0)
    return model, calibration_subset(train, 1000, seed=0), test


def test_snn_matches_ann_within_one_point_at_256_steps(trained) -> None:
    model, calibration, test = trained
    network = snnconv.convert(model, calibration, snnconv.Config(device="cpu"))
    result = snnconv.evaluate(network, test, timesteps=256)
    assert result.ann_top1 > 0.75  # the net learned something real
    assert abs(result.snn_top1[255] - result.ann_top1) <= 0.01, result.table()
    # accuracy improves with time: early steps are worse than late ones
    assert result.snn_top1[7] < result.snn_top1[255]
    # every spiking layer fires, none saturates on average
    assert all(0.0 < layer["mean_rate"] < 0.5 for layer in result.layers)
