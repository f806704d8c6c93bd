"""Layer-wise normalization: exact weight scaling, and the normalized ANN is the same function."""

from __future__ import annotations

import pytest
import torch

import snnconv
from models import NestedNet, tiny_cnn
from snnconv import ConfigError, UnsupportedOpError
from snnconv.importers import import_torch
from snnconv.ir import (
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Graph,
    GraphError,
    IFNeuron,
    Input,
    Linear,
    Node,
    ReLU,
    ResetMode,
    Reshape,
)
from snnconv.passes import (
    LayerStats,
    Percentile,
    collect_activation_stats,
    infer_shapes,
    normalize,
    prepare_ann,
    to_spiking,
)
from snnconv.sim.reference import run_graph

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

CPU = snnconv.Config(device="cpu")


def stats_of(**scales: float) -> dict[str, LayerStats]:
    return {name: LayerStats(scale=s, max=s, positive=1, total=1) for name, s in scales.items()}


def mlp3() -> Graph:
    torch.manual_seed(3)
    return Graph(
        [
            Node("input", Input((5,))),
            Node("fc1", Linear(torch.randn(4, 5), torch.randn(4)), ("input",)),
            Node("r1", ReLU(), ("fc1",)),
            Node("fc2", Linear(torch.randn(3, 4), torch.randn(3)), ("r1",)),
            Node("r2", ReLU(), ("fc2",)),
            Node("fc3", Linear(torch.randn(2, 3), torch.randn(2)), ("r2",)),
        ],
        output="fc3",
    )


def test_weights_and_biases_scale_exactly_by_hand() -> None:
    graph = mlp3()
    # Powers of two: every product below is exact in float32.
    lam1, lam2 = 4.0, 0.5
    out = normalize(infer_shapes(graph), stats_of(r1=lam1, r2=lam2))
    w = {n: graph.node(n).op.weight for n in ("fc1", "fc2", "fc3")}
    b = {n: graph.node(n).op.bias for n in ("fc1", "fc2", "fc3")}
    # W ← W·λ_in/λ_out, b ← b/λ_out; λ_in = 1 for the input, λ_out = 1 for the output layer.
    assert torch.equal(out.node("fc1").op.weight, w["fc1"] / 4)
    assert torch.equal(out.node("fc1").op.bias, b["fc1"] / 4)
    assert torch.equal(out.node("fc2").op.weight, w["fc2"] * 8)
    assert torch.equal(out.node("fc2").op.bias, b["fc2"] * 2)
    assert torch.equal(out.node("fc3").op.weight, w["fc3"] / 2)
    assert torch.equal(out.node("fc3").op.bias, b["fc3"])
    scales = {n.name: n.meta["scale"] for n in out.nodes}
    assert scales == {"input": 1.0, "fc1": 4.0, "r1": 4.0, "fc2": 0.5, "r2": 0.5, "fc3": 1.0}
    # The graph passed in is unchanged.
    assert torch.equal(graph.node("fc1").op.weight, w["fc1"])


def test_non_dyadic_scales() -> None:
    graph = mlp3()
    lam1, lam2 = 2.7, 0.31
    out = normalize(infer_shapes(graph), stats_of(r1=lam1, r2=lam2))
    close = {"rtol": 2e-7, "atol": 0}
    torch.testing.assert_close(
        out.node("fc1").op.weight, graph.node("fc1").op.weight / lam1, **close
    )
    torch.testing.assert_close(out.node("fc1").op.bias, graph.node("fc1").op.bias / lam1, **close)
    w2 = graph.node("fc2").op.weight * (lam1 / lam2)
    torch.testing.assert_close(out.node("fc2").op.weight, w2, **close)
    torch.testing.assert_close(out.node("fc2").op.bias, graph.node("fc2").op.bias / lam2, **close)
    w3 = graph.node("fc3").op.weight * lam2
    torch.testing.assert_close(out.node("fc3").op.weight, w3, **close)
    # Hidden activations are divided by their λ, the output is unchanged.
    x = torch.randn(7, 5)
    ref_out, ref = run_graph(graph, x, capture={"r1", "r2"})
    new_out, new = run_graph(out, x, capture={"r1", "r2"})
    torch.testing.assert_close(new["r1"], ref["r1"] / lam1)
    torch.testing.assert_close(new["r2"], ref["r2"] / lam2)
    torch.testing.assert_close(new_out, ref_out, rtol=1e-5, atol=1e-6)


