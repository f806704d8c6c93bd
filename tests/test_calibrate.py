"""Calibration statistics: λ is exactly numpy's percentile of the pooled positive activations."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from models import tiny_cnn
from snnconv import ConfigError, NumericalError
from snnconv.importers import import_torch
from snnconv.ir import Graph, Input, Node, ReLU
from snnconv.passes import Percentile, collect_activation_stats, prepare_ann
from snnconv.passes.calibrate import CACHE_BYTES, activation_nodes
from snnconv.sim.reference import run_graph

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

#: Forces several levels of the multi-pass search (no cache of the first pass's values).
REFINE = {"bins": 4, "collect_limit": 16, "cache_bytes": 0}


def relu_graph(features: int) -> Graph:
    """Input → ReLU: the layer's activations are exactly max(x, 0)."""
    return Graph([Node("input", Input((features,))), Node("r", ReLU(), ("input",))], output="r")


def reference(values: torch.Tensor, p: float) -> float:
    positive = values[values > 0].double().numpy()
    return float(np.percentile(positive, p, method="linear"))


def assert_exact(actual: float, expected: float) -> None:
    assert actual == pytest.approx(expected, rel=1e-9, abs=0), (actual, expected)


class CountingBatches:
    """A re-iterable of batches that counts the passes actually read."""

    def __init__(self, x: torch.Tensor, batch: int):
        self.x, self.batch, self.passes = x, batch, 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i, b in enumerate(self.x.split(self.batch)):
            self.passes += i == 0
            yield b


DATASETS = {
    "normal": lambda g: torch.randn(40, 30, generator=g),
    "ties": lambda g: torch.randint(-3, 6, (40, 30), generator=g) / 4.0,
    "boundaries": lambda g: torch.randint(-8, 9, (40, 30), generator=g) / 8.0,  # on bucket edges
    "mostly-one-value": lambda g: torch.where(
        torch.rand(40, 30, generator=g) < 0.7, 0.5, torch.randn(40, 30, generator=g)
    ),
    "sparse-heavy-tail": lambda g: torch.relu(torch.randn(40, 30, generator=g) - 1.5).pow(3),
}


@pytest.mark.parametrize("p", [0.5, 50.0, 99.0, 99.9, 100.0])
@pytest.mark.parametrize("data", sorted(DATASETS))
@pytest.mark.parametrize("search", ["default", "refine"])
def test_lambda_equals_numpy_percentile(data: str, p: float, search: str) -> None:
    x = DATASETS[data](torch.Generator().manual_seed(7))
    kwargs = REFINE if search == "refine" else {}
    stats = collect_activation_stats(relu_graph(30), x, Percentile(p), batch_size=7, **kwargs)
    s = stats["r"]
    assert_exact(s.scale, reference(x, p))
    assert s.positive == int((x > 0).sum())
    assert s.total == x.numel()
    assert s.max == float(x.max())
    if p < 100:  # the first level's histogram covers every positive value once
        assert sum(s.histogram) == s.positive


@given(
    values=st.lists(st.integers(-4, 12), min_size=1, max_size=120),
    divisor=st.sampled_from([1.0, 3.0, 8.0, 1000.0]),
    p=st.floats(0.0, 100.0, exclude_min=True),
    bins=st.integers(2, 6),
    collect_limit=st.integers(1, 12),
    batch_size=st.integers(1, 50),
    cached=st.booleans(),
)
def test_lambda_is_exact_for_any_data_property(
    values: list[int],
    divisor: float,
    p: float,
    bins: int,
    collect_limit: int,
    batch_size: int,
    cached: bool,
) -> None:
    x = (torch.tensor(values, dtype=torch.float32) / divisor).reshape(-1, 1)
    stats = collect_activation_stats(
        relu_graph(1),
        x,
        Percentile(p),
        batch_size=batch_size,
        bins=bins,
        collect_limit=collect_limit,
        cache_bytes=CACHE_BYTES if cached else 0,
    )
    if not bool((x > 0).any()):
        assert stats["r"].scale == 1.0 and stats["r"].positive == 0
    else:
        assert_exact(stats["r"].scale, reference(x, p))


