"""Image-folder datasets (``imagefolder:PATH``): one sub-folder of images per class.

The layout is torchvision's ``ImageFolder``: ``PATH/<class>/<image>``, class
names sorted alphabetically give the labels 0, 1, .... When ``PATH`` holds
``train/`` and ``val/`` (or ``test/``) folders, those are the two splits (the
classes are the union of both, so labels agree); otherwise ``PATH`` itself
serves both splits.

Images are decoded with Pillow (``pip install 'snnconv[images]'``),
converted to RGB as torchvision's default loader does, optionally resized
(shorter side) and centre-cropped, and loaded eagerly into memory. This is
meant for evaluation subsets: a large folder such as the ImageNet validation
set (50,000 images, about 30 GB as float32 at 224x224) needs ``limit``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from snnconv.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "find_classes",
    "has_split_folders",
    "list_images",
    "load_image_folder",
    "split_folder",
]

#: File name endings treated as images (case-insensitive), as torchvision's.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)

_TRAIN_DIR = "train"
_EVAL_DIRS: tuple[str, ...] = ("val", "test")


def _require_pillow() -> Any:
    """Import ``PIL.Image`` or explain how to install it."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise DataError(
            "imagefolder datasets need Pillow to decode images, and it is not installed. "
            "Install it with `pip install 'snnconv[images]'` (or `pip install pillow`)."
        ) from exc
    return Image


def _check_root(root: Path) -> None:
    """Require an existing directory."""
    if not root.is_dir():
        raise DataError(
            f"{root}: image folder not found (not a directory). Pass imagefolder:PATH with PATH "
            "a directory holding one sub-folder of images per class."
        )


def has_split_folders(root: str | os.PathLike[str]) -> bool:
    """Tell whether ``root`` holds ``train/`` and ``val/`` or ``test/`` folders.

    Args:
        root: The dataset directory.

    Returns:
        ``True`` if both a training and an evaluation folder exist.
    """
    path = Path(root).expanduser()
    return (path / _TRAIN_DIR).is_dir() and any((path / d).is_dir() for d in _EVAL_DIRS)


