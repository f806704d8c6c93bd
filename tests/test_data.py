"""Tests of snnconv.data: IDX parsing, dataset lookup, digits, npz files, normalisation."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from snnconv.data import (
    DATASETS,
    EmbeddedSampleWarning,
    calibration_subset,
    data_source,
    dataset_name,
    embedded,
    has_train_split,
    load_calibration,
    load_dataset,
)
from snnconv.data import idx as idx_module
from snnconv.data.idx import read_idx
from snnconv.errors import DataError, SnnconvError


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Encode an array in IDX format."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool, type_code: int = 0x08) -> Path:
    """Write an IDX file, gzip-compressed if ``gz`` (then ``.gz`` is appended)."""
    data = idx_bytes(array, type_code)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def make_idx_dataset(directory: Path, n: int = 6, *, gz: bool = True, size: int = 28) -> None:
    """Write a tiny fake MNIST-style dataset (both splits) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images, gz=gz)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels, gz=gz)


@pytest.fixture
def no_default_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Make dataset lookup independent of the machine: no env var, no default dirs."""
    monkeypatch.delenv(idx_module.ENV_VAR, raising=False)
    monkeypatch.delenv(idx_module.SYSTEM_DATA_VAR, raising=False)
    empty = tmp_path / "nowhere" / "{name}"
    monkeypatch.setattr(idx_module, "DEFAULT_SEARCH_DIRS", (str(empty),))
    return tmp_path


# --- IDX parsing -------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "images-idx3-ubyte", images, gz=gz)
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_read_idx_multibyte_big_endian(tmp_path: Path) -> None:
    values = np.array([[1, -2], [300, 70000]], dtype=np.int32)
    path = write_idx(tmp_path / "ints-idx2", values, gz=False, type_code=0x0C)
    np.testing.assert_array_equal(read_idx(path), values)


def test_read_idx_bad_magic_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataError, match=r"bad-idx3-ubyte.*magic"):
        read_idx(path)


def test_read_idx_unknown_type_code(tmp_path: Path) -> None:
    path = tmp_path / "odd-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 0x07, 1]) + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match=r"odd-idx1-ubyte.*type code"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_data_names_file(tmp_path: Path, gz: bool) -> None:
    data = idx_bytes(np.zeros((4, 5, 5), dtype=np.uint8))[:-7]
    path = tmp_path / ("short-idx3-ubyte" + (".gz" if gz else ""))
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    with pytest.raises(DataError, match=r"short-idx3-ubyte.*truncated"):
        read_idx(path)


def test_read_idx_truncated_gzip_stream_names_file(tmp_path: Path) -> None:
    full = gzip.compress(idx_bytes(np.zeros((50, 28, 28), dtype=np.uint8)))
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match=r"cut-idx3-ubyte\.gz"):
        read_idx(path)


def test_read_idx_reads_every_gzip_member_and_refuses_what_is_not_gzip(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(images)
    path = tmp_path / "members-idx3-ubyte.gz"  # as `cat a.gz b.gz` makes, zero padding between
    path.write_bytes(gzip.compress(data[:11]) + b"\0\0\0\0" + gzip.compress(data[11:]))
    assert gzip.decompress(path.read_bytes()) == data
    np.testing.assert_array_equal(read_idx(path), images)
    plain = tmp_path / "plain-idx3-ubyte.gz"  # not compressed, though named .gz
    plain.write_bytes(data)
    with pytest.raises(DataError, match=r"plain-idx3-ubyte\.gz: cannot read file"):
        read_idx(plain)


def test_read_idx_truncated_header_and_trailing_bytes(tmp_path: Path) -> None:
    short = tmp_path / "hdr-idx3-ubyte"
    short.write_bytes(bytes([0, 0, 8, 3]) + b"\x00\x00\x00\x02")
    with pytest.raises(DataError, match=r"hdr-idx3-ubyte.*truncated"):
        read_idx(short)
    long = tmp_path / "long-idx1-ubyte"
    long.write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)) + b"\x01")
    with pytest.raises(DataError, match=r"long-idx1-ubyte.*trailing"):
        read_idx(long)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="absent-idx"):
        read_idx(tmp_path / "absent-idx")


def test_data_error_is_snnconv_error() -> None:
    assert issubclass(DataError, SnnconvError)


# --- IDX datasets through load_dataset ------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_dataset_from_data_dir(no_default_dirs: Path, gz: bool) -> None:
    data_dir = no_default_dirs / "fm"
    make_idx_dataset(data_dir, n=6, gz=gz)
    ds = load_dataset("fashion-mnist", "test", data_dir=data_dir)
    x, y = ds.tensors
    assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 2, 3, 4, 5]
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    raw = read_idx(data_dir / ("t10k-images-idx3-ubyte" + (".gz" if gz else "")))
    torch.testing.assert_close(x[:, 0], torch.from_numpy(raw.astype(np.float32) / 255))
    assert len(load_dataset("mnist", "train", data_dir=data_dir, limit=4)) == 4


def test_load_idx_dataset_from_subdir_and_env(
    no_default_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = no_default_dirs / "root"
    make_idx_dataset(root / "mnist", n=3)
    assert len(load_dataset("mnist", data_dir=root)) == 3
    monkeypatch.setenv(idx_module.ENV_VAR, str(root))
    assert len(load_dataset("mnist", "train")) == 3


def test_load_idx_dataset_from_default_dir(
    no_default_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = no_default_dirs / "share" / "{name}"
    make_idx_dataset(Path(str(template).format(name="fashion-mnist")), n=2)
    monkeypatch.setattr(idx_module, "DEFAULT_SEARCH_DIRS", (str(template),))
    assert len(load_dataset("fashion-mnist")) == 2


def test_missing_dataset_lists_searched_paths(
    no_default_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = no_default_dirs / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", data_dir=empty)
    message = str(info.value)
    for searched in (empty, empty / "fashion-mnist"):
        assert f"- {searched}\n" in message + "\n"
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message and "SNNCONV_DATA" in message

    env_dir = no_default_dirs / "env"
    monkeypatch.setenv(idx_module.ENV_VAR, str(env_dir))
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist")
    for searched in (env_dir, env_dir / "fashion-mnist"):
        assert f"- {searched}\n" in str(info.value) + "\n"

    monkeypatch.delenv(idx_module.ENV_VAR)
    with pytest.raises(DataError, match="pass --data-dir") as info:
        load_dataset("mnist")
    assert f"- {no_default_dirs / 'nowhere' / 'mnist'}\n" in str(info.value) + "\n"
    assert "apt-get" not in str(info.value)


def test_count_mismatch_is_reported(no_default_dirs: Path) -> None:
    data_dir = no_default_dirs / "bad"
    make_idx_dataset(data_dir, n=5, gz=False)
    write_idx(data_dir / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8), gz=False)
    with pytest.raises(DataError, match=r"5 images.*4 labels"):
        load_dataset("mnist", data_dir=data_dir)


def test_wrong_idx_dims_is_reported(no_default_dirs: Path) -> None:
    data_dir = no_default_dirs / "dims"
    make_idx_dataset(data_dir, n=3, gz=False)
    write_idx(data_dir / "t10k-images-idx3-ubyte", np.zeros((3, 784), dtype=np.uint8), gz=False)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.*3 dimension"):
        load_dataset("mnist", data_dir=data_dir)


def test_real_fashion_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    """The full set where it is installed, else the embedded sample: real images either way."""
    monkeypatch.delenv(idx_module.ENV_VAR, raising=False)
    ds = load_dataset("fashion-mnist", "test")
    n = 2000 if ds.source == "embedded" else 10000
    x, y = ds.tensors
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y.shape == (n,) and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == ([1000] * 10 if n == 10000 else EMBEDDED_TEST_COUNTS)
    small = load_dataset("fashion-mnist", "test", limit=100)
    assert len(small) == 100
    torch.testing.assert_close(small.tensors[0], x[:100])
    torch.testing.assert_close(small.tensors[1], y[:100])


# --- the embedded sample ----------------------------------------------------------------------

#: Images per class among the first 2,000 Fashion-MNIST test images (counted once from the set).
EMBEDDED_TEST_COUNTS = [200, 203, 214, 190, 219, 195, 197, 200, 194, 188]


@pytest.fixture
def system_data_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without the data set: no SNNCONV_DATA, the system places ignored."""
    monkeypatch.delenv(idx_module.ENV_VAR, raising=False)
    monkeypatch.setenv(idx_module.SYSTEM_DATA_VAR, "none")


