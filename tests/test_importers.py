"""PyTorch importers: every accepted spelling, both capture paths, and the refusals."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import snnconv
from models import (
    FLATTEN_SPELLINGS,
    MLP,
    POOLS,
    RELU_SPELLINGS,
    BatchMixingReshape,
    ConvBN,
    ConvNet,
    DataDependentBranch,
    DropoutIdentityNet,
    FlattenSpelling,
    GeluNet,
    LinearBN,
    LSTMNet,
    NestedNet,
    PoolNet,
    ReluSpelling,
    SigmoidNet,
    StandaloneBN,
)
from snnconv.importers import import_exported_program, import_fx, import_torch
from snnconv.importers.registry import ConverterRegistry
from snnconv.importers.torch_common import SUPPORTED_TORCH_OPS
from snnconv.ir import AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Conv2d, Graph, Linear
from snnconv.sim.reference import run_graph

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

CHAIN = ["Input", "Conv2d", "ReLU", "Reshape", "Linear"]


def kinds(graph: Graph) -> list[str]:
    return [n.op.kind for n in graph.nodes]


def check_parity(model: nn.Module, graph: Graph, batch: int = 5) -> None:
    """The graph computes the eval-mode module's function, also at another batch size."""
    x = torch.randn(batch, *model.in_shape)
    with torch.no_grad():
        expected = model.eval()(x.clone())
    out, _ = run_graph(graph, x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def import_model(import_path: Callable[..., Graph], model: nn.Module) -> Graph:
    model.eval()
    return import_path(model, torch.randn(2, *model.in_shape))


# -- accepted spellings -------------------------------------------------------
CONV_CASES = {
    "default": {},
    "stride2-pad1": {"stride": 2, "padding": 1},
    "asymmetric": {"kernel_size": (3, 1), "stride": (2, 1), "padding": (0, 2), "dilation": 2},
    "dilation2": {"dilation": 2, "padding": 2},
    "groups2": {"in_channels": 2, "out_channels": 4, "groups": 2},
    "depthwise": {"in_channels": 4, "out_channels": 4, "groups": 4, "padding": 1},
    "no-bias": {"bias": False, "stride": 2},
    "padding-same": {"padding": "same", "dilation": 2},
    "padding-valid": {"padding": "valid", "kernel_size": 5},
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv2d_hyperparameters(import_path: Callable[..., Graph], case: str) -> None:
    model = ConvNet(**CONV_CASES[case])
    graph = import_model(import_path, model)
    assert kinds(graph) == CHAIN
    conv = graph.nodes[1].op
    assert isinstance(conv, Conv2d)
    m = model.conv
    assert conv.stride == m.stride
    assert conv.dilation == m.dilation
    assert conv.groups == m.groups
    expected_padding = m._reversed_padding_repeated_twice[::-2]  # explicit, also for "same"
    assert conv.padding == tuple(expected_padding)
    assert torch.equal(conv.weight, m.weight.detach())
    if m.bias is None:
        assert conv.bias is None
    else:
        assert torch.equal(conv.bias, m.bias.detach())
    check_parity(model, graph)


@pytest.mark.parametrize("bias", [True, False])
def test_linear(import_path: Callable[..., Graph], bias: bool) -> None:
    model = MLP(bias=bias)
    graph = import_model(import_path, model)
    assert kinds(graph) == ["Input", "Reshape", "Linear", "ReLU", "Linear"]
    for node, m in zip((graph.nodes[2], graph.nodes[4]), (model.fc1, model.fc2), strict=True):
        assert isinstance(node.op, Linear)
        assert torch.equal(node.op.weight, m.weight.detach())
        assert (node.op.bias is None) == (not bias)
    check_parity(model, graph)


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (ConvBN, ["Input", "Conv2d", "BatchNorm", "ReLU", "Reshape", "Linear"]),
        (
            lambda: ConvBN(bias=False, affine=False),
            ["Input", "Conv2d", "BatchNorm", "ReLU", "Reshape", "Linear"],
        ),
        (LinearBN, ["Input", "Reshape", "Linear", "BatchNorm", "ReLU", "Linear"]),
        (
            StandaloneBN,
            [
                "Input",
                "BatchNorm",
                "Conv2d",
                "ReLU",
                "Reshape",
                "Linear",
                "ReLU",
                "BatchNorm",
                "Linear",
            ],
        ),
    ],
    ids=["bn2d", "bn2d-no-affine-no-bias", "bn1d", "standalone"],
)
def test_batchnorm(
    import_path: Callable[..., Graph], factory: Callable[[], nn.Module], expected: list[str]
) -> None:
    model = factory()
    graph = import_model(import_path, model)
    assert kinds(graph) == expected
    bns = [n.op for n in graph.nodes if isinstance(n.op, BatchNorm)]
    modules = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == len(modules)
    for op, m in zip(bns, modules, strict=True):
        assert torch.equal(op.mean, m.running_mean)
        assert torch.equal(op.var, m.running_var)
        assert op.eps == m.eps
        assert (op.weight is None) == (not m.affine)
    check_parity(model, graph)