def split_folder(root: str | os.PathLike[str], split: str) -> Path:
    """The folder holding one split.

    Args:
        root: The dataset directory.
        split: ``"train"`` or ``"test"``.

    Returns:
        ``root/train`` or ``root/val`` (else ``root/test``) when ``root`` has
        split folders (see :func:`has_split_folders`), else ``root`` itself.

    Raises:
        DataError: If ``split`` is unknown or ``root`` is not a directory.
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'.")
    path = Path(root).expanduser()
    _check_root(path)
    if not has_split_folders(path):
        return path
    if split == "train":
        return path / _TRAIN_DIR
    return next(path / d for d in _EVAL_DIRS if (path / d).is_dir())


def _class_dirs(folder: Path) -> list[str]:
    """Names of the visible sub-directories of ``folder``."""
    return [e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]


def find_classes(root: str | os.PathLike[str]) -> list[str]:
    """Class names of an image-folder dataset, sorted; a class's label is its index.

    With split folders, the classes are the union of the training and
    evaluation folders' sub-directories, so both splits share labels.

    Args:
        root: The dataset directory.

    Returns:
        The sorted class names.

    Raises:
        DataError: If ``root`` is not a directory or has no class sub-folders.
    """
    path = Path(root).expanduser()
    _check_root(path)
    if has_split_folders(path):
        folders = [split_folder(path, "train"), split_folder(path, "test")]
    else:
        folders = [path]
    names = sorted({name for folder in folders for name in _class_dirs(folder)})
    if not names:
        raise DataError(
            f"{path}: no class sub-folders found. Arrange the images as PATH/<class>/<image> "
            "(or PATH/train/<class>/... and PATH/val/<class>/...)."
        )
    return names


def list_images(root: str | os.PathLike[str], split: str) -> list[tuple[Path, int]]:
    """The image files of one split with their labels, in load order.

    Order: classes sorted by name, then files sorted by name within a class.
    Hidden files and files without an image extension
    (:data:`IMAGE_EXTENSIONS`) are skipped; sub-folders of class folders are
    searched too.

    Args:
        root: The dataset directory.
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(path, label)`` pairs.

    Raises:
        DataError: If the folder is missing, has no classes, or the split holds no image.
    """
    classes = find_classes(root)
    folder = split_folder(root, split)
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        files = sorted(
            p
            for p in class_dir.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        samples += [(p, label) for p in files]
    if not samples:
        raise DataError(
            f"{folder}: no images found in its class folders (extensions: "
            f"{', '.join(IMAGE_EXTENSIONS)})."
        )
    return samples


def _resize_crop(image: Any, resize: int | None, crop: int | None, image_module: Any) -> Any:
    """Resize the shorter side to ``resize``, then centre-crop to ``crop`` x ``crop``."""
    if resize is not None:
        width, height = image.size
        if width <= height:
            size = (resize, max(1, round(height * resize / width)))
        else:
            size = (max(1, round(width * resize / height)), resize)
        if size != image.size:
            image = image.resize(size, image_module.Resampling.BILINEAR)
    if crop is not None:
        width, height = image.size
        if width < crop or height < crop:
            raise DataError(
                f"image of {width}x{height} pixels is smaller than the crop {crop}x{crop}; "
                "resize it first (image_size resizes the shorter side to the crop size)."
            )
        left = round((width - crop) / 2.0)
        top = round((height - crop) / 2.0)
        image = image.crop((left, top, left + crop, top + crop))
    return image


def load_image_folder(
    root: str | os.PathLike[str],
    split: str = "test",
    *,
    image_size: int | None = None,
    resize: int | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of an image folder as unscaled arrays.

    Each image is converted to RGB, its shorter side resized to ``resize``
    (bilinear; default ``image_size``), then centre-cropped to
    ``image_size`` x ``image_size``. Without ``image_size`` and ``resize``
    every image must already have the same size.

    Args:
        root: The dataset directory.
        split: ``"train"`` or ``"test"`` (the same images unless ``root`` has
            split folders; see :func:`split_folder`).
        image_size: Side of the square centre crop (>= 1).
        resize: Target length of the shorter side before cropping (>= 1);
            defaults to ``image_size``. Torchvision's ImageNet evaluation uses
            ``resize=256, image_size=224``.
        limit: Load only the first ``limit`` images in load order (see
            :func:`list_images`: classes sorted by name).

    Returns:
        ``(images, labels)``: uint8 images ``[N, 3, H, W]`` with values 0–255
        and int64 labels ``[N]``; float32 images in [0, 1] if any image has
        more than 8 bits per pixel (16-bit grey PNGs: scaled by 1/65535).

    Raises:
        DataError: If Pillow is missing, the folder is malformed, an image
            cannot be decoded, or sizes differ without ``image_size``.
    """
    for name, value in (("image_size", image_size), ("resize", resize), ("limit", limit)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"{name} must be a positive integer, got {value!r}.")
    image_module = _require_pillow()
    samples = list_images(root, split)
    if limit is not None:
        samples = samples[:limit]
    if resize is None:
        resize = image_size
    arrays: list[np.ndarray] = []
    for path, _ in samples:
        try:
            with image_module.open(path) as opened:
                image = _decoded(opened, image_module, path)
        except (OSError, ValueError, image_module.DecompressionBombError) as exc:
            raise DataError(
                f"{path}: cannot decode the image ({exc}). Remove or replace the file."
            ) from exc
        try:
            image = _resize_crop(image, resize, image_size, image_module)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from exc
        array = np.asarray(image)
        if array.ndim == 2:  # a high-bit-depth grey image, in [0, 1]: grey to RGB
            array = np.repeat(array[:, :, None], 3, axis=2)
        if arrays and array.shape != arrays[0].shape:
            raise DataError(
                f"{path}: image is {array.shape[1]}x{array.shape[0]} but "
                f"{samples[0][0]} is {arrays[0].shape[1]}x{arrays[0].shape[0]}. Pass "
                "image_size (e.g. load_dataset(..., image_size=224)) to resize and crop "
                "every image to one size."
            )
        arrays.append(array)
    if any(a.dtype != np.uint8 for a in arrays):  # some images had more than 8 bits
        arrays = [a / np.float32(255) if a.dtype == np.uint8 else a for a in arrays]
    images = np.stack(arrays).transpose(0, 3, 1, 2).copy()
    labels = np.asarray([label for _, label in samples], dtype=np.int64)
    return images, labels


#: Pillow modes of grey images with more than 8 bits, and the value of full white.
_HIGH_DEPTH: dict[str, float] = {
    "I;16": 65535.0,
    "I;16B": 65535.0,
    "I;16L": 65535.0,
    "I;16N": 65535.0,
    "I": 65535.0,
    "F": 1.0,
}


def _decoded(opened: Any, image_module: Any, path: Path) -> Any:
    """An RGB image (8 bits), or for a grey image of more bits a float image ("F") in
    [0, 1], scaled by its bit depth (converting it to RGB would saturate it)."""
    if opened.mode not in _HIGH_DEPTH:
        return opened.convert("RGB")
    values = np.asarray(opened, dtype=np.float32)
    full = _HIGH_DEPTH[opened.mode]
    if values.size and (float(values.min()) < 0 or float(values.max()) > full):
        raise DataError(
            f"{path}: a {opened.mode} image with values outside 0..{full:g}; save it as an "
            "8- or 16-bit image."
        )
    return image_module.fromarray(values / np.float32(full), mode="F")