def test_embedded_sample_files_match_their_manifest() -> None:
    directory = embedded.embedded_dir("fashion-mnist")
    assert directory is not None
    manifest = json.loads((directory / "sample.json").read_text())
    assert sum(f.stat().st_size for f in directory.iterdir()) < 2 * 2**20
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest, name
    assert "Zalando" in (directory / "LICENSE").read_text()
    assert "MIT" in (directory / "LICENSE").read_text()
    # the training images are the default calibration draw from the full 60,000
    train = embedded.embedded_origin("fashion-mnist", "train")
    assert train.length == 60000
    assert list(train.indices) == embedded.draw_indices(60000, 1000, seed=0).tolist()
    test = embedded.embedded_origin("fashion-mnist", "test")
    assert test == embedded.SampleOrigin(tuple(range(2000)), 10000)


def test_embedded_sample_is_the_fallback(system_data_hidden: None) -> None:
    with pytest.warns(EmbeddedSampleWarning, match=r"using the embedded sample: 2,000 test"):
        test = load_dataset("fashion-mnist", "test")
    with pytest.warns(EmbeddedSampleWarning, match=r"1,000 train images.*apt-get install"):
        train = load_dataset("fashion-mnist", "train")
    with pytest.warns(EmbeddedSampleWarning, match=r"embedded sample: 7 test images"):
        assert len(load_dataset("fashion-mnist", "test", limit=7)) == 7
    assert (test.source, train.source) == ("embedded", "embedded")
    assert (len(test), len(train)) == (2000, 1000)
    assert torch.bincount(test.tensors[1]).tolist() == EMBEDDED_TEST_COUNTS
    assert data_source(test) == "embedded"
    assert data_source(torch.utils.data.DataLoader(test)) == "embedded"
    with pytest.raises(DataError, match=r"mnist \(test split\) not found"):
        load_dataset("mnist")  # only Fashion-MNIST has a sample