@pytest.mark.parametrize("spelling", sorted(RELU_SPELLINGS))
def test_relu_spellings(import_path: Callable[..., Graph], spelling: str) -> None:
    model = ReluSpelling(spelling)
    graph = import_model(import_path, model)
    assert kinds(graph) == CHAIN
    check_parity(model, graph)


@pytest.mark.parametrize("spelling", sorted(FLATTEN_SPELLINGS))
def test_flatten_spellings(import_path: Callable[..., Graph], spelling: str) -> None:
    model = FlattenSpelling(spelling)
    graph = import_model(import_path, model)
    assert kinds(graph) == CHAIN
    assert graph.nodes[3].op.shape == (2 * 6 * 6,)
    check_parity(model, graph)


@pytest.mark.parametrize("name", sorted(POOLS))
def test_pooling(import_path: Callable[..., Graph], name: str) -> None:
    model = PoolNet(name)
    graph = import_model(import_path, model)
    pool = graph.nodes[3].op
    expected_kind = "AdaptiveAvgPool2d" if "Adaptive" in name else "AvgPool2d"
    assert kinds(graph) == ["Input", "Conv2d", "ReLU", expected_kind, "Reshape", "Linear"]
    m = model.pool
    if isinstance(m, nn.AvgPool2d):
        assert isinstance(pool, AvgPool2d)
        k = m.kernel_size
        assert pool.kernel_size == (k, k)
        assert pool.ceil_mode == m.ceil_mode
        assert pool.count_include_pad == m.count_include_pad
        assert pool.divisor_override == m.divisor_override
    elif isinstance(m, nn.AdaptiveAvgPool2d):
        assert isinstance(pool, AdaptiveAvgPool2d)
        size = m.output_size
        assert pool.output_size == ((size, size) if isinstance(size, int) else tuple(size))
    else:  # F.avg_pool2d(x, 2): stride defaults to the kernel
        assert isinstance(pool, AvgPool2d)
        assert pool.kernel_size == (2, 2) and pool.stride == (2, 2)
    check_parity(model, graph)


def test_dropout_and_identity(import_path: Callable[..., Graph]) -> None:
    model = DropoutIdentityNet()
    graph = import_model(import_path, model)
    # Identity disappears at import; both dropouts are kept (removed by a later pass).
    assert kinds(graph) == ["Input", "Conv2d", "ReLU", "Dropout", "Dropout", "Reshape", "Linear"]
    assert sorted(n.op.p for n in graph.nodes if n.op.kind == "Dropout") == [0.3, 0.5]
    check_parity(model, graph)


def test_nested_modules(import_path: Callable[..., Graph]) -> None:
    model = NestedNet()
    graph = import_model(import_path, model)
    assert kinds(graph) == [
        "Input",
        "Conv2d",
        "ReLU",
        "Conv2d",
        "BatchNorm",
        "ReLU",
        "AvgPool2d",
        "Reshape",
        "Dropout",
        "Linear",
        "ReLU",
        "Linear",
    ]
    sources = [n.source for n in graph.nodes]
    assert sources[1].startswith("features.0.0")
    assert sources[3].startswith("features.1.conv")
    assert sources[4].startswith("features.1.bn")
    assert sources[9].startswith("classifier.2")
    assert sources[11].startswith("classifier.4")
    check_parity(model, graph)


def test_exported_program_is_accepted() -> None:
    model = NestedNet().eval()
    ep = torch.export.export(model, (torch.randn(2, *model.in_shape),))
    graph = import_torch(ep, torch.empty(0))
    check_parity(model, graph)


def test_fx_import_does_not_modify_the_example() -> None:
    # An in-place ReLU on the input must not write into the caller's tensor.
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(64, 3)).eval()
    model.in_shape = (1, 8, 8)
    example = torch.randn(2, 1, 8, 8)
    before = example.clone()
    graph = import_fx(model, example)
    assert torch.equal(example, before)
    check_parity(model, graph)


