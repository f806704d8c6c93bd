"""Datasets: Fashion-MNIST and MNIST (IDX files), CIFAR-10, scikit-learn digits,
image folders, and ``.npz`` files.

Every loader returns a :class:`LoadedDataset` (a ``torch.utils.data.TensorDataset``)
of float32 images ``[N, C, H, W]`` scaled to [0, 1] and int64 labels, which records
where it was read from; image folders return an :class:`ImageFiles`, which decodes
each image when it is read. Fashion-MNIST falls back to a sample embedded in the
package where the full set is not installed (:mod:`snnconv.data.embedded`).

The names below load their modules on first use: :mod:`snnconv.data.idx` (which
reads IDX files with numpy alone) can then be imported without PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snnconv.data.folders import ImageFiles
    from snnconv.data.registry import (
        DATASETS,
        EMBEDDED,
        EmbeddedSampleWarning,
        LoadedDataset,
        calibration_subset,
        data_source,
        dataset_name,
        embedded_notice,
        has_train_split,
        load_calibration,
        load_dataset,
    )

__all__ = [
    "DATASETS",
    "EMBEDDED",
    "EmbeddedSampleWarning",
    "ImageFiles",
    "LoadedDataset",
    "calibration_subset",
    "data_source",
    "dataset_name",
    "embedded_notice",
    "has_train_split",
    "load_calibration",
    "load_dataset",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'snnconv.data' has no attribute {name!r}")
    home = "snnconv.data.folders" if name == "ImageFiles" else "snnconv.data.registry"
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