@pytest.fixture(scope="module")
def cnn_graph() -> Graph:
    torch.manual_seed(0)
    model = tiny_cnn().eval()
    return prepare_ann(import_torch(model, torch.randn(2, 1, 8, 8)))


@pytest.mark.parametrize("p", [50.0, 99.9, 100.0])
def test_lambda_per_layer_of_a_cnn(cnn_graph: Graph, p: float) -> None:
    x = torch.rand(12, 1, 8, 8)
    layers = activation_nodes(cnn_graph)
    assert len(layers) == 3
    # the reference runs the same batches of 5: a convolution's float32 result may depend on
    # the batch size (the backend picks its algorithm per shape)
    batches = [run_graph(cnn_graph, b, capture=layers)[1] for b in x.split(5)]
    acts = {name: torch.cat([b[name] for b in batches]) for name in layers}
    for kwargs in ({}, {"bins": 8, "collect_limit": 64}):
        stats = collect_activation_stats(cnn_graph, x, Percentile(p), batch_size=5, **kwargs)
        assert set(stats) == set(layers)
        for name in layers:
            assert_exact(stats[name].scale, reference(acts[name], p))


def test_inactive_layer_gets_scale_one() -> None:
    x = -torch.rand(5, 3)
    s = collect_activation_stats(relu_graph(3), x)["r"]
    assert (s.scale, s.positive, s.total, s.max) == (1.0, 0, 15, 0.0)


def test_data_forms_give_the_same_statistics() -> None:
    x = torch.randn(20, 6)
    y = torch.zeros(20, dtype=torch.long)
    forms = {
        "tensor": x,
        "list of batches": list(x.split(6)),
        "list of (x, y)": [(a, b) for a, b in zip(x.split(6), y.split(6), strict=True)],
        "dataset": TensorDataset(x, y),
        "dataloader": DataLoader(TensorDataset(x, y), batch_size=4),
    }
    expected = reference(x, 90.0)
    for name, data in forms.items():
        s = collect_activation_stats(relu_graph(6), data, Percentile(90.0), batch_size=3)["r"]
        assert_exact(s.scale, expected), name


def test_number_of_passes() -> None:
    x = torch.randn(30, 4)
    data = CountingBatches(x, 7)
    collect_activation_stats(relu_graph(4), data, Percentile(100.0))
    assert data.passes == 1  # max-norm needs only the max
    data.passes = 0
    collect_activation_stats(relu_graph(4), data, Percentile(99.0))
    assert data.passes == 1  # the positive values fit: selected from the first pass
    data.passes = 0
    collect_activation_stats(relu_graph(4), data, Percentile(99.0), cache_bytes=0)
    assert data.passes == 3  # max, histogram, collect
    data.passes = 0
    collect_activation_stats(relu_graph(4), data, Percentile(99.0), cache_bytes=200)
    assert data.passes == 3  # more than 200 bytes of positive values: the search


# -- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("empty", [torch.empty(0, 3), [], [torch.empty(0, 3)]], ids=str)
def test_empty_calibration_is_a_config_error(empty: object) -> None:
    with pytest.raises(ConfigError, match="empty"):
        collect_activation_stats(relu_graph(3), empty)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_activations_are_a_numerical_error(bad: float) -> None:
    x = torch.rand(4, 3)
    x[2, 1] = bad
    with pytest.raises(NumericalError, match="'r'"):
        collect_activation_stats(relu_graph(3), x)


def test_one_shot_generator_is_a_config_error() -> None:
    batches = (torch.rand(2, 3) for _ in range(3))
    with pytest.raises(ConfigError, match="one-shot"):
        collect_activation_stats(relu_graph(3), batches)