def test_embedded_sample_is_a_subset_of_the_installed_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the full set is installed, the sample holds exactly its images at the recorded
    indices (on a machine without it, the manifest's digests above vouch for the files)."""
    monkeypatch.delenv(idx_module.ENV_VAR, raising=False)
    full = {split: load_dataset("fashion-mnist", split) for split in ("test", "train")}
    monkeypatch.setenv(idx_module.SYSTEM_DATA_VAR, "none")
    for split, whole in full.items():
        with pytest.warns(EmbeddedSampleWarning):
            sample = load_dataset("fashion-mnist", split)
        if whole.source == "embedded":
            assert torch.equal(whole.tensors[0], sample.tensors[0])
            continue
        index = torch.tensor(embedded.embedded_origin("fashion-mnist", split).indices)
        assert torch.equal(whole.tensors[0][index], sample.tensors[0])
        assert torch.equal(whole.tensors[1][index], sample.tensors[1])


@pytest.mark.parametrize("num_samples", [1000, 500, 37, 1])
def test_calibration_draw_from_the_sample_equals_the_full_sets(
    system_data_hidden: None, num_samples: int
) -> None:
    """Any draw of up to 1,000 with seed 0 from the sample picks the images the same draw
    from all 60,000 picks, so normalization is the same with or without the full set."""
    with pytest.warns(EmbeddedSampleWarning):
        train = load_dataset("fashion-mnist", "train")
    subset = calibration_subset(train, num_samples, seed=0)
    assert subset.source == "embedded" and subset.origin is not None
    expected = embedded.draw_indices(60000, num_samples, seed=0).tolist()
    assert list(subset.origin.indices) == expected
    position = {index: i for i, index in enumerate(train.origin.indices)}
    rows = torch.tensor([position[i] for i in expected])
    assert torch.equal(subset.tensors[0], train.tensors[0][rows])
    # a draw the sample cannot hold (another seed) is a plain draw from the sample
    other = calibration_subset(train, 100, seed=1)
    assert len(other) == 100 and set(other.origin.indices) <= set(train.origin.indices)


def test_a_named_directory_without_the_data_is_an_error(
    no_default_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--data-dir or SNNCONV_DATA never fall back to another copy (installed or embedded)."""
    installed = no_default_dirs / "share" / "{name}"
    make_idx_dataset(Path(str(installed).format(name="fashion-mnist")), n=2)
    monkeypatch.setattr(idx_module, "DEFAULT_SEARCH_DIRS", (str(installed),))
    assert len(load_dataset("fashion-mnist")) == 2
    bad = no_default_dirs / "bad-dir"
    with pytest.raises(
        DataError,
        match=rf"not found in {bad} \(given by --data-dir\), which "
        "does not exist",
    ):
        load_dataset("fashion-mnist", data_dir=bad)
    bad.mkdir()
    with pytest.raises(DataError, match=r"(?s)which does not hold it.*drop --data-dir"):
        load_dataset("fashion-mnist", data_dir=bad)
    monkeypatch.setenv(idx_module.ENV_VAR, str(bad))
    with pytest.raises(DataError, match=r"given by SNNCONV_DATA"):
        load_dataset("fashion-mnist")
    with pytest.raises(DataError, match=r"given by SNNCONV_DATA"):
        load_dataset("cifar10")
    monkeypatch.delenv(idx_module.ENV_VAR)
    monkeypatch.setenv(idx_module.SYSTEM_DATA_VAR, "maybe")
    with pytest.raises(DataError, match=r"SNNCONV_SYSTEM_DATA='maybe'.*'none'"):
        load_dataset("fashion-mnist")


# --- digits ---------------------------------------------------------------------------------


def test_digits_shapes_range_and_split() -> None:
    pytest.importorskip("sklearn")
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert len(train) == 1437 and len(test) == 360
    x, y = test.tensors
    assert x.shape == (360, 1, 8, 8) and x.dtype == torch.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    again = load_dataset("digits", "test")
    assert torch.equal(again.tensors[0], x) and torch.equal(again.tensors[1], y)
    # Train and test are disjoint halves of one fixed permutation.
    from sklearn.datasets import load_digits

    full = load_digits()
    order = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(y.numpy(), full.target[order[1437:]])
    np.testing.assert_allclose(train.tensors[0][0, 0].numpy(), full.images[order[0]] / 16)


def test_digits_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from snnconv.data import digits

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    digits._load_all.cache_clear()
    monkeypatch.setattr(builtins, "__import__", fake_import)
    try:
        with pytest.raises(DataError, match="pip install scikit-learn"):
            load_dataset("digits")
    finally:
        digits._load_all.cache_clear()


# --- npz ------------------------------------------------------------------------------------


def test_npz_round_trip_uint8(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(7, 12, 12), dtype=np.uint8)
    y = np.arange(7, dtype=np.int32) % 3
    path = tmp_path / "set.npz"
    np.savez(path, x=x, y=y)
    for split in ("test", "train"):
        ds = load_dataset(f"npz:{path}", split)
        assert ds.tensors[0].shape == (7, 1, 12, 12)
        np.testing.assert_allclose(ds.tensors[0][:, 0].numpy(), x / 255, rtol=1e-6)
        assert ds.tensors[1].dtype == torch.int64 and ds.tensors[1].tolist() == y.tolist()
    assert len(load_dataset(f"npz:{path}", limit=3)) == 3
    assert not has_train_split(f"npz:{path}")


def test_npz_float_nchw_kept(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(4, 3, 5, 5)).astype(np.float64)
    path = tmp_path / "f.npz"
    np.savez_compressed(path, x=x, y=np.array([0, 1, 2, 3]))
    xs = load_dataset(f"npz:{path}").tensors[0]
    assert xs.dtype == torch.float32 and xs.shape == (4, 3, 5, 5)
    np.testing.assert_allclose(xs.numpy(), x.astype(np.float32))


def test_npz_object_arrays_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.npz"
    x = np.empty(2, dtype=object)
    x[0], x[1] = np.zeros((2, 2)), "text"
    np.savez(path, x=x, y=np.array([0, 1]))
    with pytest.raises(DataError, match="object arrays"):
        load_dataset(f"npz:{path}")


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        ({"x": np.zeros((3, 4, 4), np.uint8)}, "missing array.*y"),
        ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.zeros(2, np.int64)}, "same length"),
        ({"x": np.zeros((3, 4), np.uint8), "y": np.zeros(3, np.int64)}, "shape"),
        ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.zeros(3, np.float32)}, "integer"),
        ({"x": np.zeros((3, 4, 4), np.int64), "y": np.zeros(3, np.int64)}, "dtype int64"),
    ],
)
def test_npz_invalid_content(tmp_path: Path, arrays: dict[str, np.ndarray], pattern: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=pattern):
        load_dataset(f"npz:{path}")


def test_npz_missing_or_not_npz(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent\.npz"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match=r"junk\.npz"):
        load_dataset(f"npz:{junk}")
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DataError, match="single array"):
        load_dataset(f"npz:{single}")


def test_npz_reload_after_change(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    np.savez(path, x=np.zeros((2, 3, 3), np.uint8), y=np.array([0, 1]))
    assert len(load_dataset(f"npz:{path}")) == 2
    np.savez(path, x=np.zeros((5, 3, 3), np.uint8), y=np.arange(5))
    assert len(load_dataset(f"npz:{path}")) == 5


# --- specs, options, normalisation ----------------------------------------------------------


def test_spec_helpers() -> None:
    assert DATASETS == (
        "fashion-mnist",
        "mnist",
        "cifar10",
        "digits",
        "imagefolder:PATH",
        "npz:PATH",
    )
    assert dataset_name("Fashion-MNIST") == "fashion-mnist"
    assert dataset_name("fmnist") == "fashion-mnist"
    assert dataset_name("digits") == "digits"
    assert dataset_name("npz:/some/dir/data.npz") == "npz:data.npz"
    assert has_train_split("mnist") and has_train_split("digits")
    assert not has_train_split("npz:x.npz")


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("imagenet", "unknown dataset.*fashion-mnist, mnist, cifar10, digits, imagefolder:PATH"),
        ("cifar100", "unknown dataset"),
        ("imagefolder", "lacks a path"),
        ("imagefolder:", "lacks a path"),
        ("npz:", "lacks a path"),
        ("", "invalid dataset spec"),
    ],
)
def test_bad_specs(spec: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        load_dataset(spec)
    with pytest.raises(DataError, match=pattern):
        has_train_split(spec)


def test_bad_split_and_limit() -> None:
    with pytest.raises(DataError, match="split"):
        load_dataset("digits", "val")
    for limit in (0, -3):
        with pytest.raises(DataError, match="limit"):
            load_dataset("digits", limit=limit)


def test_mean_std(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, size=(4, 2, 3, 3), dtype=np.uint8)
    path = tmp_path / "two.npz"
    np.savez(path, x=x, y=np.arange(4))
    spec = f"npz:{path}"
    out = load_dataset(spec, mean=[0.5, 0.25], std=[0.5, 2.0]).tensors[0].numpy()
    scaled = x.astype(np.float32) / 255
    np.testing.assert_allclose(out[:, 0], (scaled[:, 0] - 0.5) / 0.5, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], (scaled[:, 1] - 0.25) / 2.0, rtol=1e-5, atol=1e-6)
    single = load_dataset(spec, mean=[0.1], std=[0.2]).tensors[0].numpy()
    np.testing.assert_allclose(single, (scaled - 0.1) / 0.2, rtol=1e-5, atol=1e-5)
    with pytest.raises(DataError, match="std"):
        load_dataset(spec, std=[0.0])
    with pytest.raises(DataError, match="std"):
        load_dataset(spec, std=[1.0, -1.0])
    with pytest.raises(DataError, match="3 values"):
        load_dataset(spec, mean=[0.1, 0.2, 0.3])


def test_calibration_subset() -> None:
    ds = TensorDataset(torch.arange(100).float().unsqueeze(1), torch.arange(100))
    a = calibration_subset(ds, 10, seed=3)
    b = calibration_subset(ds, 10, seed=3)
    c = calibration_subset(ds, 10, seed=4)
    labels = a.tensors[1]
    assert len(a) == 10 and torch.equal(labels, b.tensors[1])
    assert not torch.equal(labels, c.tensors[1])
    assert labels.unique().numel() == 10
    assert torch.equal(labels, labels.sort().values)
    expected = torch.randperm(100, generator=torch.Generator().manual_seed(3))[:10].sort().values
    assert torch.equal(labels, expected)
    assert torch.equal(a.tensors[0][:, 0].long(), labels)
    assert len(calibration_subset(ds, 100)) == 100
    assert torch.equal(calibration_subset(ds, 500).tensors[1], torch.arange(100))
    with pytest.raises(DataError, match="num_samples"):
        calibration_subset(ds, 0)


def test_calibration_subset_generic_dataset() -> None:
    class Pairs(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 20

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return torch.full((1, 2, 2), float(i)), i

    sub = calibration_subset(Pairs(), 5, seed=0)
    assert sub.tensors[0].shape == (5, 1, 2, 2)
    assert torch.equal(sub.tensors[0][:, 0, 0, 0].long(), sub.tensors[1])


@pytest.mark.parametrize(
    ("spec", "samples", "seed", "mean", "std"),
    [
        ("fashion-mnist", 1000, 0, None, None),
        ("fashion-mnist", 300, 5, [0.3], [0.5]),
        ("digits", 100, 1, None, None),
        ("digits", 5000, 0, None, None),  # more than the split holds: all of it
    ],
)
def test_load_calibration_draws_what_calibration_subset_draws(
    spec: str, samples: int, seed: int, mean: list | None, std: list | None
) -> None:
    """The fast path scales only the drawn images; the subset is the same, bit for bit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmbeddedSampleWarning)
        full = load_dataset(spec, "train", mean=mean, std=std)
        drawn, count = load_calibration(spec, "train", samples, seed, mean=mean, std=std)
    expected = calibration_subset(full, samples, seed=seed)
    assert count == len(full)
    assert torch.equal(drawn.tensors[0], expected.tensors[0])
    assert torch.equal(drawn.tensors[1], expected.tensors[1])
    assert drawn.source == expected.source == full.source


def test_load_calibration_from_the_embedded_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the embedded sample the fast path draws what the full set would give."""
    monkeypatch.setenv("SNNCONV_SYSTEM_DATA", "none")
    monkeypatch.delenv("SNNCONV_DATA", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmbeddedSampleWarning)
        full = load_dataset("fashion-mnist", "train")
        drawn, count = load_calibration("fashion-mnist", "train", 500, 0)
    assert full.source == drawn.source == "embedded" and count == 1000
    expected = calibration_subset(full, 500, seed=0)
    assert torch.equal(drawn.tensors[0], expected.tensors[0])
    assert drawn.origin is not None and expected.origin is not None
    assert list(drawn.origin.indices) == list(expected.origin.indices)


def test_prefetched_idx_files_are_read_once_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``prefetch_idx`` reads what a run will load on another thread; ``read_idx`` then
    returns that array (waiting for the thread, never reading twice); what cannot be
    found is left for the loading to report."""
    directory = tmp_path / "fmnist"
    make_idx_dataset(directory, n=9)
    reads: list[int] = []
    real_gunzip = idx_module._gunzip
    monkeypatch.setattr(idx_module, "_gunzip", lambda data: reads.append(1) or real_gunzip(data))
    idx_module.clear_cache()
    wanted = [("fashion-mnist", "train"), ("Fashion-MNIST", "test"), ("digits", "train")]
    thread = idx_module.prefetch_idx(wanted, directory)
    assert thread is not None
    x, y = idx_module.load_idx_split("fashion-mnist", "test", directory)  # may wait for it
    thread.join()
    assert len(reads) == 4  # two files per split, each once
    idx_module.load_idx_split("fashion-mnist", "train", directory)
    assert len(reads) == 4
    assert x.shape == (9, 1, 28, 28) and y.tolist() == [i % 10 for i in range(9)]
    assert idx_module.prefetch_idx([("fashion-mnist", "train")], tmp_path / "missing") is None
    assert idx_module.prefetch_idx([("cifar10", "train")], directory) is None
    idx_module.clear_cache()


def test_the_idx_reader_imports_no_torch() -> None:
    """The command line starts reading the data before torch is imported."""
    import subprocess
    import sys

    code = "import sys, snnconv.data.idx; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
