"""Real images for the large networks: Fashion-MNIST resized to 3-channel images."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from snnconv.data import load_dataset
from snnconv.errors import ConfigError

__all__ = ["fashion_mnist_rgb"]


def fashion_mnist_rgb(
    size: int,
    split: str = "test",
    limit: int | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    chunk: int = 1000,
) -> TensorDataset:
    """Fashion-MNIST as 3-channel images of any size, for the ImageNet-shaped networks.

    Each 28x28 image (in [0, 1]) is resized to ``size`` x ``size`` with
    ``F.interpolate(mode="bilinear", align_corners=False)`` and replicated to
    three identical channels. Memory: ``N·3·size²·4`` bytes (10,000 images at
    224x224 take 6 GB; use ``limit``).

    Args:
        size: Output height and width (>= 1).
        split: ``"train"`` or ``"test"``.
        limit: Keep the first ``limit`` images in file order.
        data_dir: Directory searched first for the IDX files (see
            :func:`snnconv.data.load_dataset`).
        chunk: Images resized at once (bounds the temporary memory).

    Returns:
        A ``TensorDataset`` of float32 images ``[N, 3, size, size]`` and
        int64 labels.

    Raises:
        ConfigError: If ``size`` or ``chunk`` is not a positive integer.
        DataError: If Fashion-MNIST cannot be found or ``split``/``limit`` is invalid.
    """
    for name, value in (("size", size), ("chunk", chunk)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
    gray = load_dataset("fashion-mnist", split, data_dir=data_dir, limit=limit)
    assert isinstance(gray, TensorDataset)
    images, labels = gray.tensors
    out = torch.empty((images.shape[0], 3, size, size), dtype=torch.float32)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk]
        resized = F.interpolate(block, size=(size, size), mode="bilinear", align_corners=False)
        out[start : start + chunk] = resized.expand(-1, 3, -1, -1)
    return TensorDataset(out, labels)
