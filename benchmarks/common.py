"""Shared helpers of the benchmark scripts: reference nets, data, timing."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from torch import nn

from snnconv import zoo
from snnconv.data import calibration_subset, load_dataset

WEIGHTS = Path(__file__).resolve().parent / "weights"

#: Reference nets of the design notes: name -> (builder, weights file).
REFERENCE_NETS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "lenet_avg": (lambda: zoo.lenet("avg"), "lenet_avg.safetensors"),
    "lenet_max": (lambda: zoo.lenet("max"), "lenet_max.safetensors"),
    "vgg_bn": (zoo.vgg_small, "vgg_bn.safetensors"),
    "resnet_small": (zoo.resnet_small, "resnet_small.safetensors"),
    "inception_small": (zoo.inception_small, "inception_small.safetensors"),
}


def reference_net(name: str) -> nn.Module:
    """A trained reference net (``benchmarks/train_reference.py`` writes the weights)."""
    builder, file = REFERENCE_NETS[name]
    path = WEIGHTS / file
    if not path.is_file():
        sys.exit(f"{path} is missing: run `python benchmarks/train_reference.py` first")
    return zoo.load_weights(builder(), path).eval()


def fashion_mnist(calibration_samples: int = 1000, seed: int = 0):
    """(calibration subset, full test set) of Fashion-MNIST."""
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    return calibration_subset(train, calibration_samples, seed=seed), test


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