def test_non_tensor_batches_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tensors"):
        collect_activation_stats(relu_graph(3), [[1.0, 2.0, 3.0]])
    with pytest.raises(ConfigError, match="tensor, a Dataset or a DataLoader"):
        collect_activation_stats(relu_graph(3), 42)


@pytest.mark.parametrize("p", [0.0, -1.0, 100.0001, float("nan")])
def test_percentile_out_of_range_is_a_config_error(p: float) -> None:
    with pytest.raises(ConfigError, match=r"\(0, 100\]"):
        Percentile(p)


def pooled_graph() -> Graph:
    """input → ReLU a, ReLU b → concat → max pool 3x3/1 (padding 1); b also feeds a second pool."""
    from snnconv.ir import Concat, MaxPool2d

    pool = MaxPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    small = MaxPool2d(kernel_size=(2, 2), stride=(2, 2))
    nodes = [
        Node("input", Input((2, 6, 6))),
        Node("a", ReLU(), ("input",)),
        Node("b", ReLU(), ("input",)),
        Node("cat", Concat(1), ("a", "b")),
        Node("pool", pool, ("cat",)),
        Node("pool_b", small, ("b",)),
    ]
    from snnconv.passes.shapes import infer_shapes

    graph = Graph(nodes, output="pool")
    return infer_shapes(graph)


def test_max_pooled_layers_follow_concatenations() -> None:
    from snnconv.passes.calibrate import max_pooled_layers

    found = max_pooled_layers(pooled_graph())
    assert sorted(found) == ["a", "b"]
    assert [op.kernel_size for op in found["a"]] == [(3, 3)]
    assert sorted(op.kernel_size for op in found["b"]) == [(2, 2), (3, 3)]


@pytest.mark.parametrize("p", [99.0, 100.0])
def test_pool_aware_lambda_is_the_percentile_of_the_pooled_values(p: float) -> None:
    import torch.nn.functional as F

    from snnconv.passes.calibrate import max_pooled_layers

    graph = pooled_graph()
    torch.manual_seed(0)
    x = torch.randn(40, 2, 6, 6)
    plain = collect_activation_stats(graph, x, Percentile(p), **REFINE)
    aware = collect_activation_stats(
        graph, x, Percentile(p), pooled=max_pooled_layers(graph), **REFINE
    )
    relu = x.clamp(min=0)
    own = reference(relu, p)
    by3 = reference(F.max_pool2d(relu, 3, 1, 1), p)
    by2 = reference(F.max_pool2d(relu, 2, 2), p)
    assert_exact(plain["a"].scale, own)
    assert plain["a"].pooled_scale is None
    # The pooled values are the upper part of the distribution (same maximum at p = 100).
    assert by3 > own if p < 100 else by3 == own
    assert_exact(aware["a"].scale, max(own, by3))
    assert_exact(aware["a"].pooled_scale, by3)  # type: ignore[arg-type]
    assert_exact(aware["b"].scale, max(own, by3, by2))
    assert aware["a"].histogram == plain["a"].histogram  # the layer's own values


@pytest.mark.parametrize(
    "values",
    [
        torch.rand(100_000, generator=torch.Generator().manual_seed(0)) ** 8,  # a long tail
        torch.full((5_000,), 0.25),  # all equal: one bucket holds everything
        torch.arange(1, 2049, dtype=torch.float32).repeat(7) / 2048,  # on every bucket edge
        torch.cat([torch.full((9_000,), 3.0), torch.tensor([4.0] * 3)]),  # ties at the top
    ],
    ids=["tail", "equal", "edges", "ties"],
)
def test_largest_from_the_histogram_is_topk_exactly(values: torch.Tensor) -> None:
    from snnconv.passes.calibrate import _largest

    maximum = float(values.max())
    histogram = torch.histc(values, 2048, 0.0, maximum)
    for k in (1, 2, 3, 10, 101, 4_999):
        assert torch.equal(_largest(values, k, histogram, maximum), torch.topk(values, k).values), k
