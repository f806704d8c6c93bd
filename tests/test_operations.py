"""Operation counts on tiny networks whose MACs and SOPs are worked out by hand.

Every graph here feeds a spiking layer ``s`` straight from the analog input,
so with constant inputs in {0, 1/4, 1/2, 1} and reset by subtraction from
V(0) = 0 its spike trains are known exactly: x = 1 spikes at every step,
x = 1/2 at steps 2, 4, …, x = 1/4 at steps 4, 8, …, x = 0 never.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnconv.ir import (
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Graph,
    Identity,
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
from snnconv.metrics.synapses import brute_force_fan_out
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


def test_overlapping_pool_counts_one_synapse_per_target() -> None:
    # 3×3 → avg-pool 2×2, stride 1 → 2×2 → linear 4 → 1. The centre lies in all four
    # windows (4 paths), edges in two, corners in one; every neuron reaches the single
    # output once, and deployed composed that is one synapse each.
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
    assert torch.equal(fan_out, torch.ones(1, 3, 3, dtype=torch.float64))


def test_conv_after_conv_counts_the_composed_window() -> None:
    # s (1×9×9) → conv 5×5 (1 → 4, pad 2) → conv 3×3 dilation 2 (4 → 2, pad 2) → t.
    # An interior neuron reaches rows y−2 … y+2 of the first conv, then every row within
    # ±2 (dilation 2) of those: y−4 … y+4, 9 rows; likewise 9 columns; both output
    # channels: 2 × 9 × 9 = 162 distinct targets (paths: 4 × 25 × 9 × 2 = 1,800).
    # Row y reaches min(y, 4) + min(8 − y, 4) + 1 rows near the borders.
    rows = torch.tensor([min(y, 4) + min(8 - y, 4) + 1 for y in range(9)], dtype=torch.float64)
    g = _graph(
        [
            Node("x", Input((1, 9, 9))),
            Node("s", IFNeuron(), ("x",)),
            Node("c1", Conv2d(torch.zeros(4, 1, 5, 5), padding=2), ("s",)),
            Node("c2", Conv2d(torch.zeros(2, 4, 3, 3), padding=2, dilation=2), ("c1",)),
            Node("t", IFNeuron(), ("c2",)),
        ]
    )
    s = count_operations(g).sources[0]
    assert torch.equal(s.fan_out, (2 * rows[:, None] * rows[None, :])[None])
    assert float(s.fan_out[0, 4, 4]) == 162


def test_linear_after_linear_counts_the_outputs() -> None:
    # s (1152) → linear 64 → linear 10 (output): 10 distinct targets each, not 640 paths.
    g = _graph(
        [
            Node("x", Input((1152,))),
            Node("s", IFNeuron(), ("x",)),
            Node("fc1", Linear(torch.zeros(64, 1152)), ("s",)),
            Node("fc2", Linear(torch.zeros(10, 64)), ("fc1",)),
        ]
    )
    counts = count_operations(g)
    assert torch.equal(counts.sources[0].fan_out, torch.full((1152,), 10.0, dtype=torch.float64))
    assert counts.ann_macs == {"fc1": 1152 * 64, "fc2": 64 * 10}  # the ANN as built


def test_residual_add_of_two_branches_of_one_source() -> None:
    # s (2×4×4) → [conv 3×3 pad 1 (2 → 2)] + [identity] → t: the identity's target (same
    # channel, same position) is also in the conv's 3×3 window over both channels, so
    # the fan-out is the conv's alone: 2 × rows × cols.
    per_axis = torch.tensor([2.0, 3.0, 3.0, 2.0], dtype=torch.float64)
    g = _graph(
        [
            Node("x", Input((2, 4, 4))),
            Node("s", IFNeuron(), ("x",)),
            Node("c", Conv2d(torch.zeros(2, 2, 3, 3), padding=1), ("s",)),
            Node("add", Add(), ("c", "s")),
            Node("t", IFNeuron(), ("add",)),
        ]
    )
    s = count_operations(g).sources[0]
    assert torch.equal(s.fan_out, (2 * per_axis[:, None] * per_axis[None, :]).expand(2, 4, 4))
    # with a strided conv the two branches do not overlap everywhere: brute force agrees
    h = _graph(
        [
            Node("x", Input((2, 4, 4))),
            Node("s", IFNeuron(), ("x",)),
            Node("c", Conv2d(torch.zeros(2, 2, 1, 1), stride=2), ("s",)),
            Node("p", AvgPool2d((2, 2), (2, 2)), ("s",)),
            Node("add", Add(), ("c", "p")),
            Node("t", IFNeuron(), ("add",)),
        ]
    )
    reference, _ = brute_force_fan_out(h, "s", set())
    assert torch.equal(count_operations(h).sources[0].fan_out, reference)
    # a position on the stride grid reaches 2 channels (conv) ∪ its own channel (pool): 2
    assert float(reference[0, 0, 0]) == 2 and float(reference[0, 1, 1]) == 1


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_macs_and_fan_out_of_grouped_and_depthwise_convolutions(groups: int) -> None:
    # 4 → 8 channels, 3×3, no padding, on 5×5: 8 × 3 × 3 outputs, each reading C_in/g
    # input channels × 9 taps; an input channel reaches the 8/g output channels of its group.
    g = _graph(
        [
            Node("x", Input((4, 5, 5))),
            Node("s", IFNeuron(), ("x",)),
            Node("c", Conv2d(torch.zeros(8, 4 // groups, 3, 3), groups=groups), ("s",)),
            Node("t", IFNeuron(), ("c",)),
        ]
    )
    counts = count_operations(g)
    assert counts.ann_macs == {"c": 8 * 3 * 3 * (4 // groups) * 3 * 3}
    per_axis = torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    expected = (8 // groups) * per_axis[:, None] * per_axis[None, :]
    assert torch.equal(counts.sources[0].fan_out, expected.expand(4, 5, 5))


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


# --- the fan-out against brute force on random small graphs ----------------------------------


def _random_branch(
    rng: random.Random, name: str, prefix: list[Node], src: str, shape: tuple[int, int, int]
) -> tuple[list[Node], str, tuple[int, int, int]]:
    """One to three composable spatial ops after ``src`` (a node of ``prefix``); returns the
    new nodes, the last one's name and its shape."""
    nodes: list[Node] = []
    c, h, w = shape
    for k in range(rng.randint(1, 3)):
        node = f"{name}{k}"
        kind = rng.choice(["conv", "conv", "pool", "adaptive", "scale", "identity"])
        if kind == "conv":
            groups = rng.choice([g for g in (1, 2, c) if c % g == 0])
            c_out = groups * rng.randint(1, 2)
            kernel = rng.randint(1, min(3, h, w))
            stride, dilation = rng.randint(1, 2), rng.randint(1, 2)
            padding = rng.randint(0, kernel // 2 + dilation - 1)
            extent = dilation * (kernel - 1) + 1
            if h + 2 * padding < extent or w + 2 * padding < extent:
                padding, dilation = kernel // 2, 1
            op: object = Conv2d(
                torch.zeros(c_out, c // groups, kernel, kernel),
                padding=padding,
                stride=stride,
                dilation=dilation,
                groups=groups,
            )
        elif kind == "pool":
            kernel = rng.randint(1, min(3, h, w))
            op = AvgPool2d(
                (kernel, kernel),
                (rng.randint(1, kernel),) * 2,
                padding=(rng.randint(0, kernel // 2),) * 2,
                ceil_mode=rng.random() < 0.3,
            )
        elif kind == "adaptive":
            op = AdaptiveAvgPool2d((rng.randint(1, h), rng.randint(1, w)))
        elif kind == "scale":
            factor = (torch.rand(c, 1, 1) < 0.7).float() * 0.5
            op = Scale(factor if rng.random() < 0.5 else torch.tensor(2.0))
        else:
            op = Identity()
        nodes.append(Node(node, op, (src,)))  # type: ignore[arg-type]
        c, h, w = _graph_shape([*prefix, *nodes], node)
        src, shape = node, (c, h, w)
    return nodes, src, (c, h, w)


def _graph_shape(nodes: list[Node], name: str) -> tuple[int, int, int]:
    graph = _graph([*nodes, Node("_end", Identity(), (name,))])
    return tuple(int(d) for d in graph.node(name).meta["shape"])  # type: ignore[return-value]


def _random_graph(seed: int) -> Graph:
    rng = random.Random(seed)
    shape = (rng.randint(1, 4), rng.randint(2, 6), rng.randint(2, 6))
    nodes = [Node("x", Input(shape)), Node("s", IFNeuron(), ("x",))]
    first, end, out_shape = _random_branch(rng, "a", nodes, "s", shape)
    nodes += first
    join = rng.choice(["none", "add", "concat"])
    if join != "none":
        second, other, other_shape = _random_branch(rng, "b", nodes, "s", shape)
        nodes += second
        # bring both branches to one spatial size (and, to add them, one channel count)
        size = (min(out_shape[1], other_shape[1]), min(out_shape[2], other_shape[2]))
        channels = rng.randint(1, 3)
        ends = []
        for branch, (c, h, w) in ((end, out_shape), (other, other_shape)):
            if (h, w) != size:
                nodes.append(Node(f"{branch}_fit", AdaptiveAvgPool2d(size), (branch,)))
                branch = f"{branch}_fit"
            if join == "add" and c != channels:
                nodes.append(
                    Node(f"{branch}_mix", Conv2d(torch.zeros(channels, c, 1, 1)), (branch,))
                )
                branch = f"{branch}_mix"
            ends.append(branch)
        if join == "add":
            nodes.append(Node("join", Add(), tuple(ends)))
            out_shape = (channels, *size) if out_shape[0] != channels else (out_shape[0], *size)
        else:
            nodes.append(Node("join", Concat(1), tuple(ends)))
            out_shape = (out_shape[0] + other_shape[0], *size)
        end = "join"
    nodes.append(Node("t", IFNeuron(), (end,)))
    tail = rng.choice(["readout", "linear-linear", "pool-readout"])
    flat = math.prod(out_shape)
    if tail == "pool-readout":
        nodes.append(Node("tp", AvgPool2d((1, 1), (1, 1)), ("t",)))
        nodes.append(Node("flat", Reshape((flat,)), ("tp",)))
    else:
        nodes.append(Node("flat", Reshape((flat,)), ("t",)))
    if tail == "linear-linear":
        nodes.append(Node("fc0", Linear(torch.zeros(5, flat)), ("flat",)))
        nodes.append(Node("fc", Linear(torch.zeros(3, 5)), ("fc0",)))
    else:
        nodes.append(Node("fc", Linear(torch.zeros(3, flat)), ("flat",)))
    return _graph(nodes)


@settings(max_examples=150)
@given(st.integers(0, 2**31))
def test_fan_out_equals_brute_force_on_random_graphs(seed: int) -> None:
    """Strides, padding, dilation, groups, overlapping and adaptive pools, channel scales
    with zeros, adds and concatenations of two branches of one source, conv → conv and
    linear → linear: every source's count equals the one-hot brute force."""
    graph = _random_graph(seed)
    counts = count_operations(graph)
    names = {source.name for source in counts.sources}
    for source in counts.sources:
        reference, targets = brute_force_fan_out(graph, source.name, names - {source.name})
        assert torch.equal(source.fan_out, reference), (source.name, seed)
        assert set(source.targets) == targets
