"""Dataset specs, loading into tensors, normalisation and calibration subsets."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from snnconv.data.cifar import find_cifar10, load_cifar10_split
from snnconv.data.digits import load_digits_split
from snnconv.data.embedded import SampleOrigin, draw_indices, embedded_dir, embedded_origin
from snnconv.data.folders import ImageFiles, has_split_folders, list_images, read_labels_file
from snnconv.data.idx import find_idx_files, load_idx_split
from snnconv.data.npz import load_npz
from snnconv.errors import DataError

# The public names are those of snnconv.data (its __init__ lists them).

#: The ``source`` of data read from the sample shipped inside the package.
EMBEDDED = "embedded"


class EmbeddedSampleWarning(UserWarning):
    """A data set was asked for, and only its embedded sample was found."""


class LoadedDataset(TensorDataset):
    """A ``TensorDataset`` of ``(images, labels)`` that knows where it was read from.

    Attributes:
        source: ``"embedded"`` for the sample shipped inside the package, else
            the directory or file read (``"scikit-learn"`` for ``digits``);
            None where unknown.
        origin: For the embedded sample, the index of each sample in the full
            data set (see :class:`snnconv.data.embedded.SampleOrigin`), so
            that :func:`calibration_subset` draws what it would from the full set.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        source: str | None = None,
        origin: SampleOrigin | None = None,
    ) -> None:
        super().__init__(*tensors)
        self.source = source
        self.origin = origin


def data_source(data: object) -> str | None:
    """Where data came from: the ``source`` of a :class:`LoadedDataset`, of the dataset
    behind a ``DataLoader`` or ``Subset``, or None."""
    for candidate in (data, getattr(data, "dataset", None)):
        source = getattr(candidate, "source", None)
        if isinstance(source, str):
            return source
    return None


def embedded_notice(spec: str, split: str, count: int) -> str:
    """The one line that says a data set was read from its embedded sample."""
    return (
        f"{dataset_name(spec)}: using the embedded sample: {count:,} {split} images; install "
        "the full set with `apt-get install dataset-fashion-mnist` (or point --data-dir or "
        "SNNCONV_DATA at it)"
    )


@dataclass(frozen=True)
class _Split:
    """What a loader read: unscaled images and labels, where from, and (for the embedded
    sample) the samples' indices in the full set."""

    x: np.ndarray
    y: np.ndarray
    source: str
    origin: SampleOrigin | None = None


#: Accepted dataset specs, for help texts. ``PATH`` stands for a file path.
DATASETS: tuple[str, ...] = (
    "fashion-mnist",
    "mnist",
    "cifar10",
    "digits",
    "imagefolder:PATH",
    "npz:PATH",
)

_NPZ_PREFIX = "npz:"
_FOLDER_PREFIX = "imagefolder:"

#: Spec kinds that carry a path, by prefix.
_PATH_KINDS: dict[str, str] = {_NPZ_PREFIX: "npz", _FOLDER_PREFIX: "imagefolder"}

# A loader takes (name, split, data_dir) and returns images [N,C,H,W], labels int64 [N] and
# where they came from. uint8 images are scaled by 1/255 after slicing; float32 images are
# used as is.
_DataDir = str | os.PathLike[str] | None
_Loader = Callable[[str, str, _DataDir], _Split]


def _idx_loader(name: str, split: str, data_dir: _DataDir) -> _Split:
    sample = embedded_dir(name)
    x, y = load_idx_split(name, split, data_dir, sample)
    directory = find_idx_files(name, split, data_dir, sample)[0].parent
    if directory == sample:
        return _Split(x, y, EMBEDDED, embedded_origin(name, split))
    return _Split(x, y, str(directory))


def _cifar_loader(name: str, split: str, data_dir: _DataDir) -> _Split:
    del name
    x, y = load_cifar10_split(split, data_dir)
    return _Split(x, y, str(find_cifar10(split, data_dir)))


def _digits_loader(name: str, split: str, data_dir: _DataDir) -> _Split:
    del name, data_dir  # bundled with scikit-learn
    x, y = load_digits_split(split)
    return _Split(x, y, "scikit-learn")


_LOADERS: dict[str, _Loader] = {
    "fashion-mnist": _idx_loader,
    "mnist": _idx_loader,
    "cifar10": _cifar_loader,
    "digits": _digits_loader,
}

_HAS_TRAIN: dict[str, bool] = {
    "fashion-mnist": True,
    "mnist": True,
    "cifar10": True,
    "digits": True,
}

