"""The internal representation: op semantics, validation, and graph edits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snnconv import NumericalError
from snnconv.ir import (
    OP_TYPES,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dropout,
    Graph,
    GraphError,
    Identity,
    IFNeuron,
    Input,
    Linear,
    Node,
    ReLU,
    Reshape,
)


def chain(*ops: object, shape: tuple[int, ...] = (4,)) -> Graph:
    """Input → ops[0] → ops[1] → … with names n1, n2, …"""
    nodes = [Node("input", Input(shape))]
    for i, op in enumerate(ops, start=1):
        nodes.append(Node(f"n{i}", op, (nodes[-1].name,)))  # type: ignore[arg-type]
    return Graph(nodes, output=nodes[-1].name)


# -- op semantics ---------------------------------------------------------------
def test_conv2d_apply_is_torch_conv2d() -> None:
    w, b = torch.randn(4, 1, 3, 3), torch.randn(4)
    op = Conv2d(w, b, stride=2, padding=(1, 0), dilation=[2], groups=2)
    assert op.stride == (2, 2) and op.padding == (1, 0) and op.dilation == (2, 2)
    x = torch.randn(3, 2, 9, 9)
    expected = F.conv2d(x, w, b, (2, 2), (1, 0), (2, 2), 2)
    assert torch.equal(op.apply(x), expected)


def test_linear_and_relu_apply() -> None:
    w, b = torch.randn(3, 5), torch.randn(3)
    x = torch.randn(2, 5)
    assert torch.equal(Linear(w, b).apply(x), F.linear(x, w, b))
    assert torch.equal(Linear(w).apply(x), x @ w.T)
    z = torch.tensor([[-1.0, 0.0, 2.5]])
    assert torch.equal(ReLU().apply(z), torch.tensor([[0.0, 0.0, 2.5]]))
    assert torch.equal(IFNeuron().apply(z), ReLU().apply(z))  # IF acts as ReLU in an ANN


def test_batchnorm_scale_shift_matches_apply() -> None:
    c = 3
    op = BatchNorm(torch.randn(c), torch.rand(c) + 0.5, torch.randn(c), torch.randn(c), eps=1e-3)
    a, shift = op.scale_shift()
    x = torch.randn(4, c, 2, 2)
    expected = (x - op.mean[:, None, None]) / torch.sqrt(op.var[:, None, None] + 1e-3)
    expected = expected * op.weight[:, None, None] + op.bias[:, None, None]
    torch.testing.assert_close(op.apply(x), expected)
    torch.testing.assert_close(x * a[:, None, None] + shift[:, None, None], expected)
    plain = BatchNorm(op.mean, op.var)
    a0, c0 = plain.scale_shift()
    torch.testing.assert_close(a0, torch.rsqrt(op.var + 1e-5))
    torch.testing.assert_close(c0, -op.mean * a0)


def test_pooling_and_reshape_apply() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    pool = AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
    assert pool.kernel_size == (3, 3)
    assert torch.equal(pool.apply(x), F.avg_pool2d(x, 3, 2, 1, True, False))
    assert torch.equal(AdaptiveAvgPool2d(1).apply(x), x.mean((2, 3), keepdim=True))
    flat = Reshape([48])
    assert flat.shape == (48,)
    assert torch.equal(flat.apply(x), x.reshape(2, 48))
    assert torch.equal(flat.apply(x[:1]), x[:1].reshape(1, 48))  # batch size is free
    assert torch.equal(Dropout(0.5).apply(x), x)
    assert torch.equal(Identity().apply(x), x)


def test_scale_transparency_flags() -> None:
    # Normalization relies on these: ops commuting with a positive scale.
    transparent = {k for k, cls in OP_TYPES.items() if cls.scale_transparent}
    assert transparent == {
        "AvgPool2d",
        "AdaptiveAvgPool2d",
        "MaxPool2d",
        "Concat",
        "Reshape",
        "Dropout",
        "Identity",
    }
    assert {k for k, cls in OP_TYPES.items() if cls.has_weights} == {"Conv2d", "Linear", "Scale"}


def test_op_types_cover_every_op() -> None:
    import inspect

    from snnconv.ir import ops

    defined = {
        name
        for name, cls in inspect.getmembers(ops, inspect.isclass)
        if issubclass(cls, ops.Op) and cls is not ops.Op
    }
    assert set(OP_TYPES) == defined
    assert all(OP_TYPES[k].__name__ == k for k in OP_TYPES)


def test_tensors_lists_parameter_fields() -> None:
    w = torch.randn(2, 3)
    assert set(Linear(w, torch.zeros(2)).tensors()) == {"weight", "bias"}
    assert set(Linear(w).tensors()) == {"weight"}
    assert ReLU().tensors() == {}


# -- op validation ----------------------------------------------------------------
def test_weight_shapes_are_validated() -> None:
    with pytest.raises(ValueError, match="4-D"):
        Conv2d(torch.randn(2, 3))
    with pytest.raises(ValueError, match="one entry per output channel"):
        Conv2d(torch.randn(2, 1, 3, 3), torch.randn(3))
    with pytest.raises(ValueError, match="2-D"):
        Linear(torch.randn(2, 3, 1))
    with pytest.raises(ValueError, match="one entry per output feature"):
        Linear(torch.randn(2, 3), torch.randn(3))
    with pytest.raises(ValueError, match="pair"):
        AvgPool2d((1, 2, 3), 1)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_parameters_raise_numerical_error(bad: float) -> None:
    w = torch.randn(2, 3)
    w[1, 2] = bad
    with pytest.raises(NumericalError, match=r"Linear\.weight"):
        Linear(w)
    with pytest.raises(NumericalError, match=r"Conv2d\.bias"):
        Conv2d(torch.randn(2, 1, 1, 1), torch.tensor([0.0, bad]))
    with pytest.raises(NumericalError, match=r"BatchNorm\.var"):
        BatchNorm(torch.zeros(2), torch.tensor([1.0, bad]))


@pytest.mark.parametrize("threshold", [0.0, -1.0, math.inf, math.nan])
def test_if_threshold_must_be_positive_and_finite(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        IFNeuron(threshold=threshold)


# -- graph ---------------------------------------------------------------------------
def test_graph_validation() -> None:
    inp = Node("input", Input((2,)))
    relu = Node("r", ReLU(), ("input",))
    with pytest.raises(GraphError, match="first node"):
        Graph([relu], output="r")
    with pytest.raises(GraphError, match="duplicate"):
        Graph([inp, relu, Node("r", ReLU(), ("r",))], output="r")
    with pytest.raises(GraphError, match="before it is defined"):
        Graph([inp, Node("a", ReLU(), ("b",)), Node("b", ReLU(), ("input",))], output="a")
    with pytest.raises(GraphError, match="only one Input"):
        Graph([inp, Node("other", Input((2,)))], output="other")
    with pytest.raises(GraphError, match="output"):
        Graph([inp, relu], output="missing")
    assert Graph([inp, relu], output="r").output_node is relu


def test_graph_queries() -> None:
    g = chain(ReLU(), Identity(), ReLU())
    assert len(g) == 4
    assert g.input.name == "input"
    assert [n.name for n in g.users("n1")] == ["n2"]
    assert [n.name for n in g.producers(g.node("n2"))] == ["n1"]
    assert g.users("n3") == []
    with pytest.raises(KeyError):
        g.node("nope")
    assert "n2: Identity(n1)" in g.summary()


def test_bypass_rewires_users_and_output() -> None:
    g = chain(ReLU(), Identity(), ReLU())
    inner = g.bypass("n2")
    assert [n.name for n in inner] == ["input", "n1", "n3"]
    assert inner.node("n3").inputs == ("n1",)
    last = g.bypass("n3")
    assert last.output == "n2"
    assert [n.name for n in g] == ["input", "n1", "n2", "n3"]  # the original is unchanged


def test_with_op_replaces_one_node_and_merges_meta() -> None:
    g = chain(ReLU(), ReLU())
    g.node("n1").meta["source"] = "features.1"
    new = Dropout(0.1)
    g2 = g.with_op("n1", new, scale=2.0)
    assert g2.node("n1").op is new
    assert g2.node("n1").meta == {"source": "features.1", "scale": 2.0}
    assert isinstance(g.node("n1").op, ReLU)
    assert g2.node("n1").source == "features.1"
    assert g2.node("n2").source == "n2"  # falls back to the name


def test_prune_removes_dead_branches() -> None:
    nodes = [
        Node("input", Input((2,))),
        Node("dead", ReLU(), ("input",)),
        Node("live", ReLU(), ("input",)),
        Node("dead2", Identity(), ("dead",)),
    ]
    g = Graph(nodes, output="live").prune()
    assert [n.name for n in g] == ["input", "live"]


@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (2, 3), (4, 1)])
@pytest.mark.parametrize("shape", [(3, 4, 28, 28), (2, 3, 7, 9), (1, 1, 5, 5)])
@pytest.mark.parametrize("divisor", [None, 3])
def test_non_overlapping_avg_pool_fast_path(
    kernel: tuple[int, int], shape: tuple[int, ...], divisor: int | None
) -> None:
    """Stride = kernel, no padding: strided additions instead of F.avg_pool2d; equal for
    spikes (exact sums), within float rounding for real values; the input is untouched."""
    g = torch.Generator().manual_seed(0)
    op = AvgPool2d(kernel, kernel, divisor_override=divisor)
    x = torch.randn(shape, generator=g)
    before = x.clone()
    ref = F.avg_pool2d(x, kernel, kernel, divisor_override=divisor)
    out = op.apply(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    assert torch.equal(x, before)
    spikes = (torch.rand(shape, generator=g) < 0.3).float()
    assert torch.equal(
        op.apply(spikes), F.avg_pool2d(spikes, kernel, kernel, divisor_override=divisor)
    )
    # Ceil mode keeps the border's partial windows: not the fast path's floor mode.
    ceil = AvgPool2d(kernel, kernel, ceil_mode=True, divisor_override=divisor).apply(x)
    expected = F.avg_pool2d(x, kernel, kernel, ceil_mode=True, divisor_override=divisor)
    torch.testing.assert_close(ceil, expected, atol=1e-6, rtol=1e-6)
