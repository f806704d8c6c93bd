"""NIR export: structure and parameters read back with ``nir.read``, reset semantics
in metadata, refusals and substitutes, saved/run directories, the CLI pieces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

import snnconv  # noqa: E402
from models import tiny_cnn  # noqa: E402
from snnconv.cli import build_parser, main  # noqa: E402
from snnconv.config import Config, MaxPoolMode  # noqa: E402
from snnconv.errors import ConfigError, ModelLoadError, UnsupportedOpError  # noqa: E402
from snnconv.exporters.nir import NirPooling, export_nir, nir_summary, to_nir  # noqa: E402
from snnconv.ir import Conv2d, IFNeuron, Linear, Readout, ResetMode  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def calibration(shape: tuple[int, ...] = (1, 8, 8), n: int = 64) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def network() -> snnconv.SpikingNetwork:
    """tiny_cnn: conv, avg-pool, conv + batch-norm, dropout, biases everywhere."""
    return snnconv.convert(tiny_cnn(seed=3), calibration())


def path_types(graph: object) -> list[str]:
    return [t for _, t in nir_summary(graph)]


def test_round_trip_structure_and_parameters(
    network: snnconv.SpikingNetwork, tmp_path: Path
) -> None:
    path = export_nir(network, tmp_path / "net.nir")
    graph = nir.read(path)
    assert path_types(graph) == [
        "Input", "Conv2d", "IF", "AvgPool2d", "Conv2d", "IF", "Flatten", "Affine", "IF",
        "Affine", "I", "Output",
    ]  # fmt: skip
    ours = {n.name: n for n in network.graph.nodes}
    names = dict(nir_summary(graph))
    for name, node in ours.items():
        if name not in names:
            continue
        written = graph.nodes[name]
        if isinstance(node.op, Conv2d):
            assert np.array_equal(written.weight, node.op.weight.numpy())
            assert node.op.bias is not None and np.array_equal(written.bias, node.op.bias.numpy())
            assert tuple(written.stride) == node.op.stride
            assert tuple(written.padding) == node.op.padding
        elif isinstance(node.op, Linear):
            assert np.array_equal(written.weight, node.op.weight.numpy())
            assert node.op.bias is not None and np.array_equal(written.bias, node.op.bias.numpy())
        elif isinstance(node.op, IFNeuron):
            assert np.all(written.v_threshold == node.op.threshold)
            assert np.all(written.r == 1.0) and np.all(written.v_reset == 0.0)
            assert written.v_threshold.shape == tuple(node.meta["shape"])
            assert written.metadata["snnconv_reset"] == "subtract"
            assert written.metadata["snnconv_fire"] == "v >= v_threshold"
    # No batch-norm or scaling node survives: the folded weights are the ones written.
    assert not any(type(n).__name__ in ("Scale", "Threshold") for n in graph.nodes.values())
    assert graph.metadata["nir_version"] == "1.0.8"
    assert graph.metadata["readout"] == "potential"
    assert np.all(graph.nodes["readout"].r == 1.0)


def test_reset_to_zero_is_recorded(tmp_path: Path) -> None:
    net = snnconv.convert(tiny_cnn(seed=3), calibration(), Config(reset=ResetMode.ZERO))
    graph = to_nir(net)
    resets = {n.metadata["snnconv_reset"] for n in graph.nodes.values() if isinstance(n, nir.IF)}
    assert resets == {"zero"}


def test_sum_pooling_folds_the_divisor_into_the_next_layer(
    network: snnconv.SpikingNetwork,
) -> None:
    avg, summed = to_nir(network), to_nir(network, pooling=NirPooling.SUM)
    assert "SumPool2d" in path_types(summed) and "AvgPool2d" not in path_types(summed)
    pool = next(n for n, t in nir_summary(summed) if t == "SumPool2d")
    after = dict(summed.edges)[pool]
    np.testing.assert_allclose(summed.nodes[after].weight, avg.nodes[after].weight / 4, rtol=1e-6)
    np.testing.assert_array_equal(summed.nodes[after].bias, avg.nodes[after].bias)


def maxpool_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)
    )


def test_max_pool_gate_is_refused_unless_substituted() -> None:
    net = snnconv.convert(maxpool_net(), calibration())
    with pytest.raises(UnsupportedOpError, match="max-pool gate") as info:
        to_nir(net)
    assert "average-pool" in str(info.value)
    graph = to_nir(net, substitutes=["average-pool"])
    pool = next(n for n in graph.nodes.values() if isinstance(n, nir.AvgPool2d))
    assert "MaxPool2d" in pool.metadata["snnconv_substitute"]
    replaced = snnconv.convert(maxpool_net(), calibration(), Config(maxpool=MaxPoolMode.AVERAGE))
    assert "AvgPool2d" in path_types(to_nir(replaced))


def test_binary_neurons_softmax_readout_and_initial_state_are_refused() -> None:
    class SignNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 8), nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.sign(self.fc1(x.flatten(1))))

    with pytest.raises(UnsupportedOpError, match="BinaryNeuron"):
        to_nir(snnconv.convert(SignNet(), calibration()))
    softmax = snnconv.convert(tiny_cnn(), calibration(), Config(readout=Readout.SOFTMAX))
    with pytest.raises(UnsupportedOpError, match="spiking softmax"):
        to_nir(softmax)
    held = snnconv.convert(tiny_cnn(), calibration(), Config(clamp_steps=2, v_init=0.5))
    with pytest.raises(UnsupportedOpError, match="drop-initial-state"):
        to_nir(held)
    graph = to_nir(held, substitutes=["drop-initial-state"])
    assert graph.metadata["substitutes"] == "drop-initial-state"
    with pytest.raises(ConfigError, match="unknown NIR substitute"):
        to_nir(held, substitutes=["nope"])


def test_spike_readout_is_an_if_node() -> None:
    net = snnconv.convert(tiny_cnn(), calibration(), Config(readout=Readout.SPIKES))
    graph = to_nir(net)
    readout = graph.nodes["readout"]
    assert isinstance(readout, nir.IF)
    assert np.allclose(readout.v_threshold, net.graph.output_node.meta["readout_scale"])


def test_export_from_saved_and_run_directories(
    network: snnconv.SpikingNetwork, tmp_path: Path
) -> None:
    saved = snnconv.save(network, tmp_path / "saved")
    out = export_nir(saved, tmp_path / "sub" / "from_dir.nir")
    assert out.is_file()
    assert path_types(nir.read(out)) == path_types(to_nir(network))
    with pytest.raises(ModelLoadError, match="no saved network"):
        export_nir(tmp_path / "sub", tmp_path / "x.nir")


def test_write_is_atomic_and_replaces(network: snnconv.SpikingNetwork, tmp_path: Path) -> None:
    target = tmp_path / "net.nir"
    target.write_bytes(b"old")
    export_nir(network, target)
    assert target.read_bytes()[:4] == b"\x89HDF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.nir"]
    failing = snnconv.convert(maxpool_net(), calibration())
    with pytest.raises(UnsupportedOpError):
        export_nir(failing, target)
    assert target.read_bytes()[:4] == b"\x89HDF"  # the earlier file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.nir"]


def test_cli_export_nir(
    network: snnconv.SpikingNetwork, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = snnconv.save(network, tmp_path / "run")
    out = tmp_path / "cli.nir"
    assert main(["export-nir", str(saved), "--out", str(out), "--pooling", "sum"]) == 0
    assert "SumPool2d" in path_types(nir.read(out))
    assert main(["export-nir", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export-nir", str(saved), "--out", "x", "--substitute", "nope"])


def test_cli_input_layout_options() -> None:
    parser = build_parser()
    run = ["run", "m.onnx", "-T", "2", "--dataset", "digits", "--out", "o"]
    args = parser.parse_args([*run, "--input-layout", "nhwc", "--input-shape", "3,32,32"])
    assert (args.input_layout, args.input_shape) == ("nhwc", (3, 32, 32))
    assert not hasattr(parser.parse_args(run), "input_layout")  # absent: default "auto" later
    with pytest.raises(SystemExit):
        parser.parse_args([*run, "--input-shape", "3,a"])


def test_residual_and_concatenation_joins_are_refused() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 64, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            return self.fc(torch.relu(h + self.b(h)).flatten(1))

    class Branches(Residual):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8 * 64, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            return self.fc(torch.cat([h, torch.relu(self.b(h))], 1).flatten(1))

    with pytest.raises(UnsupportedOpError, match="residual"):
        to_nir(snnconv.convert(Residual(), calibration()))
    with pytest.raises(UnsupportedOpError, match="no concatenation"):
        to_nir(snnconv.convert(Branches(), calibration()))
