"""Tests of snnconv.data.folders: image-folder datasets (``imagefolder:PATH``)."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from snnconv.data import dataset_name, has_train_split, load_dataset
from snnconv.data.folders import find_classes, list_images, load_image_folder, split_folder
from snnconv.errors import DataError

Image = pytest.importorskip(
    "PIL.Image", reason="Pillow is not installed (pip install 'snnconv[images]')"
)


def _all(ds: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (x, y) of a lazily decoded image dataset, stacked."""
    items = [ds[i] for i in range(len(ds))]  # type: ignore[arg-type]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write an HxWx3 (or HxW) uint8 array as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def solid(height: int, width: int, value: tuple[int, int, int]) -> np.ndarray:
    """An image of one colour."""
    return np.broadcast_to(np.asarray(value, np.uint8), (height, width, 3)).copy()


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    """A folder without split folders: classes 'cat' (2 images) and 'dog' (1)."""
    root = tmp_path / "flat"
    write_png(root / "dog" / "a.png", solid(4, 4, (0, 0, 255)))
    write_png(root / "cat" / "b.png", solid(4, 4, (255, 0, 0)))
    write_png(root / "cat" / "a.png", solid(4, 4, (0, 255, 0)))
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"junk")
    return root


def test_flat_folder(flat: Path) -> None:
    assert find_classes(flat) == ["cat", "dog"]
    assert [(p.name, label) for p, label in list_images(flat, "test")] == [
        ("a.png", 0),
        ("b.png", 0),
        ("a.png", 1),
    ]
    x, y = load_image_folder(flat, "test")
    assert x.shape == (3, 3, 4, 4) and x.dtype == np.uint8
    assert y.tolist() == [0, 0, 1]
    assert x[0, :, 0, 0].tolist() == [0, 255, 0]  # cat/a.png is green
    assert x[2, :, 0, 0].tolist() == [0, 0, 255]


def test_registry_spec(flat: Path) -> None:
    ds = load_dataset(f"imagefolder:{flat}", "test")
    x, y = _all(ds)
    assert x.dtype == torch.float32 and x.shape == (3, 3, 4, 4)
    assert float(x.max()) == 1.0 and float(x.min()) == 0.0
    assert y.dtype == torch.int64
    assert not has_train_split(f"imagefolder:{flat}")
    assert dataset_name(f"imagefolder:{flat}") == "imagefolder:flat"
    train = load_dataset(f"imagefolder:{flat}", "train", limit=2)
    assert _all(train)[1].tolist() == [0, 0]
    norm = load_dataset(f"imagefolder:{flat}", mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    assert float(_all(norm)[0].min()) == -1.0


def test_split_folders(tmp_path: Path) -> None:
    root = tmp_path / "imnet"
    write_png(root / "train" / "a" / "1.png", solid(4, 4, (1, 1, 1)))
    write_png(root / "train" / "b" / "1.png", solid(4, 4, (2, 2, 2)))
    write_png(root / "val" / "b" / "1.png", solid(4, 4, (3, 3, 3)))
    assert has_train_split(f"imagefolder:{root}")
    assert split_folder(root, "train") == root / "train"
    assert split_folder(root, "test") == root / "val"
    # Labels come from the union of both splits' classes: 'b' is 1 in val too.
    assert _all(load_dataset(f"imagefolder:{root}", "test"))[1].tolist() == [1]
    assert _all(load_dataset(f"imagefolder:{root}", "train"))[1].tolist() == [0, 1]


def test_test_folder_when_no_val(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_png(root / "train" / "a" / "1.png", solid(2, 2, (0, 0, 0)))
    write_png(root / "test" / "a" / "1.png", solid(2, 2, (9, 9, 9)))
    assert split_folder(root, "test") == root / "test"
    x, _ = load_image_folder(root, "test")
    assert int(x.max()) == 9


def test_resize_and_center_crop(tmp_path: Path) -> None:
    root = tmp_path / "sizes"
    # 6 wide x 4 high: left third red, middle green, right third blue.
    wide = np.zeros((4, 6, 3), np.uint8)
    wide[:, :2, 0] = 255
    wide[:, 2:4, 1] = 255
    wide[:, 4:, 2] = 255
    write_png(root / "a" / "wide.png", wide)
    write_png(root / "a" / "tall.png", solid(8, 2, (10, 20, 30)))
    with pytest.raises(DataError, match="image_size"):
        load_image_folder(root)
    x, _ = load_image_folder(root, image_size=2)
    assert x.shape == (2, 3, 2, 2)
    assert x[0].reshape(3, -1).T.tolist() == [[10, 20, 30]] * 4  # tall.png comes first
    # wide.png: shorter side 4 → 2 (3 wide after resizing), centre 2x2 crop.
    assert x[1, 1].max() > 0  # the green middle survives the crop
    x4, _ = load_image_folder(root, image_size=2, resize=4)
    assert x4.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(x4[1, :, 0, 0], [0, 255, 0])  # pure green centre
    ds = load_dataset(f"imagefolder:{root}", image_size=3)
    assert _all(ds)[0].shape == (2, 3, 3, 3)


def test_grayscale_and_rgba_become_rgb(tmp_path: Path) -> None:
    root = tmp_path / "modes"
    write_png(root / "a" / "gray.png", np.full((3, 3), 7, np.uint8))
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    write_png(root / "a" / "rgba.png", rgba)
    x, _ = load_image_folder(root)
    assert x.shape == (2, 3, 3, 3)
    assert x[0, :, 1, 1].tolist() == [7, 7, 7]
    assert x[1, :, 1, 1].tolist() == [200, 0, 0]


def test_sixteen_bit_images_are_scaled_by_their_bit_depth(tmp_path: Path) -> None:
    """A 16-bit grey PNG reads as v / 65535 (not saturated at 255 / 255), beside 8-bit ones."""
    from PIL import Image

    root = tmp_path / "deep"
    (root / "a").mkdir(parents=True)
    ramp = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369).astype(np.uint16)  # 0 … 65535
    Image.fromarray(ramp).save(root / "a" / "deep.png")
    write_png(root / "a" / "shallow.png", np.full((4, 4), 51, np.uint8))
    x, _ = load_image_folder(root)
    assert x.dtype == np.float32 and x.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(x[0, 1], ramp / 65535.0, rtol=1e-6)
    assert float((x[0] == 1.0).mean()) == 1 / 16  # only the brightest pixel is white
    np.testing.assert_allclose(x[1], 0.2, rtol=1e-6)  # 51 / 255
    ds = load_dataset(f"imagefolder:{root}")  # float images are used as they are
    np.testing.assert_allclose(_all(ds)[0].numpy(), x)


def test_errors(tmp_path: Path, flat: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset(f"imagefolder:{tmp_path / 'absent'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_dataset(f"imagefolder:{tmp_path / 'noimg'}")
    broken = tmp_path / "broken"
    (broken / "a").mkdir(parents=True)
    (broken / "a" / "x.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"x\.png.*cannot decode"):
        load_dataset(f"imagefolder:{broken}")
    with pytest.raises(DataError, match="lacks a path"):
        load_dataset("imagefolder:")
    with pytest.raises(DataError, match="lacks a path"):
        load_dataset("imagefolder")
    with pytest.raises(DataError, match="image_size"):
        load_dataset(f"imagefolder:{flat}", image_size=0)
    with pytest.raises(DataError, match="imagefolder:PATH datasets only"):
        load_dataset("digits", image_size=8)


def test_missing_pillow_says_how_to_install(flat: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_pil(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(DataError, match=r"pip install 'snnconv\[images\]'"):
        load_dataset(f"imagefolder:{flat}")
