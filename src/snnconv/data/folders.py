"""Image-folder datasets (``imagefolder:PATH``): one sub-folder of images per class.

The layout is torchvision's ``ImageFolder``: ``PATH/<class>/<image>``, class
names sorted alphabetically give the labels 0, 1, .... When ``PATH`` holds
``train/`` and ``val/`` (or ``test/``) folders, those are the two splits (the
classes are the union of both, so labels agree); otherwise ``PATH`` itself
serves both splits.

Images are decoded with Pillow (``pip install 'snnconv[images]'``),
converted to RGB as torchvision's default loader does, optionally resized
(shorter side) and centre-cropped. :class:`ImageFiles` decodes them lazily,
one at a time when a batch asks for it (``load_dataset("imagefolder:PATH")``
returns one; a ``DataLoader`` with workers decodes in parallel), so a folder
such as the ImageNet validation set (50,000 images, about 30 GB as float32 at
224x224) is never held in memory; :func:`load_image_folder` loads a split
eagerly as arrays.

The ImageNet validation layout, all images in one folder with a labels file,
is read with :func:`read_labels_file` (``labels=FILE``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnconv.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFiles",
    "find_classes",
    "has_split_folders",
    "list_images",
    "load_image_folder",
    "read_labels_file",
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
        array = decode_image(path, resize, image_size, image_module)
        if arrays and array.shape != arrays[0].shape:
            raise DataError(_size_mismatch(path, array, samples[0][0], arrays[0]))
        arrays.append(array)
    if any(a.dtype != np.uint8 for a in arrays):  # some images had more than 8 bits
        arrays = [a / np.float32(255) if a.dtype == np.uint8 else a for a in arrays]
    images = np.stack(arrays).transpose(0, 3, 1, 2).copy()
    labels = np.asarray([label for _, label in samples], dtype=np.int64)
    return images, labels


def _size_mismatch(path: Path, array: np.ndarray, first: Path, first_array: np.ndarray) -> str:
    return (
        f"{path}: image is {array.shape[1]}x{array.shape[0]} but {first} is "
        f"{first_array.shape[1]}x{first_array.shape[0]}. Pass image_size (--image-size, or "
        "--resize and --crop) to resize and crop every image to one size."
    )


def decode_image(
    path: Path, resize: int | None, crop: int | None, image_module: Any = None
) -> np.ndarray:
    """One image as an ``[H, W, 3]`` array: uint8, or float32 in [0, 1] for grey images of
    more than 8 bits; its shorter side resized to ``resize``, then centre-cropped to
    ``crop`` x ``crop`` (where given).

    Raises:
        DataError: The file cannot be decoded or is smaller than the crop (naming it).
    """
    image_module = image_module or _require_pillow()
    try:
        with image_module.open(path) as opened:
            image = _decoded(opened, image_module, path)
    except (OSError, ValueError, image_module.DecompressionBombError) as exc:
        raise DataError(
            f"{path}: cannot decode the image ({exc}). Remove or replace the file."
        ) from exc
    try:
        image = _resize_crop(image, resize, crop, image_module)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc
    array = np.asarray(image)
    if array.ndim == 2:  # a high-bit-depth grey image, in [0, 1]: grey to RGB
        array = np.repeat(array[:, :, None], 3, axis=2)
    return array


class ImageFiles(torch.utils.data.Dataset):
    """Labelled image files decoded on demand: ``(x, y)`` with ``x`` a float32
    ``[3, H, W]`` tensor (``scale`` applied to the ``[1, 3, H, W]`` array: scaling to
    [0, 1] and normalisation) and ``y`` the label.

    Nothing but the file list is held: memory does not grow with the number of
    images. The first image is decoded when the dataset is made, to know the size
    every other image must have (and to check the scaling against its channels).

    Args:
        samples: ``(path, label)`` pairs in load order.
        resize: Shorter side after resizing (None: as stored).
        crop: Side of the centre crop (None: none).
        scale: Maps a ``[1, 3, H, W]`` array (uint8 or float32) to float32.
        source: Where the images were read from.
        workers: Loader processes that decode batches in parallel when the
            evaluation reads this dataset (0: in the main process).

    Attributes:
        targets: All labels, as an int64 tensor.
    """

    def __init__(
        self,
        samples: list[tuple[Path, int]],
        resize: int | None,
        crop: int | None,
        scale: Callable[[np.ndarray], np.ndarray],
        source: str | None = None,
        workers: int = 0,
    ) -> None:
        if not samples:
            raise DataError(f"{source}: no images to load.")
        self.samples = samples
        self.resize, self.crop, self.scale = resize, crop, scale
        self.source = source
        self.workers = workers
        self.origin = None
        self.targets = torch.tensor([label for _, label in samples], dtype=torch.int64)
        self._first = decode_image(samples[0][0], resize, crop)
        scale(self._first.transpose(2, 0, 1)[None])  # a wrong mean/std fails now

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.samples[index][0]
        array = decode_image(path, self.resize, self.crop)
        if array.shape != self._first.shape:
            raise DataError(_size_mismatch(path, array, self.samples[0][0], self._first))
        if array.dtype != np.uint8 and self._first.dtype == np.uint8:
            array = array.astype(np.float32)  # a deep image among 8-bit ones: in [0, 1]
        elif array.dtype == np.uint8 and self._first.dtype != np.uint8:
            array = array / np.float32(255)
        x = self.scale(np.ascontiguousarray(array.transpose(2, 0, 1))[None])[0]
        return torch.from_numpy(np.ascontiguousarray(x)), self.targets[index]


_WNID = re.compile(r"^n\d{8}$")


def read_labels_file(
    images: str | os.PathLike[str], labels: str | os.PathLike[str]
) -> list[tuple[Path, int]]:
    """The images of a flat folder (the ImageNet validation layout) with their labels.

    Each line of ``labels`` names one image and its class, separated by a comma or
    spaces; the image's extension may be left out. Accepted forms:

    * ``filename,class_index`` or ``filename class_index``: the index as the model
      counts classes (torchvision's ImageNet models: the sorted-wnid order);
    * ``filename wnid`` or ``filename,wnid ...`` (e.g. ``LOC_val_solution.csv``,
      whose first wnid is taken): the label is the wnid's position among the sorted
      wnids of the file (torchvision's order when all 1,000 classes occur).

    A first line that is a header (``ImageId,PredictionString``) is skipped. Images
    are listed in the file's order.

    Raises:
        DataError: A line that cannot be read, a class missing, an image missing
            (each naming the line), or a mix of the two forms.
    """
    folder, table = Path(images).expanduser(), Path(labels).expanduser()
    _check_root(folder)
    try:
        lines = table.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"labels file {table}: cannot read it ({error}).") from None
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    stems = {p.stem: p for p in files.values()}
    rows: list[tuple[int, Path, str]] = []
    for number, line in enumerate(lines, 1):
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        if not fields:
            continue
        if len(fields) < 2 or not (fields[1].isdigit() or _WNID.match(fields[1])):
            if number == 1:
                continue  # a header
            raise DataError(
                f"labels file {table}, line {number}: expected 'filename,class_index' or "
                f"'filename wnid', got {line.strip()!r}."
            )
        path = files.get(fields[0]) or stems.get(fields[0])
        if path is None:
            raise DataError(
                f"labels file {table}, line {number}: image {fields[0]!r} is not in {folder}."
            )
        rows.append((number, path, fields[1]))
    if not rows:
        raise DataError(f"labels file {table}: no 'filename,class' lines found.")
    wnids = {c for _, _, c in rows if not c.isdigit()}
    if wnids and len(wnids) != len({c for _, _, c in rows}):
        raise DataError(
            f"labels file {table}: mixes class indices and wnids; use one form throughout."
        )
    order = {w: i for i, w in enumerate(sorted(wnids))}
    return [(path, order[c] if wnids else int(c)) for _, path, c in rows]


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
