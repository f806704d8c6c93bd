"""BinaryNet conversion: sign and Heaviside units, binary weights kept binary."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import snnconv
from models import fashion_mnist_train_sample
from snnconv import zoo
from snnconv.ir import BatchNorm, BinaryActivation, BinaryKind, BinaryNeuron, Conv2d, Input, Linear
from snnconv.ir.graph import Graph, Node
from snnconv.passes import fold_batchnorm, infer_shapes
from snnconv.sim.neurons import IFParams, IFState, if_scan
from snnconv.sim.reference import run_graph


def _binary(weights: torch.Tensor) -> bool:
    return bool(((weights == 1) | (weights == -1) | (weights == 0)).all())


def test_sign_unit_rate_tracks_clipped_input() -> None:
    z = torch.tensor([-3.0, -1.0, -0.25, 0.0, 0.375, 1.0, 2.5])
    spikes = if_scan(
        IFState(torch.zeros_like(z)), IFParams(1.0, two_sided=True), z, 64, constant=True
    )
    rate = spikes.sum(0) / 64
    # dyadic inputs: the count is exact, floor(T|z|) with the sign of z, saturating at ±1
    assert rate.tolist() == [-1.0, -1.0, -0.25, 0.0, 0.375, 1.0, 1.0]


def test_batchnorm_before_binary_activation_keeps_weights_binary() -> None:
    torch.manual_seed(0)
    weight = torch.sign(torch.randn(4, 2, 3, 3))
    gamma = torch.tensor([1.5, -0.5, 2.0, -3.0])  # two negative gains: comparisons flip
    bn = BatchNorm(torch.randn(4), torch.rand(4) + 0.5, gamma, torch.randn(4))
    nodes = [
        Node("input", Input((2, 6, 6))),
        Node("conv", Conv2d(weight, torch.randn(4), padding=(1, 1)), ("input",)),
        Node("bn", bn, ("conv",)),
        Node("sign", BinaryActivation(BinaryKind.SIGN), ("bn",)),
    ]
    graph = infer_shapes(Graph(nodes, "sign"))
    folded = fold_batchnorm(graph)
    conv = folded.node("conv").op
    assert _binary(conv.weight)
    assert torch.equal(conv.weight[1], -weight[1]) and torch.equal(conv.weight[0], weight[0])
    x = torch.randn(16, 2, 6, 6)
    assert torch.equal(run_graph(folded, x)[0], run_graph(graph, x)[0])


@pytest.mark.parametrize("activation", ["sign", "heaviside"])
def test_binarynet_imports_as_binary_graph(activation: str) -> None:
    model = zoo.binarynet(in_channels=1, image_size=8, activation=activation).eval()
    x = torch.rand(32, 1, 8, 8)
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"))
    kinds = {type(n.op) for n in snn.graph.nodes}
    assert BinaryNeuron in kinds
    neurons = [n.op for n in snn.graph.nodes if isinstance(n.op, BinaryNeuron)]
    assert {n.function.value for n in neurons} == {activation}
    # weights stay ±1 in every layer that feeds a binary unit (batch-norm folded as a bias)
    layers = [n.op for n in snn.graph.nodes if isinstance(n.op, (Conv2d, Linear))]
    assert all(_binary(op.weight) for op in layers[:-1])
    with torch.no_grad():
        torch.testing.assert_close(run_graph(snn.graph, x)[0], model(x), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("activation", ["sign", "heaviside"])
def test_trained_binarynet_within_two_points_at_32_steps(activation: str) -> None:
    """Trained on 1,000 real images, tested on 1,000: the SNN with the default θ is within
    2 points of its ANN at T = 32 (the paper: about one point after ~30 steps)."""
    from snnconv.data import calibration_subset, load_dataset

    torch.manual_seed(0)
    train = fashion_mnist_train_sample()
    test = load_dataset("fashion-mnist", "test", limit=1000)
    model = zoo.train(
        zoo.binarynet(in_channels=1, image_size=28, activation=activation), train, epochs=4
    )
    snn = snnconv.convert(model, calibration_subset(train, 200), snnconv.Config(device="cpu"))
    result = snnconv.evaluate(snn, test, timesteps=32)
    assert result.ann_top1 > 0.6
    assert abs(result.snn_top1[31] - result.ann_top1) <= 0.02, result.table(steps=(8, 16, 32))


def test_binary_units_are_not_normalized() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), zoo.SignSTE(), nn.Linear(8, 3)).eval()
    x = torch.rand(20, 4)
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"))
    assert torch.equal(snn.graph.node("linear").op.weight, model[0].weight.detach())
