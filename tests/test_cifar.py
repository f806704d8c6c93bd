"""Tests of snnconv.data.cifar: the restricted unpickler, directory and archive lookup."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from snnconv.data import cifar as cifar_module
from snnconv.data import dataset_name, has_train_split, load_dataset
from snnconv.data import idx as idx_module
from snnconv.data.cifar import ALLOWED_GLOBALS, find_cifar10, load_cifar10_split, read_batch
from snnconv.errors import DataError

TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]


def batch_bytes(n: int, seed: int, *, protocol: int = 2) -> tuple[bytes, np.ndarray, list[int]]:
    """A fake CIFAR-10 batch: dict of bytes keys, uint8 data [n, 3072] and a label list."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    batch = {
        b"batch_label": b"fake batch",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    return pickle.dumps(batch, protocol=protocol), data, labels


def py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled as Python 2's cPickle (protocol 2) wrote the real CIFAR-10 files.

    Python 2 strings are BINSTRING opcodes (bytes under ``encoding="bytes"``)
    and the array is rebuilt by ``numpy.core.multiarray._reconstruct``.
    """

    def string(b: bytes) -> bytes:
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b

    def small(i: int) -> bytes:
        return b"K" + bytes([i]) if i < 256 else b"M" + struct.pack("<H", i)

    n, columns = data.shape
    out = b"\x80\x02}(" + string(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
    out += small(0) + b"\x85" + string(b"b") + b"\x87R"
    out += b"(" + small(1) + small(n) + small(columns) + b"\x86"
    out += b"cnumpy\ndtype\n" + string(b"u1") + small(0) + small(1) + b"\x87R"
    out += b"(" + small(3) + string(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff"
    out += small(0) + b"tb"
    out += b"\x89" + string(data.tobytes()) + b"tb"
    out += string(b"labels") + b"](" + b"".join(small(v) for v in labels) + b"e"
    return out + b"u."


def write_batches(directory: Path, n: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write the six batch files into ``directory``; return their contents."""
    directory.mkdir(parents=True, exist_ok=True)
    contents = {}
    for seed, name in enumerate([*TRAIN_FILES, "test_batch"]):
        raw, data, labels = batch_bytes(n, seed)
        (directory / name).write_bytes(raw)
        contents[name] = (data, labels)
    return contents


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No env var, no machine-wide search dirs, no cached splits from other tests."""
    monkeypatch.delenv(idx_module.ENV_VAR, raising=False)
    monkeypatch.delenv(idx_module.SYSTEM_DATA_VAR, raising=False)
    monkeypatch.setattr(idx_module, "DEFAULT_SEARCH_DIRS", (str(tmp_path / "nowhere" / "{name}"),))
    cifar_module.clear_cache()


def test_read_batch_layout() -> None:
    raw, data, labels = batch_bytes(3, 0)
    images, out_labels = read_batch(raw, "mem")
    assert images.shape == (3, 3, 32, 32) and images.dtype == np.uint8
    # 1,024 red values, then green, then blue, each a row-major 32x32 image.
    np.testing.assert_array_equal(images[1, 2, 0, :], data[1, 2048 : 2048 + 32])
    np.testing.assert_array_equal(images[2, 0, 31, 31], data[2, 1023])
    assert out_labels.dtype == np.int64 and out_labels.tolist() == labels


@pytest.mark.filterwarnings("error")
def test_read_batch_python2_format() -> None:
    data = np.random.default_rng(0).integers(0, 256, size=(2, 3072), dtype=np.uint8)
    images, labels = read_batch(py2_batch(data, [3, 7]), "py2")
    np.testing.assert_array_equal(images.reshape(2, -1), data)
    assert labels.tolist() == [3, 7]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_read_batch_any_protocol(protocol: int) -> None:
    raw, data, _ = batch_bytes(2, 1, protocol=protocol)
    images, _ = read_batch(raw, "mem")
    np.testing.assert_array_equal(images.reshape(2, -1), data)


def test_directory_and_subfolder(tmp_path: Path) -> None:
    contents = write_batches(tmp_path / "data" / "cifar-10-batches-py")
    x, y = load_cifar10_split("train", tmp_path / "data")
    assert x.shape == (20, 3, 32, 32) and y.shape == (20,)
    expected = np.concatenate([contents[name][0] for name in TRAIN_FILES])
    np.testing.assert_array_equal(x.reshape(20, -1), expected)
    assert y.tolist() == [label for name in TRAIN_FILES for label in contents[name][1]]
    assert not x.flags.writeable
    # The batch directory itself works as data_dir too.
    x_test, y_test = load_cifar10_split("test", tmp_path / "data" / "cifar-10-batches-py")
    np.testing.assert_array_equal(x_test.reshape(4, -1), contents["test_batch"][0])
    assert y_test.tolist() == contents["test_batch"][1]


def write_archive(path: Path, source: Path) -> Path:
    """Pack ``source`` as ``cifar-10-batches-py/`` into a .tar.gz at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    return path


