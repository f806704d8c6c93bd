"""Datasets stored by the user as a numpy ``.npz`` archive with arrays ``x`` and ``y``."""

from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path

import numpy as np

from snnconv.errors import DataError

__all__ = ["load_npz"]

_FORMAT_HINT = (
    "Save it with `numpy.savez(path, x=images, y=labels)` where images is a uint8 "
    "(0–255) or float array of shape [N, C, H, W] or [N, H, W] and labels an integer "
    "array of shape [N]."
)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate the archive; keyed on modification time and size as well."""
    del mtime_ns, size  # part of the cache key only
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read as a .npz archive ({exc}). {_FORMAT_HINT}") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array, not a .npz archive. {_FORMAT_HINT}")
    with archive:
        missing = [key for key in ("x", "y") if key not in archive.files]
        if missing:
            raise DataError(
                f"{path}: missing array(s) {', '.join(missing)} (found: "
                f"{', '.join(archive.files) or 'none'}). {_FORMAT_HINT}"
            )
        try:
            x = archive["x"]
            y = archive["y"]
        except ValueError as exc:
            raise DataError(
                f"{path}: holds object arrays, which are refused because loading them "
                f"would run pickled code. {_FORMAT_HINT}"
            ) from exc
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: archive is damaged ({exc}). {_FORMAT_HINT}") from exc
    return _validate(x, y, path)


def _validate(x: np.ndarray, y: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    """Check dtypes and shapes; return (x as [N,C,H,W] uint8 or float32, y as int64)."""
    if x.ndim == 3:
        x = x[:, None, :, :]
    if x.ndim != 4:
        raise DataError(
            f"{path}: array x has shape {x.shape}; expected [N, C, H, W] or [N, H, W]. "
            f"{_FORMAT_HINT}"
        )
    if x.dtype == np.bool_:
        x = x.astype(np.float32)
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise DataError(f"{path}: array x contains NaN or Inf. Remove or fix those samples.")
    elif x.dtype != np.uint8:
        raise DataError(
            f"{path}: array x has dtype {x.dtype}; expected uint8 (scaled by 1/255) or a "
            f"floating type (used as is). Convert it first. {_FORMAT_HINT}"
        )
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{path}: array y has dtype {y.dtype} and shape {y.shape}; expected integer class "
            f"labels of shape [N]. {_FORMAT_HINT}"
        )
    if x.shape[0] != y.shape[0]:
        raise DataError(
            f"{path}: x holds {x.shape[0]} samples but y holds {y.shape[0]} labels; they must "
            "have the same length."
        )
    if x.shape[0] == 0:
        raise DataError(f"{path}: the archive holds no samples. {_FORMAT_HINT}")
    if y.min() < 0:
        raise DataError(f"{path}: array y has negative labels; use labels 0..K-1.")
    y = y.astype(np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load_npz(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset from a ``.npz`` archive holding arrays ``x`` and ``y``.

    The archive is opened with ``allow_pickle=False``, so object arrays are
    refused. Results are cached in-process per file (keyed on path, size and
    modification time) and returned read-only.

    Args:
        path: Path of the archive.

    Returns:
        ``(x, y)``: images of shape ``[N, C, H, W]`` (a channel axis is added
        to ``[N, H, W]`` input), either uint8 (0–255, to be scaled by 1/255)
        or float32 (used as is), and int64 labels of shape ``[N]``.

    Raises:
        DataError: If the file is missing or unreadable, an array is missing,
            holds objects, has the wrong dtype or shape, or ``x`` and ``y``
            differ in length.
    """
    resolved = Path(path).expanduser()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise DataError(
            f"{resolved}: cannot open dataset file ({exc.strerror or exc}). Check the path "
            "given after 'npz:'."
        ) from exc
    if not resolved.is_file():
        raise DataError(f"{resolved}: is not a file. Give the path of a .npz archive after 'npz:'.")
    return _load_cached(str(resolved.resolve()), stat.st_mtime_ns, stat.st_size)


def clear_cache() -> None:
    """Forget every archive read so far (frees memory)."""
    _load_cached.cache_clear()
