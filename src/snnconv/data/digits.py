"""The scikit-learn 8x8 handwritten digits dataset, with a fixed train/test split."""

from __future__ import annotations

import functools

import numpy as np

from snnconv.errors import DataError

__all__ = ["DIGITS_SPLIT_SEED", "DIGITS_TRAIN_SIZE", "load_digits_split"]

#: Seed of the numpy Generator whose permutation defines the split.
DIGITS_SPLIT_SEED = 0
#: Number of samples in the training split; the remaining 360 form the test split.
DIGITS_TRAIN_SIZE = 1437


@functools.lru_cache(maxsize=1)
def _load_all() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as read-only (images float32 [N,1,8,8] in [0,1], labels int64)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError(
            "the 'digits' dataset needs scikit-learn, which is not installed. "
            "Install it with `pip install scikit-learn` (or `pip install snnconv[digits]`)."
        ) from exc
    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[:, None, :, :]
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of the scikit-learn digits dataset.

    The dataset has 1,797 grey-scale 8x8 images with values 0–16, scaled here
    to [0, 1] by dividing by 16. The split is deterministic and fixed: the
    samples are shuffled by ``numpy.random.default_rng(0).permutation(1797)``;
    the first 1,437 form the ``"train"`` split and the remaining 360 the
    ``"test"`` split (both in permuted order).

    Args:
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(images, labels)``: float32 images of shape ``[N, 1, 8, 8]`` in
        [0, 1] and int64 labels of shape ``[N]``.

    Raises:
        DataError: If ``split`` is unknown or scikit-learn is not installed.
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'.")
    images, labels = _load_all()
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    chosen = order[:DIGITS_TRAIN_SIZE] if split == "train" else order[DIGITS_TRAIN_SIZE:]
    return images[chosen], labels[chosen]
