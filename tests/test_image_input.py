"""ImageNet-style input: image trees and the validation layout with a labels file, decoded
lazily (memory does not grow with the number of images), end to end on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from snnconv.cli import main
from snnconv.data import load_dataset
from snnconv.data.folders import ImageFiles, read_labels_file
from snnconv.errors import DataError

Image = pytest.importorskip(
    "PIL.Image", reason="Pillow is not installed (pip install 'snnconv[images]')"
)

ROOT = Path(__file__).resolve().parents[1]
WNIDS = ("n01440764", "n01443537", "n01484850")


def _jpeg(path: Path, label: int, index: int, size: tuple[int, int] = (40, 36)) -> None:
    """A noisy image whose colour says its class."""
    rng = np.random.default_rng(1000 * label + index)
    base = np.zeros(3)
    base[label % 3] = 180
    pixels = np.clip(base + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tree/{train,val}/<wnid>/*.JPEG`` and the same validation images flat in ``flat/``
    with labels files in three forms (index CSV, ``filename wnid``, LOC_val_solution)."""
    root = tmp_path_factory.mktemp("imagenet")
    index_lines, wnid_lines, loc_lines = [], [], ["ImageId,PredictionString"]
    n = 0
    for label, wnid in enumerate(WNIDS):
        for i in range(4):
            _jpeg(root / "tree" / "train" / wnid / f"train_{label}_{i}.JPEG", label, 100 + i)
        for i in range(5):
            n += 1
            name = f"ILSVRC2012_val_{n:08d}"
            _jpeg(root / "tree" / "val" / wnid / f"{name}.JPEG", label, i)
            _jpeg(root / "flat" / f"{name}.JPEG", label, i)
            index_lines.append(f"{name}.JPEG,{label}")
            wnid_lines.append(f"{name}.JPEG {wnid}")
            loc_lines.append(f"{name},{wnid} 1 2 30 30 {wnid} 3 4 20 20")
    (root / "labels.csv").write_text("\n".join(index_lines) + "\n")
    (root / "labels.txt").write_text("\n".join(wnid_lines) + "\n")
    (root / "LOC_val_solution.csv").write_text("\n".join(loc_lines) + "\n")
    return root


def test_labels_files_in_every_accepted_form(imagenet: Path) -> None:
    expected = [
        (imagenet / "flat" / f"ILSVRC2012_val_{n:08d}.JPEG", (n - 1) // 5) for n in range(1, 16)
    ]
    for name in ("labels.csv", "labels.txt", "LOC_val_solution.csv"):
        assert read_labels_file(imagenet / "flat", imagenet / name) == expected, name


def test_bad_labels_files_name_the_line(imagenet: Path, tmp_path: Path) -> None:
    first = "ILSVRC2012_val_00000001.JPEG,0\n"
    cases = {
        "missing.csv": (
            first + "not_there.JPEG,1\n",
            r"line 2: image 'not_there.JPEG' is not in",
        ),
        "bad.csv": (
            first + "ILSVRC2012_val_00000002.JPEG,cat\n",
            r"line 2: expected 'filename,class_index'",
        ),
        "mixed.csv": (
            first + "ILSVRC2012_val_00000002.JPEG n01440764\n",
            "mixes class indices and wnids",
        ),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=message):
            read_labels_file(imagenet / "flat", tmp_path / name)


def test_images_are_decoded_when_read(imagenet: Path) -> None:
    data = load_dataset(
        f"imagefolder:{imagenet / 'flat'}", labels=imagenet / "labels.txt", resize=20,
        image_size=16, mean=[0.5], std=[0.25],
    )  # fmt: skip
    assert isinstance(data, ImageFiles) and len(data) == 15
    assert not hasattr(data, "tensors")  # nothing but the file list is held
    x, y = data[7]
    assert x.shape == (3, 16, 16) and int(y) == 1
    assert data.targets.tolist() == [n // 5 for n in range(15)]
    with pytest.raises(DataError, match="labels applies to imagefolder:PATH datasets only"):
        load_dataset("digits", labels=imagenet / "labels.txt")
    with pytest.raises(DataError, match="mean has 2 values but the data has 3 channel"):
        load_dataset(f"imagefolder:{imagenet / 'tree'}", image_size=16, mean=[0.5, 0.5])


def _argv(dataset: str, out: Path, *extra: str) -> list[str]:
    return [
        "run", "tests.models:tiny_rgb_cnn", "--random-weights", "--dataset", dataset,
        "--resize", "20", "--crop", "16", "--mean", "0.45", "--std", "0.25",
        "--device", "cpu", "--batch-size", "4", "-T", "6", "--no-report", "--out", str(out),
        *extra,
    ]  # fmt: skip


def test_a_tree_and_the_validation_layout_give_the_same_run(imagenet: Path, tmp_path: Path) -> None:
    tree, flat = tmp_path / "tree", tmp_path / "flat"
    assert main(_argv(f"imagefolder:{imagenet / 'tree'}", tree, "--workers", "2")) == 0
    calibration = f"imagefolder:{imagenet / 'tree'}"
    argv = _argv(f"imagefolder:{imagenet / 'flat'}", flat, "--calibration", calibration)
    assert main([*argv, "--labels", str(imagenet / "LOC_val_solution.csv")]) == 0
    a = json.loads((tree / "results.json").read_text())
    b = json.loads((flat / "results.json").read_text())
    assert a["num_samples"] == b["num_samples"] == 15
    assert a["snn"]["top1"] == b["snn"]["top1"] and a["snn"]["top5"] == b["snn"]["top5"]
    assert a["ann"] == b["ann"]
    xa, xb = load_file(tree / "arrays.safetensors"), load_file(flat / "arrays.safetensors")
    assert xa["labels"].tolist() == [n // 5 for n in range(15)]
    assert xa["labels"].tolist() == xb["labels"].tolist()
    assert xa["predictions"].tolist() == xb["predictions"].tolist()


def _rss() -> float:
    """This process's resident memory now, in bytes (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux)")
def test_memory_does_not_grow_with_the_number_of_images(tmp_path: Path) -> None:
    """Reading 100 or 900 images of 96×96 for an evaluation (batch after batch, as a
    rank reads its shard) takes the same memory; 900 held as float32 take 100 MB."""
    from snnconv.evaluation import indexed_batches

    growth = {}
    for count in (100, 900, 100, 900):  # the first two warm the allocator up
        folder = tmp_path / f"n{count}"
        if not folder.exists():
            for i in range(count):
                _jpeg(folder / WNIDS[i % 3] / f"{i:04d}.JPEG", i % 3, i, size=(100, 100))
        before = peak = _rss()
        data = load_dataset(f"imagefolder:{folder}", image_size=96)
        for _, x, _ in indexed_batches(data, 50):
            assert x.shape == (min(50, x.shape[0]), 3, 96, 96)
            peak = max(peak, _rss())
        growth[count] = peak - before
    assert growth[900] - growth[100] < 15e6, growth