# -- train mode -----------------------------------------------------------------
def training_flags(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


def test_convert_uses_eval_mode_and_restores_training_flags() -> None:
    model = NestedNet()
    model.train()
    model.features[1].bn.eval()  # mixed flags must come back exactly
    flags = training_flags(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(16, *model.in_shape)
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"))
    assert training_flags(model) == flags
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # no BN update
    # The conversion captured the eval-mode function (running BN stats, no dropout).
    with torch.no_grad():
        expected = model.eval()(x)
    out, _ = run_graph(snn.graph, x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_training_flags_restored_when_conversion_raises() -> None:
    model = GeluNet()
    model.train()
    model.features[0].eval()
    flags = training_flags(model)
    with pytest.raises(snnconv.UnsupportedOpError):
        snnconv.convert(model, torch.rand(4, *model.in_shape), snnconv.Config(device="cpu"))
    assert training_flags(model) == flags


def test_training_flags_restored_on_fx_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("capture refused")

    monkeypatch.setattr(torch.export, "export", refuse)
    model = NestedNet()
    model.train()
    flags = training_flags(model)
    graph = import_torch(model, torch.randn(2, *model.in_shape))
    assert training_flags(model) == flags
    check_parity(model, graph)


# -- refusals -------------------------------------------------------------------
UNSUPPORTED = {
    "gelu": (GeluNet, "gelu", "features.2"),
    "sigmoid": (SigmoidNet, "sigmoid", "head"),
    "lstm": (LSTMNet, None, "rnn"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_op_names_op_path_and_alternatives(
    import_path: Callable[..., Graph], case: str
) -> None:
    factory, op_name, path = UNSUPPORTED[case]
    model = factory()
    with pytest.raises(snnconv.UnsupportedOpError) as info:
        import_model(import_path, model)
    error = info.value
    message = str(error)
    assert error.node.startswith(path)
    assert path in message
    assert error.op in message
    if op_name is not None:
        assert op_name in error.op.lower()
    assert error.supported == SUPPORTED_TORCH_OPS
    for supported in SUPPORTED_TORCH_OPS:
        assert supported in message


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_convert_refuses_before_calibration(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_statistics(*args: object, **kwargs: object) -> None:
        raise AssertionError("calibration must not start for an unsupported model")

    monkeypatch.setattr("snnconv.passes.pipeline.collect_activation_stats", no_statistics)
    model = UNSUPPORTED[case][0]()
    with pytest.raises(snnconv.UnsupportedOpError, match=UNSUPPORTED[case][2]):
        snnconv.convert(model, torch.rand(4, *model.in_shape), snnconv.Config(device="cpu"))


def test_batch_mixing_reshape_is_refused(import_path: Callable[..., Graph]) -> None:
    with pytest.raises(snnconv.UnsupportedOpError, match="batch axis"):
        import_model(import_path, BatchMixingReshape())


def test_data_dependent_control_flow_gives_a_clear_error() -> None:
    model = DataDependentBranch().eval()
    x = torch.randn(2, *model.in_shape)
    with pytest.raises(Exception) as export_failure:
        torch.export.export(model, (x,), strict=False)
    assert not isinstance(export_failure.value, snnconv.SnnconvError)
    with pytest.raises(snnconv.SnnconvError) as info:
        import_torch(model, x)
    message = str(info.value)
    assert "torch.export failed" in message
    assert "torch.fx tracing failed" in message


def test_fx_failure_falls_back_to_export(monkeypatch: pytest.MonkeyPatch) -> None:
    model = NestedNet().eval()
    x = torch.randn(2, *model.in_shape)
    expected = import_exported_program(torch.export.export(model, (x,), strict=False))

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tracing refused")

    monkeypatch.setattr(torch.fx, "symbolic_trace", refuse)
    graph = import_torch(model, x)
    assert kinds(graph) == kinds(expected)
    assert [n.name for n in graph.nodes] == [n.name for n in expected.nodes]
    check_parity(model, graph)


@pytest.mark.parametrize("name", ["lenet_avg", "lenet_max", "vgg_small", "inception_small"])
def test_fx_names_the_nodes_as_torch_export_does(name: str) -> None:
    """The fast path (torch.fx) and torch.export give the same layer names and sources, so
    results do not depend on which importer captured a net."""
    from snnconv.models import zoo

    factories = {
        "lenet_avg": lambda: zoo.lenet("avg"),
        "lenet_max": lambda: zoo.lenet("max"),
        "vgg_small": zoo.vgg_small,
        "inception_small": zoo.inception_small,
    }
    model = factories[name]().eval()
    x = torch.rand(2, 1, 28, 28)
    traced = import_fx(model, x)
    exported = import_exported_program(torch.export.export(model, (x,), strict=False))
    assert [n.name for n in traced.nodes] == [n.name for n in exported.nodes]
    assert [n.source for n in traced.nodes] == [n.source for n in exported.nodes]


def test_registry_refuses_duplicate_keys() -> None:
    registry: ConverterRegistry[Callable[..., None]] = ConverterRegistry("test")
    registry.register(nn.ReLU)(lambda: None)
    with pytest.raises(ValueError, match="already has converter"):
        registry.register(nn.ReLU)(lambda: None)
