"""The embedded sample of Fashion-MNIST: real data on a machine that has none installed.

The package ships a fixed sample of the real Fashion-MNIST (Zalando SE, MIT
licence; ``embedded/fashion-mnist/LICENSE``), as gzipped IDX files that the
ordinary IDX reader loads:

- ``test``: the first 2,000 test images, in file order, so every figure
  measured with ``--limit 2000`` (or less) on the full set holds for the sample;
- ``train``: exactly the 1,000 training images that
  ``calibration_subset(train, 1000, seed=0)`` draws from the full 60,000, in
  file order, so the default normalization (λ per layer) is the same with or
  without the full set. :func:`snnconv.data.calibration_subset` keeps that
  promise for any draw of up to 1,000 samples with seed 0 (see
  :class:`SampleOrigin`).

``sample.json`` beside the files records the provenance: where the files
came from, the original index of every training image, and the SHA-256 of
each file. ``python -m snnconv.data.embedded SOURCE_DIR`` rebuilds the sample
from the four original files (byte for byte: gzip without a time stamp).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnconv.errors import DataError

__all__ = [
    "EMBEDDED_DIR",
    "SampleOrigin",
    "draw_indices",
    "embedded_dir",
    "embedded_origin",
    "write_sample",
]

#: Where the embedded samples lie inside the package (one sub-directory per data set).
EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"

#: Data sets with an embedded sample.
_SAMPLED: tuple[str, ...] = ("fashion-mnist",)

#: Images of each split in the sample: the first ``TEST_COUNT`` test images and
#: ``TRAIN_COUNT`` training images drawn as the default calibration draws them.
TEST_COUNT = 2000
TRAIN_COUNT = 1000
_TRAIN_SEED = 0

_MANIFEST = "sample.json"
_STEMS: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class SampleOrigin:
    """Where the samples of an embedded split came from in the full data set.

    Attributes:
        indices: The full set's index of each sample, in the sample's order
            (increasing).
        length: The number of samples of the full split (60,000 for
            Fashion-MNIST's training split).
    """

    indices: tuple[int, ...]
    length: int

    def __getitem__(self, item: slice | Sequence[int]) -> SampleOrigin:
        """The origin of some of the samples: a slice (``limit``) or positions (a subset)."""
        if isinstance(item, slice):
            return SampleOrigin(self.indices[item], self.length)
        return SampleOrigin(tuple(self.indices[i] for i in item), self.length)


def embedded_dir(name: str) -> Path | None:
    """The directory of the embedded sample of data set ``name``, or None if it has none."""
    return EMBEDDED_DIR / name if name in _SAMPLED else None


def _manifest(name: str) -> dict:
    directory = embedded_dir(name)
    if directory is None:
        raise DataError(f"{name} has no embedded sample; only {', '.join(_SAMPLED)} has one.")
    path = directory / _MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(
            f"{path}: the embedded sample's manifest is unreadable ({error}). Reinstall snnconv."
        ) from error


def embedded_origin(name: str, split: str) -> SampleOrigin:
    """The original indices of the embedded sample of one split, from its manifest.

    Args:
        name: A data set with an embedded sample (``"fashion-mnist"``).
        split: ``"train"`` or ``"test"``.

    Returns:
        The indices of the sample's images in the full split, and that split's size.

    Raises:
        DataError: If the data set has no sample or its manifest is unreadable.
    """
    entry = _manifest(name)["splits"][split]
    indices = entry.get("indices")
    if indices is None:
        indices = list(range(int(entry["first"])))
    return SampleOrigin(tuple(int(i) for i in indices), int(entry["original_count"]))


def draw_indices(length: int, count: int, seed: int) -> np.ndarray:
    """The indices :func:`snnconv.data.calibration_subset` draws from ``length`` samples:
    the first ``count`` of a permutation seeded by ``seed``, sorted (all when
    ``count >= length``)."""
    import torch

    if count >= length:
        return np.arange(length)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(length, generator=generator)[:count].sort().values.numpy()


def _idx_gz(array: np.ndarray) -> bytes:
    """An unsigned-byte array as a gzipped IDX file (no time stamp: reproducible bytes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes(), 9, mtime=0)


def write_sample(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Build the Fashion-MNIST sample from the four original IDX files.

    Args:
        source: A directory holding the full Fashion-MNIST
            (``train-images-idx3-ubyte[.gz]`` and the three others), e.g.
            ``/usr/share/datasets/fashion-mnist``.
        out: The directory to write (created; files replaced).

    Returns:
        ``out``.

    Raises:
        DataError: If the source files are missing or damaged.
    """
    from snnconv.data.idx import find_idx_files, load_idx_split

    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    splits: dict[str, dict] = {}
    files: dict[str, str] = {}
    for split, (image_stem, label_stem) in _STEMS.items():
        images, labels = load_idx_split("fashion-mnist", split, Path(source))
        original = find_idx_files("fashion-mnist", split, Path(source))[0]
        if split == "test":
            chosen = np.arange(min(TEST_COUNT, len(labels)))
            splits[split] = {"original_count": len(labels), "first": len(chosen)}
        else:
            chosen = draw_indices(len(labels), TRAIN_COUNT, _TRAIN_SEED)
            splits[split] = {
                "original_count": len(labels),
                "drawn_by": "torch.randperm(60000, generator=torch.Generator().manual_seed(0))"
                "[:1000], sorted: what calibration_subset(train, 1000, seed=0) draws",
                "indices": chosen.tolist(),
            }
        splits[split]["source_file"] = original.name
        for stem, array in ((image_stem, images[chosen, 0]), (label_stem, labels[chosen])):
            data = _idx_gz(array.astype(np.uint8))
            (directory / f"{stem}.gz").write_bytes(data)
            files[f"{stem}.gz"] = hashlib.sha256(data).hexdigest()
    manifest = {
        "dataset": "fashion-mnist",
        "licence": "MIT (Expat), Copyright (c) 2017 Zalando SE; see LICENSE",
        "provenance": "https://github.com/zalandoresearch/fashion-mnist, as packaged by "
        "Debian (dataset-fashion-mnist 0.0~git20200523.55506a9-1)",
        "splits": splits,
        "sha256": files,
    }
    (directory / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return directory


def _main(argv: list[str]) -> int:  # pragma: no cover - a maintenance command
    if len(argv) not in (1, 2):
        print(
            "usage: python -m snnconv.data.embedded SOURCE_DIR [OUT_DIR]\n"
            "rebuilds the embedded Fashion-MNIST sample from the full set in SOURCE_DIR",
            file=sys.stderr,
        )
        return 2
    out = Path(argv[1]) if len(argv) == 2 else EMBEDDED_DIR / "fashion-mnist"
    print(f"wrote {write_sample(argv[0], out)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main(sys.argv[1:]))
