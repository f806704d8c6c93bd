"""Operation counts on tiny networks whose MACs and SOPs are worked out by hand.

Every graph here feeds a spiking layer ``s`` straight from the analog input,
so with constant inputs in {0, 1/4, 1/2, 1} and reset by subtraction from
V(0) = 0 its spike trains are known exactly: x = 1 spikes at every step,
x = 1/2 at steps 2, 4, …, x = 1/4 at steps 4, 8, …, x = 0 never.
"""

from __future__ import annotations

import pytest
import torch

from snnconv.ir import (
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Graph,
    IFNeuron,
    Input,
    InputEncoding,
    Linear,
    MaxPool2d,
    Node,
    Reshape,
    Scale,
)
from snnconv.metrics.operations import count_operations
from snnconv.metrics.tradeoff import EnergyModel, milestones
from snnconv.passes import infer_shapes
from snnconv.sim.simulator import Simulator


def _graph(nodes: list[Node]) -> Graph:
    return infer_shapes(Graph(nodes, output=nodes[-1].name))


def _sops(graph: Graph, x: torch.Tensor, steps: int) -> dict[str, list[float]]:
    """SOPs per step of each source, simulated (batch of one)."""
    counts = count_operations(graph)
    sim = Simulator(graph, fan_out={s.name: s.fan_out for s in counts.sources})
    res = sim.run(x[None], torch.zeros(1, dtype=torch.long), steps)
    return {name: c.tolist() for name, c in res.sops.items()}


def test_conv_with_padding_and_stride_2() -> None:
    # s: 1×5×5 spiking layer → conv 3×3, stride 2, padding 1, 1 → 2 channels → 2×3×3.
    # Output row o reads input rows 2o−1 … 2o+1: o = 0 → {0, 1} (row −1 is padding),
    # o = 1 → {1, 2, 3}, o = 2 → {3, 4}. So input row r feeds 1, 2, 1, 2, 1 output rows
    # (r = 0 … 4); columns alike; fan-out = rows × cols × 2 channels.
    per_axis = torch.tensor([1.0, 2.0, 1.0, 2.0, 1.0])
    expected = 2 * per_axis[:, None] * per_axis[None, :]
    conv = Conv2d(torch.zeros(2, 1, 3, 3), None, stride=2, padding=1)
    g = _graph(
        [
            Node("x", Input((1, 5, 5))),
            Node("s", IFNeuron(), ("x",)),
            Node("c", conv, ("s",)),
            Node("t", IFNeuron(), ("c",)),
            Node("flat", Reshape((18,)), ("t",)),
            Node("fc", Linear(torch.zeros(3, 18)), ("flat",)),
        ]
    )
    counts = count_operations(g)
    s, t = counts.sources
    assert torch.equal(s.fan_out, expected[None])
    # Σ fan-out = 2 channels × 7 × 7 non-padding taps = 98; MACs count padding: 18 × 9 = 162.
    assert float(s.fan_out.sum()) == 98
    assert torch.equal(t.fan_out, torch.full((2, 3, 3), 3.0))  # each of 18 neurons → 3 outputs
    assert counts.ann_macs == {"c": 2 * 9 * 9, "fc": 18 * 3}
    assert counts.input_macs == {}  # the input drives s directly: no dense input pass
    # Spikes: x(0,0) = 1 (fan-out 2), x(1,1) = 1/2 (fan-out 8), x(2,3) = 1/4 (fan-out 4).
    x = torch.zeros(1, 5, 5)
    x[0, 0, 0], x[0, 1, 1], x[0, 2, 3] = 1.0, 0.5, 0.25
    sops = _sops(g, x, 4)
    assert sops["s"] == [2.0, 2.0 + 8.0, 2.0, 2.0 + 8.0 + 4.0]
    assert sops["t"] == [0.0] * 4  # zero weights: t never spikes