def test_archive_read_without_extracting(tmp_path: Path) -> None:
    contents = write_batches(tmp_path / "src")
    archive = write_archive(tmp_path / "dl" / "cifar-10-python.tar.gz", tmp_path / "src")
    before = sorted(os.listdir(archive.parent))
    x, y = load_cifar10_split("test", tmp_path / "dl")
    np.testing.assert_array_equal(x.reshape(4, -1), contents["test_batch"][0])
    assert y.tolist() == contents["test_batch"][1]
    assert sorted(os.listdir(archive.parent)) == before  # nothing extracted
    # data_dir may name the archive itself.
    x_train, _ = load_cifar10_split("train", archive)
    assert x_train.shape == (20, 3, 32, 32)


def test_env_var_and_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_batches(tmp_path / "env" / "cifar10")
    monkeypatch.setenv(idx_module.ENV_VAR, str(tmp_path / "env"))
    assert find_cifar10("test") == tmp_path / "env" / "cifar10"


def test_registry(tmp_path: Path) -> None:
    contents = write_batches(tmp_path / "c")
    ds = load_dataset("cifar10", "test", data_dir=tmp_path / "c", limit=3)
    x, y = ds.tensors
    assert x.dtype == torch.float32 and x.shape == (3, 3, 32, 32)
    expected = contents["test_batch"][0][:3].reshape(3, 3, 32, 32) / np.float32(255)
    np.testing.assert_allclose(x.numpy(), expected)
    assert y.tolist() == contents["test_batch"][1][:3]
    assert len(load_dataset("CIFAR-10", "train", data_dir=tmp_path / "c")) == 20
    assert dataset_name("cifar-10") == "cifar10" and has_train_split("cifar10")
    normalised = load_dataset("cifar10", data_dir=tmp_path / "c", mean=[0.5] * 3, std=[0.5] * 3)
    assert float(normalised.tensors[0].min()) >= -1.0


def test_missing_lists_places_and_how_to_get(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "train", data_dir=tmp_path / "empty")
    message = str(info.value)
    assert str(tmp_path / "empty") in message
    assert "cifar-10-python.tar.gz" in message and "--data-dir" in message


class _Exploit:
    """Pickles to a call of os.system that would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    directory = tmp_path / "evil"
    write_batches(directory)
    payload = {b"data": _Exploit(marker), b"labels": [0]}
    (directory / "test_batch").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataError, match=r"test_batch.*refused.*(posix|os|nt)\.system"):
        load_dataset("cifar10", "test", data_dir=directory)
    assert not marker.exists()


def test_malicious_pickle_in_archive(tmp_path: Path) -> None:
    write_batches(tmp_path / "src")
    (tmp_path / "src" / "test_batch").write_bytes(
        pickle.dumps({b"data": _Exploit(tmp_path / "pwned")}, protocol=4)
    )
    archive = write_archive(tmp_path / "a" / "cifar-10-python.tar.gz", tmp_path / "src")
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz:test_batch.*refused"):
        load_cifar10_split("test", archive)
    assert not (tmp_path / "pwned").exists()


def test_refuses_other_globals() -> None:
    raw = pickle.dumps({b"data": io.BytesIO(b"x")}, protocol=2)
    with pytest.raises(DataError, match=r"refused.*_io\.BytesIO"):
        read_batch(raw, "mem")
    assert ("numpy", "ndarray") in ALLOWED_GLOBALS
    assert all(module.split(".")[0] in ("numpy", "_codecs") for module, _ in ALLOWED_GLOBALS)


@pytest.mark.parametrize(
    ("batch", "pattern"),
    [
        ([1, 2], "expected a dict"),
        ({b"labels": [0]}, "lacks b'data'"),
        ({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, r"uint8 array \[N, 3072\]"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 integers"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, r"0\.\.9"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [3]}, "CIFAR-100"),
    ],
)
def test_malformed_batches(batch: object, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        read_batch(pickle.dumps(batch, protocol=2), "mem")


def test_damaged_files(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    write_batches(directory)
    raw = (directory / "test_batch").read_bytes()
    (directory / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"test_batch.*cannot unpickle"):
        load_cifar10_split("test", directory)
    bad_archive = tmp_path / "b" / "cifar-10-python.tar.gz"
    bad_archive.parent.mkdir()
    bad_archive.write_bytes(b"\x1f\x8b" + b"\x00" * 50)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz.*cannot read the archive"):
        load_cifar10_split("test", bad_archive.parent)
