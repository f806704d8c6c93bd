"""Batch-norm folding: the folded network computes the same function."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from models import ConvBN, ConvBNBN, LinearBN, NestedNet, StandaloneBN, tiny_cnn
from snnconv.importers import import_torch
from snnconv.ir import BatchNorm, Conv2d, Graph, Input, Linear, Node, ReLU
from snnconv.passes import fold_batchnorm, infer_shapes
from snnconv.sim.reference import run_graph

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def assert_relative_close(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-5) -> None:
    """max |actual − expected| ≤ rel · max |expected|."""
    scale = float(expected.abs().max())
    error = float((actual - expected).abs().max())
    assert error <= rel * scale, f"max error {error} exceeds {rel} × {scale}"


def imported(model: nn.Module) -> Graph:
    model.eval()
    return infer_shapes(import_torch(model, torch.randn(2, *model.in_shape)))


def weighted(graph: Graph) -> list[str]:
    return [n.op.kind for n in graph.nodes if n.op.kind in ("Conv2d", "Linear")]


@pytest.mark.parametrize(
    ("factory", "extra_layers"),
    [
        (ConvBN, 0),
        (lambda: ConvBN(bias=False), 0),
        (lambda: ConvBN(bias=False, affine=False), 0),
        (LinearBN, 0),
        (lambda: LinearBN(bias=False), 0),
        (ConvBNBN, 0),
        (StandaloneBN, 2),
        (NestedNet, 0),
        (tiny_cnn, 0),
    ],
    ids=[
        "conv",
        "conv-no-bias",
        "conv-no-bias-no-affine",
        "linear",
        "linear-no-bias",
        "conv-bn-bn",
        "standalone",
        "nested",
        "tiny-cnn",
    ],
)
def test_folded_network_computes_the_same_function(
    factory: Callable[[], nn.Module], extra_layers: int
) -> None:
    model = factory()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eps = 0.1  # large, so a fold that drops or misplaces ε fails clearly
    graph = imported(model)
    folded = fold_batchnorm(graph)
    assert not any(isinstance(n.op, BatchNorm) for n in folded.nodes)
    assert len(weighted(folded)) == len(weighted(graph)) + extra_layers
    x = torch.randn(16, *model.in_shape)
    with torch.no_grad():
        expected = model(x)
    assert_relative_close(run_graph(folded, x)[0], expected)
    assert_relative_close(run_graph(folded, x)[0], run_graph(graph, x)[0])
    # Folding must not change the input graph (passes return new graphs).
    assert sum(isinstance(n.op, BatchNorm) for n in graph.nodes) > 0


@pytest.mark.parametrize("has_bias", [True, False])
def test_conv_fold_follows_the_formula(has_bias: bool) -> None:
    torch.manual_seed(1)
    w = torch.randn(3, 2, 3, 3)
    b = torch.randn(3) if has_bias else None
    mean, var = torch.randn(3), torch.rand(3) + 0.2
    gamma, beta, eps = torch.randn(3), torch.randn(3), 1e-3
    graph = Graph(
        [
            Node("input", Input((2, 5, 5))),
            Node("conv", Conv2d(w, b, padding=1), ("input",), {"source": "features.0"}),
            Node("bn", BatchNorm(mean, var, gamma, beta, eps), ("conv",)),
            Node("relu", ReLU(), ("bn",)),
        ],
        output="relu",
    )
    folded = fold_batchnorm(infer_shapes(graph))
    assert [n.name for n in folded] == ["input", "conv", "relu"]
    assert folded.node("relu").inputs == ("conv",)
    conv = folded.node("conv")
    assert conv.source == "features.0"
    assert conv.op.padding == (1, 1)
    # W̃ = W·γ/σ;  b̃ = β + (b − μ)·γ/σ  with σ = √(var + ε), in float64.
    a = gamma.double() / torch.sqrt(var.double() + eps)
    b0 = b.double() if b is not None else torch.zeros(3, dtype=torch.float64)
    torch.testing.assert_close(conv.op.weight, (w.double() * a[:, None, None, None]).float())
    torch.testing.assert_close(conv.op.bias, (beta.double() + (b0 - mean.double()) * a).float())


def test_linear_fold_follows_the_formula() -> None:
    w = torch.randn(4, 6)
    mean, var = torch.randn(4), torch.rand(4) + 0.2
    gamma, beta = torch.randn(4), torch.randn(4)
    graph = Graph(
        [
            Node("input", Input((6,))),
            Node("fc", Linear(w, None), ("input",)),
            Node("bn", BatchNorm(mean, var, gamma, beta), ("fc",)),
        ],
        output="bn",
    )
    folded = fold_batchnorm(infer_shapes(graph))
    assert folded.output == "fc"
    a = gamma.double() / torch.sqrt(var.double() + 1e-5)
    torch.testing.assert_close(folded.node("fc").op.weight, (w.double() * a[:, None]).float())
    torch.testing.assert_close(folded.node("fc").op.bias, (beta.double() - mean * a).float())


def test_standalone_batchnorm_becomes_per_channel_affine() -> None:
    graph = imported(StandaloneBN())
    bn_in, bn_hidden = (n for n in graph.nodes if isinstance(n.op, BatchNorm))
    folded = fold_batchnorm(graph)
    for bn, expected_kind in ((bn_in, Conv2d), (bn_hidden, Linear)):
        node = folded.node(bn.name)
        assert isinstance(node.op, expected_kind)
        a, c = bn.op.scale_shift()
        if expected_kind is Conv2d:  # depthwise 1×1
            assert node.op.groups == a.numel()
            assert node.op.weight.shape == (a.numel(), 1, 1, 1)
            torch.testing.assert_close(node.op.weight.reshape(-1), a)
        else:  # diagonal
            torch.testing.assert_close(node.op.weight, torch.diag(a))
        torch.testing.assert_close(node.op.bias, c)


def test_conv_with_other_users_is_not_modified() -> None:
    # The conv also feeds a second branch: folding into it would change that branch.
    w, b = torch.randn(2, 1, 3, 3), torch.randn(2)
    bn = BatchNorm(torch.randn(2), torch.rand(2) + 0.5, torch.randn(2), torch.randn(2))
    graph = infer_shapes(
        Graph(
            [
                Node("input", Input((1, 6, 6))),
                Node("conv", Conv2d(w, b), ("input",)),
                Node("side", ReLU(), ("conv",)),
                Node("bn", bn, ("conv",)),
            ],
            output="bn",
        )
    )
    folded = fold_batchnorm(graph)
    assert torch.equal(folded.node("conv").op.weight, w)
    assert torch.equal(folded.node("conv").op.bias, b)
    assert isinstance(folded.node("bn").op, Conv2d)
    x = torch.randn(3, 1, 6, 6)
    _, before = run_graph(graph, x, capture={"side", "bn"})
    _, after = run_graph(folded, x, capture={"side", "bn"})
    assert torch.equal(after["side"], before["side"])
    assert_relative_close(after["bn"], before["bn"])
