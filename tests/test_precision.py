"""Reduced-precision simulation: exact where every value is representable, float32 kept
where it matters, and the option wired through the config and the command line."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import snnconv
from models import tiny_cnn
from snnconv import ConfigError
from snnconv.cli import build_parser
from snnconv.config import Precision
from snnconv.ir import Conv2d, Graph, Linear
from snnconv.sim.simulator import Simulator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

REDUCED = [Precision.BFLOAT16, Precision.FLOAT16]


@pytest.fixture(scope="module")
def network() -> tuple[snnconv.SpikingNetwork, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = tiny_cnn(classes=10).eval()
    x = torch.rand(32, 1, 8, 8)
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu", percentile=99.0))
    with torch.no_grad():
        y = model(x).argmax(1)
    return snn, x, y


def on_grid(graph: Graph, static: set[str]) -> Graph:
    """The time-varying conv/linear layers with weights in {−1/16, 0, 1/16} and biases
    on a 2⁻⁵ grid in [−1/2, 1/2], so that every weight and current is exact in
    bfloat16's 8-bit significand (and float16's 11).

    The tiny CNN's lowered layers are its second conv, whose 36 inputs are 2×2
    averages of spikes (a 1/4 grid in [0, 1]): currents on a 2⁻⁶ grid with
    |z| ≤ 36/16 + 1/2 < 4, i.e. fewer than 256 grid steps; and the hidden Linear,
    whose 96 inputs are spikes: currents on a 2⁻⁵ grid with |z| ≤ 96/16 + 1/2 < 8,
    again fewer than 256 steps. (The output Linear stays float32.)
    """
    nodes = []
    for n in graph.nodes:
        if n.name not in static and isinstance(n.op, (Conv2d, Linear)):
            w = n.op.weight
            w = torch.sign(w) * (w.abs() > w.abs().median()) / 16
            b = None if n.op.bias is None else (n.op.bias * 32).round().clamp(-16, 16) / 32
            n = dataclasses.replace(n, op=dataclasses.replace(n.op, weight=w, bias=b))
        nodes.append(n)
    return graph.replace_nodes(nodes)


@pytest.mark.parametrize("precision", REDUCED, ids=lambda p: p.value)
def test_exact_when_every_weight_and_current_is_representable(network, precision) -> None:
    snn, x, y = network
    static = Simulator(snn.graph).static
    graph = on_grid(snn.graph, static)
    exact = Simulator(graph, chunk=3).run(x, y, 24)
    reduced = Simulator(graph, chunk=3, precision=precision).run(x, y, 24)
    assert exact.spikes.keys() == reduced.spikes.keys()
    for name, counts in exact.spikes.items():
        assert counts.sum() > 0, f"{name} is silent: the comparison would be empty"
        assert torch.equal(reduced.spikes[name], counts), name
    assert torch.equal(reduced.correct_top1, exact.correct_top1)
    assert torch.equal(reduced.output, exact.output)


@pytest.mark.parametrize("precision", REDUCED, ids=lambda p: p.value)
def test_rounded_weights_change_spike_counts_little(network, precision) -> None:
    """With the converted weights (not representable), counts move by well under 1 %."""
    snn, x, y = network
    exact = Simulator(snn.graph).run(x, y, 64)
    reduced = Simulator(snn.graph, precision=precision).run(x, y, 64)
    for name, counts in exact.spikes.items():
        total, other = float(counts.sum()), float(reduced.spikes[name].sum())
        assert abs(other - total) <= 0.01 * total, (name, total, other)
    assert abs(int(reduced.correct_top1[-1]) - int(exact.correct_top1[-1])) <= 1


def test_readout_and_static_layers_stay_float32(network) -> None:
    snn, _, _ = network
    sim = Simulator(snn.graph, precision="bfloat16")
    weighted = {n.name for n in sim.graph.nodes if isinstance(n.op, (Conv2d, Linear))} - sim.static
    # Every time-varying layer is lowered except the readout layer, which runs in float32.
    assert set(sim.reduced) == weighted - {snn.graph.output}
    assert {op.weight.dtype for op in sim.reduced.values()} == {torch.bfloat16}
    assert not sim.static & set(sim.reduced)  # the analog first layer is not lowered
    assert Simulator(snn.graph).reduced == {}  # float32 runs every layer as it is
    # The graph (also the ANN the evaluation compares with) keeps float32 weights.
    for node in sim.graph.nodes:
        if isinstance(node.op, (Conv2d, Linear)):
            assert node.op.weight.dtype == torch.float32


def test_precision_option_is_validated_and_round_trips() -> None:
    config = snnconv.Config(precision="bfloat16")
    assert config.precision is Precision.BFLOAT16
    assert config.precision.dtype is torch.bfloat16
    assert snnconv.Config.from_dict(config.to_dict()) == config
    assert "precision" in snnconv.Config.SIMULATION_OPTIONS
    with pytest.raises(ConfigError, match="precision must be one of"):
        snnconv.Config(precision="int8")
    with pytest.raises(ConfigError, match="precision must be one of"):
        Simulator(snnconv.convert(tiny_cnn(), torch.rand(4, 1, 8, 8)).graph, precision="fp8")


def test_command_line_offers_every_precision() -> None:
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["evaluate"]  # type: ignore[union-attr]
    choices = next(a.choices for a in run._actions if a.dest == "precision")
    assert list(choices) == [p.value for p in Precision]  # derived from the enum
    args = parser.parse_args(
        [
            "evaluate",
            "net/",
            "-T",
            "8",
            "--dataset",
            "digits",
            "--out",
            "o/",
            "--precision",
            "bfloat16",
        ]
    )
    assert args.precision == "bfloat16"