_ALIASES: dict[str, str] = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
}


def _parse(spec: str) -> tuple[str, Path | None]:
    """Split a spec into its canonical name and, for ``npz:``/``imagefolder:``, the path."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"invalid dataset spec {spec!r}; use one of: {', '.join(DATASETS)}.")
    text = spec.strip()
    for prefix, kind in _PATH_KINDS.items():
        if text[: len(prefix)].lower() == prefix:
            path = text[len(prefix) :]
            if not path:
                raise DataError(f"dataset spec {prefix!r} lacks a path; write it as {prefix}PATH.")
            return kind, Path(path).expanduser()
    key = text.lower()
    key = _ALIASES.get(key, key)
    if key in _LOADERS:
        return key, None
    if key == _FOLDER_PREFIX[:-1]:
        raise DataError(
            f"dataset spec {spec!r} lacks a path; write it as imagefolder:PATH with PATH a "
            "directory of class sub-folders."
        )
    raise DataError(f"unknown dataset {spec!r}; use one of: {', '.join(DATASETS)}.")


def dataset_name(spec: str) -> str:
    """Return the canonical, human-readable name of a dataset spec.

    Args:
        spec: A dataset spec such as ``"fashion-mnist"``, ``"FMNIST"`` or
            ``"npz:/data/my.npz"``.

    Returns:
        ``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``, ``"digits"``,
        ``"npz:<file name>"`` or ``"imagefolder:<directory name>"`` (base
        names, without the directories above them).

    Raises:
        DataError: If the spec is not a known dataset.
    """
    name, path = _parse(spec)
    if path is not None:
        return f"{name}:{path.name or path}"
    return name


def has_train_split(spec: str) -> bool:
    """Tell whether a dataset has a separate training split.

    Args:
        spec: A dataset spec.

    Returns:
        ``True`` for ``fashion-mnist``, ``mnist``, ``cifar10`` and ``digits``;
        ``False`` for ``npz:PATH`` (one file serves every split); for
        ``imagefolder:PATH``, whether PATH holds ``train/`` and ``val/`` (or
        ``test/``) folders.

    Raises:
        DataError: If the spec is not a known dataset.
    """
    name, path = _parse(spec)
    if name == "imagefolder" and path is not None:
        return has_split_folders(path)
    return _HAS_TRAIN.get(name, False)


def _channel_stats(values: Sequence[float], channels: int, what: str) -> np.ndarray:
    """Validate per-channel mean or std and return it shaped [1, C, 1, 1]."""
    try:
        array = np.asarray([float(v) for v in values], dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be a sequence of numbers, got {values!r}.") from exc
    if array.size not in (1, channels):
        raise DataError(
            f"{what} has {array.size} values but the data has {channels} channel(s); "
            f"give 1 value or {channels}."
        )
    if not np.isfinite(array).all():
        raise DataError(f"{what} contains NaN or Inf: {values!r}. Give finite numbers.")
    return np.broadcast_to(array, (channels,)).reshape(1, channels, 1, 1)


def load_dataset(
    spec: str,
    split: str = "test",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    image_size: int | None = None,
    resize: int | None = None,
    labels: str | os.PathLike[str] | None = None,
    workers: int = 0,
) -> LoadedDataset | ImageFiles:
    """Load a dataset as tensors (image folders: as files decoded when read).

    Known specs: ``fashion-mnist`` and ``mnist`` (IDX files, searched in
    ``data_dir``, ``$SNNCONV_DATA``, ``/usr/share/datasets/<name>`` and
    ``~/.cache/snnconv/<name>``), ``cifar10`` (the python-version batches or
    ``cifar-10-python.tar.gz``, searched in the same places with
    ``cifar10`` as the name; see :func:`snnconv.data.cifar.find_cifar10`),
    ``digits`` (scikit-learn's 8x8 digits with a fixed 1,437/360 split),
    ``imagefolder:PATH`` (one sub-folder of images per class, or with
    ``labels`` a flat folder and a labels file; decoded with Pillow one image at
    a time when read: an :class:`~snnconv.data.folders.ImageFiles`, see
    :mod:`snnconv.data.folders`), and
    ``npz:PATH`` (arrays ``x`` and ``y``; the same file serves every split).
    See :func:`snnconv.data.idx.data_search` for the order of the places searched.

    Args:
        spec: Dataset spec, one of :data:`DATASETS`.
        split: ``"train"`` or ``"test"``. Accepted but ignored for ``npz:``;
            for ``imagefolder:`` it picks ``train/`` or ``val/``/``test/``
            where those exist.
        data_dir: Directory searched first for file-based datasets.
        limit: Keep only the first ``limit`` samples in file order (all if the
            dataset is smaller). Must be positive. Image folders decode only
            these.
        mean: Per-channel mean (1 value or one per channel) subtracted after
            scaling to [0, 1].
        std: Per-channel standard deviation (1 value or one per channel),
            all > 0, divided by after subtracting ``mean``.
        image_size: For ``imagefolder:`` only: resize each image's shorter
            side to ``image_size`` (or ``resize``), then centre-crop it to
            ``image_size`` x ``image_size``. Without it, every image must have
            the same size.
        resize: For ``imagefolder:``: the shorter side before the crop
            (torchvision's ImageNet evaluation: ``resize=256, image_size=224``).
        labels: For ``imagefolder:``: a labels file naming the class of each
            image of a flat folder (the ImageNet validation layout; see
            :func:`~snnconv.data.folders.read_labels_file`).
        workers: For ``imagefolder:``: loader processes that decode batches in
            parallel during an evaluation (0: the main process).

    Fashion-MNIST falls back to the sample embedded in the package (the first
    2,000 test images and the 1,000 training images of the default
    calibration draw; :mod:`snnconv.data.embedded`) where no copy is
    installed and no directory was named, and says so with an
    :class:`EmbeddedSampleWarning`. A directory named by ``data_dir`` or
    ``$SNNCONV_DATA`` that does not hold the data is an error.

    Returns:
        A :class:`LoadedDataset` (a ``TensorDataset`` of ``(x, y)``: float32
        images ``[N, C, H, W]``, in [0, 1] unless normalised, and int64 labels
        ``[N]``) whose ``source`` says where it was read from.

    Raises:
        DataError: If the spec, split, limit, mean, std or image_size is
            invalid, or the data is missing or malformed.
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise DataError(f"limit must be a positive integer, got {limit!r}.")
    name, path = _parse(spec)
    for option, value in (("image_size", image_size), ("resize", resize), ("labels", labels)):
        if value is not None and name != "imagefolder":
            raise DataError(
                f"{option} applies to imagefolder:PATH datasets only, not "
                f"{dataset_name(spec)!r}; leave it unset."
            )
    if name == "imagefolder" and path is not None:
        return _image_files(path, split, image_size, resize, labels, limit, mean, std, workers)
    raw = _read(name, path, split, data_dir)
    x, y, origin = raw.x, raw.y, raw.origin
    if limit is not None:
        x, y = x[:limit], y[:limit]
        origin = origin[:limit] if origin is not None else None
    if raw.source == EMBEDDED:
        warnings.warn(EmbeddedSampleWarning(embedded_notice(spec, split, len(y))), stacklevel=2)
    images = torch.from_numpy(_scaled(x, mean, std))
    return LoadedDataset(images, torch.from_numpy(y.copy()), source=raw.source, origin=origin)


def _scaled(x: np.ndarray, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    """float32 images: uint8 ones scaled to [0, 1], then (x − mean) / std per channel."""
    images = np.divide(x, np.float32(255.0), dtype=np.float32) if x.dtype == np.uint8 else x.copy()
    channels = images.shape[1]
    if mean is not None:
        images -= _channel_stats(mean, channels, "mean")
    if std is not None:
        scale = _channel_stats(std, channels, "std")
        if (scale <= 0).any():
            raise DataError(f"std values must all be > 0, got {list(std)!r}.")
        images /= scale
    return images


def _image_files(
    path: Path,
    split: str,
    image_size: int | None,
    resize: int | None,
    labels: str | os.PathLike[str] | None,
    limit: int | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    workers: int,
) -> ImageFiles:
    """An image folder's split (or a flat folder with a labels file), decoded lazily."""
    for option, value in (("image_size", image_size), ("resize", resize), ("workers", workers)):
        if value is None:
            continue
        low = 0 if option == "workers" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DataError(f"{option} must be an integer >= {low}, got {value!r}.")
    samples = read_labels_file(path, labels) if labels is not None else list_images(path, split)
    if limit is not None:
        samples = samples[:limit]
    return ImageFiles(
        samples,
        resize if resize is not None else image_size,
        image_size,
        functools.partial(_scaled, mean=mean, std=std),
        source=str(path),
        workers=workers,
    )


def _read(
    name: str,
    path: Path | None,
    split: str,
    data_dir: _DataDir,
) -> _Split:
    """Read one split with the loader of its kind."""
    if path is not None:
        return _Split(*load_npz(path), str(path))
    return _LOADERS[name](name, split, data_dir)


def _subset_positions(dataset: Dataset, length: int, num_samples: int, seed: int) -> np.ndarray:
    """Positions of the samples :func:`calibration_subset` draws from ``dataset``."""
    return _draw_positions(getattr(dataset, "origin", None), length, num_samples, seed)


def _draw_positions(origin: object, length: int, num_samples: int, seed: int) -> np.ndarray:
    """Positions drawn from ``length`` samples whose ``origin`` (for the embedded sample)
    says where they sit in the full set."""
    if isinstance(origin, SampleOrigin) and len(origin.indices) == length:
        # a sample of a larger set: draw what the full set would give, if the sample holds it
        wanted = draw_indices(origin.length, num_samples, seed)
        held = np.asarray(origin.indices)
        positions = np.searchsorted(held, wanted).clip(max=length - 1)
        if np.array_equal(held[positions], wanted):
            return positions
    return draw_indices(length, num_samples, seed)


def load_calibration(
    spec: str,
    split: str,
    num_samples: int,
    seed: int = 0,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> tuple[LoadedDataset, int]:
    """``calibration_subset(load_dataset(spec, split, ...), num_samples, seed)`` without
    scaling the images that are not drawn (for Fashion-MNIST's training split: 1,000
    images scaled instead of 60,000). Not for ``imagefolder:`` specs (they decode only
    what is read anyway).

    Returns:
        The subset (equal to the one :func:`calibration_subset` gives) and the number
        of samples in the split it was drawn from.

    Raises:
        DataError: As :func:`load_dataset` and :func:`calibration_subset`.
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'.")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        raise DataError(f"num_samples must be a positive integer, got {num_samples!r}.")
    name, path = _parse(spec)
    if name == "imagefolder":
        raise DataError("load_calibration reads array datasets; use calibration_subset")
    raw = _read(name, path, split, data_dir)
    length = len(raw.y)
    if length == 0:
        raise DataError("cannot draw a calibration subset from an empty dataset.")
    if raw.source == EMBEDDED:
        warnings.warn(EmbeddedSampleWarning(embedded_notice(spec, split, length)), stacklevel=2)
    positions = _draw_positions(raw.origin, length, num_samples, seed)
    images = torch.from_numpy(_scaled(raw.x[positions], mean, std))
    labels = torch.from_numpy(np.ascontiguousarray(raw.y[positions]))
    origin = raw.origin[positions.tolist()] if raw.origin is not None else None
    return LoadedDataset(images, labels, source=raw.source, origin=origin), length


def calibration_subset(dataset: Dataset, num_samples: int, seed: int = 0) -> LoadedDataset:
    """Draw a reproducible random subset, e.g. for activation calibration.

    ``num_samples`` indices are drawn without replacement from
    ``torch.randperm`` with a ``torch.Generator`` seeded by ``seed``, then
    sorted so the subset keeps the dataset's order. From the embedded
    Fashion-MNIST sample (which holds the default draw of 1,000 training
    images), the subset is the one the full training set would give wherever
    the sample holds it (any ``num_samples`` up to 1,000 with seed 0).

    Args:
        dataset: A ``TensorDataset`` (or any sized dataset of tensor tuples).
        num_samples: Number of samples to draw; positive. If it is at least the
            dataset's length, every sample is returned.
        seed: Seed of the generator.

    Returns:
        A :class:`LoadedDataset` holding the chosen samples, with the
        dataset's ``source``.

    Raises:
        DataError: If ``num_samples`` is not positive or the dataset is empty.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        raise DataError(f"num_samples must be a positive integer, got {num_samples!r}.")
    length = len(dataset)  # type: ignore[arg-type]
    if length == 0:
        raise DataError("cannot draw a calibration subset from an empty dataset.")
    positions = _subset_positions(dataset, length, num_samples, seed)
    indices = torch.from_numpy(np.ascontiguousarray(positions, dtype=np.int64))
    if isinstance(dataset, TensorDataset):
        tensors = [tensor[indices] for tensor in dataset.tensors]
    else:
        items = [dataset[int(i)] for i in indices]
        columns = zip(*items, strict=True)
        tensors = [torch.stack([torch.as_tensor(v) for v in col]) for col in columns]
    origin = getattr(dataset, "origin", None)
    return LoadedDataset(
        *tensors,
        source=data_source(dataset),
        origin=origin[positions.tolist()] if isinstance(origin, SampleOrigin) else None,
    )