def test_linear_layer_and_neuron_updates() -> None:
    # s: 4 neurons → linear 4 → 3 (the output): every neuron has fan-out 3.
    # x = [1, 1/2, 0, 1/4]: spikes at t = 1..4: {0}, {0, 1}, {0}, {0, 1, 3} → 1, 2, 1, 3
    # spikes → 3, 6, 3, 9 SOPs; cumulative 3, 9, 12, 21.
    g = _graph(
        [
            Node("x", Input((4,))),
            Node("s", IFNeuron(), ("x",)),
            Node("fc", Linear(torch.ones(3, 4), torch.zeros(3)), ("s",)),
        ]
    )
    counts = count_operations(g)
    (s,) = counts.sources
    assert torch.equal(s.fan_out, torch.full((4,), 3.0))
    assert counts.ann_macs == {"fc": 12}
    assert _sops(g, torch.tensor([1.0, 0.5, 0.0, 0.25]), 4)["s"] == [3.0, 6.0, 3.0, 9.0]
    # per step: 4 membrane updates, 3 bias adds (fc has a bias), 3 readout accumulations
    assert counts.neuron_updates(4) == {"membrane": 16, "bias": 12, "readout": 12}


def test_average_pool_then_linear() -> None:
    # s: 1×4×4 → avg-pool 2×2 (stride 2) → 2×2 → flatten → linear 4 → 2. Each input lies in
    # exactly one window, which feeds both outputs: fan-out 2 everywhere.
    # Pooling: 4 outputs × 4 window elements = 16 other operations; MACs: 4 × 2 = 8.
    g = _graph(
        [
            Node("x", Input((1, 4, 4))),
            Node("s", IFNeuron(), ("x",)),
            Node("pool", AvgPool2d((2, 2), (2, 2)), ("s",)),
            Node("flat", Reshape((4,)), ("pool",)),
            Node("fc", Linear(torch.ones(2, 4)), ("flat",)),
        ]
    )
    counts = count_operations(g)
    assert torch.equal(counts.sources[0].fan_out, torch.full((1, 4, 4), 2.0))
    assert counts.ann_macs == {"fc": 8}
    assert counts.ann_other == {"pool": 16}
    x = torch.zeros(1, 4, 4)
    x[0, 3, 3] = 1.0  # one spike per step, fan-out 2
    assert _sops(g, x, 3)["s"] == [2.0, 2.0, 2.0]