def test_scale_passes_through_pooling_and_reshape() -> None:
    torch.manual_seed(4)
    w1, b1 = torch.randn(2, 1, 3, 3), torch.randn(2)
    w2, b2 = torch.randn(3, 8), torch.randn(3)
    graph = Graph(
        [
            Node("input", Input((1, 6, 6))),
            Node("conv", Conv2d(w1, b1, padding=1), ("input",)),
            Node("pool", AvgPool2d(3, 3), ("conv",)),  # between the conv and its ReLU
            Node("relu", ReLU(), ("pool",)),
            Node("flat", Reshape((8,)), ("relu",)),
            Node("fc", Linear(w2, b2), ("flat",)),
        ],
        output="fc",
    )
    out = normalize(infer_shapes(graph), stats_of(relu=8.0))
    assert torch.equal(out.node("conv").op.weight, w1 / 8)
    assert torch.equal(out.node("conv").op.bias, b1 / 8)
    assert out.node("flat").meta["scale"] == 8.0
    assert torch.equal(out.node("fc").op.weight, w2 * 8)
    assert torch.equal(out.node("fc").op.bias, b2)


def test_normalize_refuses_ops_it_cannot_scale_through() -> None:
    graph = Graph(
        [
            Node("input", Input((3,))),
            Node("bn", BatchNorm(torch.zeros(3), torch.ones(3)), ("input",), {"source": "bn0"}),
            Node("relu", ReLU(), ("bn",)),
        ],
        output="relu",
    )
    with pytest.raises(UnsupportedOpError, match="bn0"):
        normalize(infer_shapes(graph), stats_of(relu=2.0))


@pytest.mark.parametrize("p", [50.0, 99.9, 100.0])
def test_normalized_ann_equals_the_original(p: float) -> None:
    model = tiny_cnn(seed=1).eval()
    calibration = torch.rand(32, 1, 8, 8)
    snn = snnconv.convert(model, calibration, CPU.replace(percentile=p))
    with torch.no_grad():
        expected = model(calibration)
    out, _ = run_graph(snn.graph, calibration)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert torch.equal(out.argmax(1), expected.argmax(1))
    assert all(isinstance(snn.graph.node(n).op, IFNeuron) for n in snn.spiking_layers)
    assert len(snn.spiking_layers) == 3
    assert set(snn.info["stats"]) == set(snn.spiking_layers)


@pytest.mark.parametrize("p", [50.0, 99.0, 100.0])
def test_each_layer_robust_maximum_maps_to_one(p: float) -> None:
    model = NestedNet().eval()
    x = torch.rand(16, *model.in_shape)
    ann = prepare_ann(import_torch(model, x[:2]))
    stats = collect_activation_stats(ann, x, Percentile(p))
    normalized = normalize(ann, stats)
    again = collect_activation_stats(normalized, x, Percentile(p))
    for name, s in again.items():
        assert s.scale == pytest.approx(1.0, rel=1e-5), name
        assert stats[name].scale > 0


@pytest.mark.parametrize("p", [0.0, -5.0, 100.5, float("nan")])
def test_percentile_outside_range_is_a_config_error(p: float) -> None:
    with pytest.raises(ConfigError, match="percentile"):
        snnconv.Config(percentile=p)
    with pytest.raises(ConfigError, match="percentile"):
        Percentile(p)


def test_to_spiking_replaces_every_relu() -> None:
    graph = mlp3()
    spiking = to_spiking(graph, threshold=2.0, reset=ResetMode.ZERO, v_init=0.5)
    assert [n.op.kind for n in spiking] == [
        "Input",
        "Linear",
        "IFNeuron",
        "Linear",
        "IFNeuron",
        "Linear",
    ]
    neuron = spiking.node("r1").op
    assert (neuron.threshold, neuron.reset, neuron.v_init) == (2.0, ResetMode.ZERO, 0.5)
    assert spiking.node("fc1").op is graph.node("fc1").op


def test_normalize_needs_shapes_and_says_so() -> None:
    graph = Graph(
        [
            Node("x", Input((3,))),
            Node("fc", Linear(torch.ones(2, 3)), ("x",)),
            Node("relu", ReLU(), ("fc",)),
        ],
        output="relu",
    )
    with pytest.raises(GraphError, match=r"normalize needs every node's shape.*infer_shapes"):
        normalize(graph, stats_of(relu=2.0))
