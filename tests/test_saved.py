"""The saved format: bit-exact round trip, and every kind of damaged directory is refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import snnconv
from models import MLP, tiny_cnn
from snnconv import InputEncoding, ModelLoadError, ResetMode
from snnconv.ir import Op
from snnconv.saved import GRAPH_FILE, TENSOR_FILE, is_saved_network
from snnconv.sim.simulator import Simulator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

CONFIGS = {
    "defaults": snnconv.Config(device="cpu"),
    "options": snnconv.Config(
        device="cpu",
        percentile=99.0,
        reset=ResetMode.ZERO,
        input_encoding=InputEncoding.POISSON,
        v_init=0.5,
        chunk=3,
        seed=11,
        threads=1,
        batch_size=7,
    ),
}


@pytest.fixture(scope="module")
def calibration() -> torch.Tensor:
    return torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def convert(
    model: torch.nn.Module, x: torch.Tensor, config: snnconv.Config
) -> snnconv.SpikingNetwork:
    info = {
        "model": "tiny",
        "calibration": {"dataset": "random", "num_samples": 16, "seed": 0},
        "extra": {"tuple": (1, 2), "nested": [{"a": None, "b": 1.5}]},
    }
    return snnconv.convert(model.eval(), x, config, info=info)


def op_fields(op: Op) -> dict[str, object]:
    return {f.name: getattr(op, f.name) for f in dataclasses.fields(op)}


def assert_identical(a: snnconv.SpikingNetwork, b: snnconv.SpikingNetwork) -> None:
    assert a.graph.output == b.graph.output
    assert len(a.graph) == len(b.graph)
    for na, nb in zip(a.graph.nodes, b.graph.nodes, strict=True):
        assert (na.name, na.inputs, type(na.op)) == (nb.name, nb.inputs, type(nb.op))
        assert na.meta == nb.meta
        assert type(nb.meta.get("shape")) is type(na.meta.get("shape"))
        fa, fb = op_fields(na.op), op_fields(nb.op)
        assert fa.keys() == fb.keys()
        for key, va in fa.items():
            vb = fb[key]
            if isinstance(va, torch.Tensor):
                assert isinstance(vb, torch.Tensor)
                assert va.dtype == vb.dtype and torch.equal(va, vb), f"{na.name}.{key}"
            else:
                assert va == vb and type(va) is type(vb), f"{na.name}.{key}"
    assert a.config == b.config
    assert a.info == b.info


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_round_trip_is_bit_exact(tmp_path: Path, calibration: torch.Tensor, config: str) -> None:
    snn = convert(tiny_cnn(), calibration, CONFIGS[config])
    out = snnconv.save(snn, tmp_path / "net")
    assert out == tmp_path / "net"
    assert sorted(p.name for p in out.iterdir()) == [GRAPH_FILE, TENSOR_FILE]  # no temp files
    assert is_saved_network(out)
    loaded = snnconv.load(out)
    assert_identical(snn, loaded)
    assert loaded.info["extra"]["tuple"] == (1, 2)
    # Simulating the loaded network gives identical results.
    y = torch.zeros(calibration.shape[0], dtype=torch.long)
    runs = []
    for net in (snn, loaded):
        c = net.config
        sim = Simulator(net.graph, device="cpu", chunk=c.chunk, input_encoding=c.input_encoding)
        runs.append(sim.run(calibration, y, 9))
    assert torch.equal(runs[0].output, runs[1].output)
    assert torch.equal(runs[0].correct_top1, runs[1].correct_top1)


def test_round_trip_without_biases(tmp_path: Path) -> None:
    model = MLP(bias=False)
    snn = convert(model, torch.rand(8, *model.in_shape), CONFIGS["defaults"])
    linears = [n.op for n in snn.graph.nodes if n.op.kind == "Linear"]
    assert linears and all(op.bias is None for op in linears)
    assert_identical(snn, snnconv.load(snnconv.save(snn, tmp_path)))


def test_save_twice_into_the_same_directory(tmp_path: Path, calibration: torch.Tensor) -> None:
    first = convert(tiny_cnn(seed=1), calibration, CONFIGS["defaults"])
    second = convert(tiny_cnn(seed=2), calibration, CONFIGS["options"])
    snnconv.save(first, tmp_path)
    snnconv.save(second, tmp_path)
    assert_identical(second, snnconv.load(tmp_path))


@pytest.fixture
def saved(tmp_path: Path, calibration: torch.Tensor) -> Path:
    return snnconv.save(convert(tiny_cnn(), calibration, CONFIGS["defaults"]), tmp_path / "net")


def edit_json(path: Path, **changes: object) -> None:
    document = json.loads((path / GRAPH_FILE).read_text())
    document.update(changes)
    (path / GRAPH_FILE).write_text(json.dumps(document))


def test_tampered_tensor_is_refused(saved: Path) -> None:
    tensors = load_file(saved / TENSOR_FILE)
    name = next(k for k in tensors if k.endswith(".weight"))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1.0  # a valid file with one changed weight
    save_file(tensors, saved / TENSOR_FILE, metadata={"format": "snnconv-network"})
    with pytest.raises(ModelLoadError, match="checksum"):
        snnconv.load(saved)


def test_flipped_byte_is_refused(saved: Path) -> None:
    data = bytearray((saved / TENSOR_FILE).read_bytes())
    data[-1] ^= 0x01
    (saved / TENSOR_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum"):
        snnconv.load(saved)


@pytest.mark.parametrize("missing", [GRAPH_FILE, TENSOR_FILE])
def test_missing_file_is_refused(saved: Path, missing: str) -> None:
    (saved / missing).unlink()
    with pytest.raises(ModelLoadError, match=missing):
        snnconv.load(saved)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="missing"):
        snnconv.load(tmp_path / "nothing here")


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_unknown_format_version_is_refused(saved: Path, version: object) -> None:
    edit_json(saved, format_version=version)
    with pytest.raises(ModelLoadError, match="format version"):
        snnconv.load(saved)


def test_other_json_is_refused(saved: Path) -> None:
    edit_json(saved, format="something-else")
    with pytest.raises(ModelLoadError, match="not an snnconv network"):
        snnconv.load(saved)
    (saved / GRAPH_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        snnconv.load(saved)


def test_malformed_graph_is_refused(saved: Path) -> None:
    document = json.loads((saved / GRAPH_FILE).read_text())
    document["graph"]["nodes"][1]["op"] = "Softmax"
    (saved / GRAPH_FILE).write_text(json.dumps(document))
    with pytest.raises(ModelLoadError, match="malformed"):
        snnconv.load(saved)
    document["graph"]["nodes"][1]["op"] = "Conv2d"
    document["graph"]["output"] = "nowhere"
    (saved / GRAPH_FILE).write_text(json.dumps(document))
    with pytest.raises(ModelLoadError, match="malformed"):
        snnconv.load(saved)