def test_overlapping_pool_counts_one_synapse_per_window() -> None:
    # 3×3 → avg-pool 2×2, stride 1 → 2×2 → linear 4 → 1. The centre lies in all four
    # windows (4 paths to the single output), edges in two, corners in one.
    g = _graph(
        [
            Node("x", Input((1, 3, 3))),
            Node("s", IFNeuron(), ("x",)),
            Node("pool", AvgPool2d((2, 2), (1, 1)), ("s",)),
            Node("flat", Reshape((4,)), ("pool",)),
            Node("fc", Linear(torch.ones(1, 4)), ("flat",)),
        ]
    )
    fan_out = count_operations(g).sources[0].fan_out
    assert fan_out.tolist() == [[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]


def test_max_pool_gate_is_its_own_source() -> None:
    # s: 1×2×2 → max-pool gate 2×2 → flatten (1) → linear 1 → 3. The gate's output spikes
    # (count rule: as many as its busiest input) reach 3 targets; s's spikes stop at the
    # gate. x = [1, 1/2, 1/4, 0]: the busiest input spikes every step → 3 SOPs per step.
    g = _graph(
        [
            Node("x", Input((1, 2, 2))),
            Node("s", IFNeuron(), ("x",)),
            Node("gate", MaxPool2d((2, 2), (2, 2)), ("s",)),
            Node("flat", Reshape((1,)), ("gate",)),
            Node("fc", Linear(torch.ones(3, 1)), ("flat",)),
        ]
    )
    counts = count_operations(g)
    s, gate = counts.sources
    assert (s.name, gate.name) == ("s", "gate")
    assert torch.equal(s.fan_out, torch.zeros(1, 2, 2))
    assert torch.equal(gate.fan_out, torch.full((1, 1, 1), 3.0))
    assert counts.ann_other == {"gate": 4}
    sops = _sops(g, torch.tensor([[[1.0, 0.5], [0.25, 0.0]]]), 4)
    assert sops == {"s": [0.0] * 4, "gate": [3.0] * 4}


def test_concat_of_a_spiking_input_and_an_analog_branch() -> None:
    # a: 2×3×3 spiking layer on the input; b: a 1×1 conv (2 → 1) of the analog input (a
    # one-off pass: 9 positions × 2 = 18 input MACs) into spiking layer sb (1×3×3).
    # cat(a, sb) → 3×3×3 → conv 3×3 pad 1 → 2×3×3 (output). Per axis a position feeds
    # 2, 3, 2 output positions, so fan-out = [2,3,2]ᵀ[2,3,2] × 2 output channels for every
    # channel of both blocks. MACs: 18 (1×1) + 18 outputs × 27 (3×3×3) = 504.
    per_axis = torch.tensor([2.0, 3.0, 2.0])
    plane = 2 * per_axis[:, None] * per_axis[None, :]
    g = _graph(
        [
            Node("x", Input((2, 3, 3))),
            Node("a", IFNeuron(), ("x",)),
            Node("b", Conv2d(torch.ones(1, 2, 1, 1) / 2), ("x",)),
            Node("sb", IFNeuron(), ("b",)),
            Node("cat", Concat(1), ("a", "sb")),
            Node("out", Conv2d(torch.zeros(2, 3, 3, 3), padding=1), ("cat",)),
        ]
    )
    counts = count_operations(g)
    a, sb = counts.sources
    assert torch.equal(a.fan_out, plane.expand(2, 3, 3))
    assert torch.equal(sb.fan_out, plane.expand(1, 3, 3))
    assert counts.input_macs == {"b": 18}
    assert counts.ann_macs == {"b": 18, "out": 486}
    assert counts.ann_macs_total == 504


def test_residual_add_with_scaled_shortcut() -> None:
    # s (1×3×3) → conv 3×3 pad 1 → u (spiking) → conv 3×3 pad 1 → add(·, Scale(s)) → t.
    # s reaches u through the first conv (fan-out [2,3,2]ᵀ[2,3,2]) and t through the fixed
    # identity synapse of the Scale (1 each): [[5,7,5],[7,10,7],[5,7,5]]. u reaches t
    # through the second conv only. The add: 9 outputs × 1 extra input = 9 other ops.
    per_axis = torch.tensor([2.0, 3.0, 2.0])
    conv_fan = per_axis[:, None] * per_axis[None, :]
    g = _graph(
        [
            Node("x", Input((1, 3, 3))),
            Node("s", IFNeuron(), ("x",)),
            Node("c1", Conv2d(torch.zeros(1, 1, 3, 3), padding=1), ("s",)),
            Node("u", IFNeuron(), ("c1",)),
            Node("c2", Conv2d(torch.zeros(1, 1, 3, 3), padding=1), ("u",)),
            Node("short", Scale(torch.tensor(0.5)), ("s",)),
            Node("add", Add(), ("c2", "short")),
            Node("t", IFNeuron(), ("add",)),
            Node("flat", Reshape((9,)), ("t",)),
            Node("fc", Linear(torch.zeros(2, 9)), ("flat",)),
        ]
    )
    counts = count_operations(g)
    s, u, t = counts.sources
    assert torch.equal(s.fan_out, (conv_fan + 1)[None])
    assert sorted(s.targets) == ["t", "u"]
    assert torch.equal(u.fan_out, conv_fan[None])
    assert torch.equal(t.fan_out, torch.full((1, 3, 3), 2.0))
    assert counts.ann_other == {"add": 9}
    assert counts.ann_macs == {"c1": 81, "c2": 81, "fc": 18}  # MACs count padding taps
    x = torch.zeros(1, 3, 3)
    x[0, 1, 1] = 1.0  # the centre: 9 conv targets + 1 shortcut = 10 SOPs per step
    assert _sops(g, x, 2)["s"] == [10.0, 10.0]


def test_poisson_input_is_a_source_and_has_no_input_pass() -> None:
    g = _graph(
        [
            Node("x", Input((4,))),
            Node("fc1", Linear(torch.ones(5, 4)), ("x",)),
            Node("s", IFNeuron(), ("fc1",)),
            Node("fc2", Linear(torch.ones(2, 5)), ("s",)),
        ]
    )
    analog = count_operations(g)
    assert [s.name for s in analog.sources] == ["s"]
    assert analog.input_macs == {"fc1": 20}
    poisson = count_operations(g, InputEncoding.POISSON)
    assert [s.name for s in poisson.sources] == ["x", "s"]
    assert torch.equal(poisson.sources[0].fan_out, torch.full((4,), 5.0))
    assert poisson.input_macs == {}
    # input spikes with p = 1 every step: 4 spikes × 5 targets = 20 SOPs per step
    counts = poisson.sources
    sim = Simulator(
        g, input_encoding=InputEncoding.POISSON, fan_out={c.name: c.fan_out for c in counts}
    )
    res = sim.run(torch.ones(1, 4), torch.zeros(1, dtype=torch.long), 3)
    assert res.sops["x"].tolist() == [20.0] * 3
    assert res.events["x"].tolist() == [4.0] * 3


def test_counting_leaves_the_simulation_unchanged() -> None:
    torch.manual_seed(0)
    g = _graph(
        [
            Node("x", Input((1, 6, 6))),
            Node("c", Conv2d(torch.rand(3, 1, 3, 3) / 3, padding=1, stride=2), ("x",)),
            Node("s", IFNeuron(), ("c",)),
            Node("flat", Reshape((27,)), ("s",)),
            Node("fc", Linear(torch.randn(4, 27)), ("flat",)),
        ]
    )
    x, y = torch.rand(5, 1, 6, 6), torch.zeros(5, dtype=torch.long)
    counts = count_operations(g)
    plain = Simulator(g).run(x, y, 16)
    counted = Simulator(g, fan_out={s.name: s.fan_out for s in counts.sources}).run(x, y, 16)
    assert torch.equal(plain.correct_top1, counted.correct_top1)
    assert torch.equal(plain.output, counted.output)
    assert torch.equal(plain.spikes["s"], counted.spikes["s"])
    # uniform fan-out (4 outputs each): SOPs = 4 × spikes
    assert torch.equal(counted.sops["s"], 4 * plain.spikes["s"].double())


def test_milestones_and_energy_by_hand() -> None:
    # ANN: 90 % top-1 at 1000 MACs. SNN with 100 input MACs and 200 SOPs per step:
    # ops after t steps = 100 + 200 t; error 30, 10.8, 10.4, 10.05 % at t = 1..4.
    marks = milestones(0.9, 1000.0, [0.7, 0.892, 0.896, 0.8995], [200, 400, 600, 800], 100.0)
    assert marks["within"]["1"]["step"] == 2 and marks["within"]["1"]["ops"] == 500
    assert marks["within"]["0.5"]["step"] == 3 and marks["within"]["0.5"]["ops_ratio"] == 0.7
    assert marks["within"]["0.1"]["step"] == 4
    assert marks["best_at_ann_ops"]["0.5"]["step"] == 2  # ops ≤ 500: t = 1, 2
    assert marks["best_at_ann_ops"]["1"]["step"] == 4  # ops ≤ 1000: all four
    assert milestones(0.9, 100.0, [0.5], [200], 0.0)["best_at_ann_ops"]["0.5"] is None
    energy = EnergyModel().estimate({"fc": 1000.0}, {"s": 800.0}, {"c": 100.0})
    assert energy["ann_pj_per_sample"] == pytest.approx(4600.0)
    assert energy["snn_pj_per_sample"] == pytest.approx(800 * 0.9 + 100 * 4.6)


def test_fan_out_is_computed_under_no_grad() -> None:
    g = _graph(
        [
            Node("x", Input((4,))),
            Node("s", IFNeuron(), ("x",)),
            Node("fc", Linear(torch.ones(3, 4)), ("s",)),
        ]
    )
    with torch.no_grad():
        (s,) = count_operations(g).sources
    assert torch.equal(s.fan_out, torch.full((4,), 3.0))
