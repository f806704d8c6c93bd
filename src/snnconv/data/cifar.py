"""Reader for the CIFAR-10 "python version" batches, without unpickling arbitrary objects.

The CIFAR-10 python release (``cifar-10-python.tar.gz``) holds six pickled
batches in ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5``
(50,000 training images) and ``test_batch`` (10,000 test images). Each is a
dict with ``b"data"``, a uint8 array ``[N, 3072]`` (1,024 red, then green,
then blue values of a 32x32 image, row-major), and ``b"labels"``, a list of
N class indices 0–9.

Unpickling can run arbitrary code, so the batches are read with a restricted
unpickler that resolves only the globals such a batch needs to rebuild numpy
arrays (:data:`ALLOWED_GLOBALS`) and refuses every other one with a
:class:`~snnconv.errors.DataError`. The archive is read in memory with
:mod:`tarfile`; nothing is extracted to disk.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import importlib
import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from snnconv.data import idx as _idx
from snnconv.errors import DataError

__all__ = [
    "ALLOWED_GLOBALS",
    "ARCHIVE_NAME",
    "BATCH_DIR_NAME",
    "DATASET_NAME",
    "clear_cache",
    "find_cifar10",
    "load_cifar10_split",
    "read_batch",
]

#: Name of the dataset in search paths (``~/.cache/snnconv/cifar10``) and specs.
DATASET_NAME = "cifar10"

#: Directory that the archive unpacks to.
BATCH_DIR_NAME = "cifar-10-batches-py"

#: File name of the python-version archive on the CIFAR web site.
ARCHIVE_NAME = "cifar-10-python.tar.gz"

_SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}

_IMAGE_SHAPE = (3, 32, 32)
_NUM_CLASSES = 10

#: A batch is about 30 MB; anything much larger is not a CIFAR-10 batch.
_MAX_BATCH_BYTES = 64 * 1024 * 1024

_HOW_TO_GET = (
    f"Download {ARCHIVE_NAME} (the 'CIFAR-10 python version') from "
    "https://www.cs.toronto.edu/~kriz/cifar.html and pass --data-dir DIR (the directory "
    f"holding the archive or its unpacked {BATCH_DIR_NAME}/ folder) or set "
    f"{_idx.ENV_VAR}=DIR."
)


def _numpy_global(module: str, name: str) -> Any:
    """Resolve a numpy-internal global from whichever module this numpy version has."""
    for candidate in (module, module.replace("numpy._core", "numpy.core")):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")


#: The only globals the restricted unpickler resolves, as (module, name):
#: numpy's array reconstructor under its numpy 1 and numpy 2 module names,
#: ``numpy.ndarray`` and ``numpy.dtype`` (what the original Python 2 batches
#: use), ``_codecs.encode`` (bytes pickled by Python 3 with protocol 2) and
#: numpy's ``_frombuffer`` (arrays pickled with protocol 5).
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)

_RESOLVERS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_global(
        "numpy._core.multiarray", "_reconstruct"
    ),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_global(
        "numpy._core.multiarray", "_reconstruct"
    ),
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: codecs.encode,
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_global(
        "numpy._core.numeric", "_frombuffer"
    ),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_global(
        "numpy._core.numeric", "_frombuffer"
    ),
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file: io.BytesIO, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global; refuse everything else."""
        key = (module, name)
        if key not in ALLOWED_GLOBALS:
            raise DataError(
                f"{self._source}: refused to unpickle the global '{module}.{name}': a CIFAR-10 "
                "batch holds only numpy arrays, lists and bytes, so this file is not a genuine "
                f"batch and may be malicious. Delete it and download {ARCHIVE_NAME} again from "
                "https://www.cs.toronto.edu/~kriz/cifar.html."
            )
        return _RESOLVERS[key]()

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids (a CIFAR-10 batch has none)."""
        raise DataError(
            f"{self._source}: the pickle refers to an external object ({pid!r}); a CIFAR-10 "
            "batch has none. Download the batch again."
        )


def read_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse the bytes of one CIFAR-10 batch with the restricted unpickler.

    Args:
        raw: The pickled batch.
        source: Where the bytes came from, for error messages.

    Returns:
        ``(images, labels)``: uint8 images ``[N, 3, 32, 32]`` and int64 labels ``[N]``.

    Raises:
        DataError: If the pickle needs a global outside :data:`ALLOWED_GLOBALS`,
            is damaged, or does not hold a CIFAR-10 batch.
    """
    damaged = f"The file is damaged or not a CIFAR-10 batch; download {ARCHIVE_NAME} again."
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), source).load()
    except DataError:
        raise
    except Exception as exc:  # damaged pickles raise many kinds of errors
        raise DataError(
            f"{source}: cannot unpickle ({type(exc).__name__}: {exc}). {damaged}"
        ) from exc
    if not isinstance(batch, dict):
        raise DataError(f"{source}: expected a dict, got {type(batch).__name__}. {damaged}")
    data = batch.get(b"data")
    labels = batch.get(b"labels")
    if labels is None and b"fine_labels" in batch:
        raise DataError(
            f"{source}: this is a CIFAR-100 batch (it has b'fine_labels'); only CIFAR-10 is "
            "supported. Use the CIFAR-10 python version, or convert the data to .npz (x, y) "
            "and use npz:PATH."
        )
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"{source}: the batch lacks b'data' (an array) or b'labels'. {damaged}")
    pixels = int(np.prod(_IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        raise DataError(
            f"{source}: b'data' must be a uint8 array [N, {pixels}], got {data.dtype} with "
            f"shape {data.shape}. {damaged}"
        )
    try:
        label_array = np.asarray(labels)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: b'labels' is not a list of integers. {damaged}") from exc
    if label_array.shape != (data.shape[0],) or not np.issubdtype(label_array.dtype, np.integer):
        raise DataError(
            f"{source}: b'labels' must hold {data.shape[0]} integers (one per image), got "
            f"{label_array.dtype} with shape {label_array.shape}. {damaged}"
        )
    if label_array.size and (label_array.min() < 0 or label_array.max() >= _NUM_CLASSES):
        raise DataError(
            f"{source}: labels must lie in 0..{_NUM_CLASSES - 1}, found "
            f"{int(label_array.min())}..{int(label_array.max())}. {damaged}"
        )
    images = data.reshape(data.shape[0], *_IMAGE_SHAPE)
    return images, label_array.astype(np.int64)


def find_cifar10(split: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Locate the CIFAR-10 batches of one split: an unpacked directory or the archive.

    Searched as :func:`snnconv.data.idx.data_search` says: ``data_dir``
    (which may also be the archive itself) and ``data_dir/cifar10`` if given,
    else ``$SNNCONV_DATA`` and ``$SNNCONV_DATA/cifar10`` if set, else
    ``/usr/share/datasets/cifar10`` and ``~/.cache/snnconv/cifar10``. In each
    base directory the batch files are looked for in the directory itself,
    then in ``cifar-10-batches-py/``, then in ``cifar-10-python.tar.gz``.

    Args:
        split: ``"train"`` or ``"test"``.
        data_dir: Optional directory (or archive) searched first.

    Returns:
        The directory holding the split's batch files, or the archive.

    Raises:
        DataError: If nothing is found; the message lists every place searched
            and how to obtain the data.
    """
    if split not in _SPLIT_FILES:
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'.")
    names = _SPLIT_FILES[split]
    if data_dir is not None:
        given = Path(data_dir).expanduser()
        if given.is_file() and given.name.endswith((".tar.gz", ".tgz", ".tar")):
            return given
    search = _idx.data_search(DATASET_NAME, data_dir)
    searched: list[Path] = []
    for base in search.dirs:
        for directory in (base, base / BATCH_DIR_NAME):
            searched.append(directory)
            if all((directory / name).is_file() for name in names):
                return directory
        archive = base / ARCHIVE_NAME
        searched.append(archive)
        if archive.is_file():
            return archive
    raise dataclasses.replace(search, dirs=tuple(searched)).not_found(
        f"CIFAR-10 ({split} split)",
        f"no directory holds {', '.join(names)} and no {ARCHIVE_NAME} was found",
        _HOW_TO_GET,
    )


def _read_from_archive(archive: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Read the named batch files from the archive into memory."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if base not in names or base in found or not member.isfile():
                    continue
                if member.size > _MAX_BATCH_BYTES:
                    raise DataError(
                        f"{archive}:{member.name}: member is {member.size} bytes, far more than "
                        f"a CIFAR-10 batch. {_HOW_TO_GET}"
                    )
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                found[base] = handle.read()
                if len(found) == len(names):
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{archive}: cannot read the archive ({exc}). The file is damaged or truncated; "
            f"download {ARCHIVE_NAME} again."
        ) from exc
    missing = [name for name in names if name not in found]
    if missing:
        raise DataError(
            f"{archive}: the archive lacks {', '.join(missing)}. It is not the CIFAR-10 python "
            f"version; {_HOW_TO_GET}"
        )
    return found


def _read_from_dir(directory: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Read the named batch files from a directory."""
    found: dict[str, bytes] = {}
    for name in names:
        path = directory / name
        try:
            size = path.stat().st_size
            if size > _MAX_BATCH_BYTES:
                raise DataError(
                    f"{path}: file is {size} bytes, far more than a CIFAR-10 batch. {_HOW_TO_GET}"
                )
            found[name] = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read file ({exc}). Check the path.") from exc
    return found


@functools.lru_cache(maxsize=2)
def _load_cached(
    location: str, split: str, stamp: tuple[tuple[int, int], ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Load and concatenate one split; ``stamp`` (mtimes, sizes) is part of the cache key."""
    del stamp  # part of the cache key only
    path = Path(location)
    names = _SPLIT_FILES[split]
    is_dir = path.is_dir()
    raw = _read_from_dir(path, names) if is_dir else _read_from_archive(path, names)
    parts = [
        read_batch(raw[name], str(path / name) if is_dir else f"{path}:{name}") for name in names
    ]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0].copy()
    labels = np.concatenate([p[1] for p in parts])
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _stamp(location: Path, split: str) -> tuple[tuple[int, int], ...]:
    """Modification times and sizes of the files a split is read from."""
    files = [location / name for name in _SPLIT_FILES[split]] if location.is_dir() else [location]
    stats = []
    for file in files:
        try:
            stat = file.stat()
        except OSError as exc:
            raise DataError(f"{file}: cannot open file ({exc}). Check the path.") from exc
        stats.append((stat.st_mtime_ns, stat.st_size))
    return tuple(stats)


def load_cifar10_split(
    split: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of CIFAR-10 as unscaled arrays.

    Results are cached in-process (the last two splits read, keyed on the
    files' paths, sizes and modification times); the arrays are read-only.

    Args:
        split: ``"train"`` (50,000 images from ``data_batch_1`` .. ``_5``) or
            ``"test"`` (10,000 images from ``test_batch``).
        data_dir: Optional directory or archive searched first (see :func:`find_cifar10`).

    Returns:
        ``(images, labels)``: uint8 images ``[N, 3, 32, 32]`` with values
        0–255 and int64 labels ``[N]`` in 0–9.

    Raises:
        DataError: If the data is missing, damaged, or unsafe to unpickle.
    """
    location = find_cifar10(split, data_dir).resolve()
    return _load_cached(str(location), split, _stamp(location, split))


def clear_cache() -> None:
    """Forget every CIFAR-10 split read so far (frees memory)."""
    _load_cached.cache_clear()
