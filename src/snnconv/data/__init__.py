"""Datasets: Fashion-MNIST and MNIST (IDX files), CIFAR-10, scikit-learn digits,
image folders, and ``.npz`` files.

Every loader returns a ``torch.utils.data.TensorDataset`` of float32 images
``[N, C, H, W]`` scaled to [0, 1] and int64 labels.
"""

from __future__ import annotations

from snnconv.data.registry import (
    DATASETS,
    calibration_subset,
    dataset_name,
    has_train_split,
    load_dataset,
)

__all__ = [
    "DATASETS",
    "calibration_subset",
    "dataset_name",
    "has_train_split",
    "load_dataset",
]
