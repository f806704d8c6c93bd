"""Structural simplification: folding adaptive pools that only copy pixels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnconv import architectures as arch
from snnconv.importers import import_torch
from snnconv.ir import AdaptiveAvgPool2d, Graph, Linear
from snnconv.passes import infer_shapes
from snnconv.passes.pipeline import prepare_ann
from snnconv.passes.simplify import fold_replicating_pool
from snnconv.sim.reference import run_graph

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


class PoolHead(nn.Module):
    """conv → ReLU → adaptive pool to ``size`` → flatten → Linear(→ 5)."""

    def __init__(self, size: tuple[int, int], conv_out: tuple[int, int] = (1, 2)) -> None:
        super().__init__()
        # An 8 × 9 input and a kernel chosen so that the conv's map is ``conv_out``.
        self.conv = nn.Conv2d(2, 3, (8 - conv_out[0] + 1, 9 - conv_out[1] + 1))
        self.pool = nn.AdaptiveAvgPool2d(size)
        self.fc = nn.Linear(3 * size[0] * size[1], 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def imported(model: nn.Module, shape: tuple[int, ...] = (2, 8, 9)) -> tuple[Graph, torch.Tensor]:
    torch.manual_seed(0)
    model.eval()
    x = torch.randn(16, *shape)
    return infer_shapes(import_torch(model, x[:2])), x


def pools(graph: Graph) -> list[AdaptiveAvgPool2d]:
    return [n.op for n in graph.nodes if isinstance(n.op, AdaptiveAvgPool2d)]


@pytest.mark.parametrize(
    ("size", "conv_out", "repeats"),
    [((3, 4), (1, 2), (3, 2)), ((7, 7), (1, 1), (7, 7)), ((2, 6), (2, 3), (1, 2))],
    ids=["3x4-from-1x2", "7x7-from-1x1", "2x6-from-2x3"],
)
def test_copying_pool_folds_into_the_linear_layer(size, conv_out, repeats) -> None:
    torch.manual_seed(1)
    model = PoolHead(size, conv_out)
    graph, x = imported(model)
    folded = infer_shapes(fold_replicating_pool(graph))

    assert pools(folded) == []
    (linear,) = [n for n in folded.nodes if isinstance(n.op, Linear)]
    assert tuple(linear.op.weight.shape) == (5, 3 * conv_out[0] * conv_out[1])
    assert linear.meta["repeats_folded"] == repeats
    expected = model(x).detach()
    torch.testing.assert_close(run_graph(folded, x)[0], expected, rtol=1e-5, atol=1e-5)
    # The Linear layer's multiply-accumulates (one per weight) shrink by exactly kh·kw.
    (original,) = [n for n in graph.nodes if isinstance(n.op, Linear)]
    kh, kw = repeats
    assert original.op.weight.numel() == linear.op.weight.numel() * kh * kw


def test_identity_pool_is_removed() -> None:
    model = PoolHead((1, 2), (1, 2))
    graph, x = imported(model)
    folded = fold_replicating_pool(graph)
    assert pools(folded) == []
    torch.testing.assert_close(run_graph(folded, x)[0], model(x).detach())


@pytest.mark.parametrize(
    "model",
    [
        PoolHead((1, 1), (2, 3)),  # averages: a real pool
        PoolHead((3, 4), (2, 3)),  # 3 is not a multiple of 2: overlapping windows
    ],
    ids=["averaging", "not-a-multiple"],
)
def test_pools_that_average_stay(model) -> None:
    graph, x = imported(model)
    folded = fold_replicating_pool(graph)
    assert len(pools(folded)) == 1
    torch.testing.assert_close(run_graph(folded, x)[0], model(x).detach())


class SharedPool(nn.Module):
    """A copying pool also read by a second branch (``conv_branch``), or whose
    flatten also feeds a second Linear layer: neither is folded."""

    def __init__(self, conv_branch: bool) -> None:
        super().__init__()
        self.conv_branch = conv_branch
        self.conv = nn.Conv2d(2, 3, (8, 9))
        self.pool = nn.AdaptiveAvgPool2d((2, 2))
        self.fc = nn.Linear(12, 4)
        self.side = nn.Conv2d(3, 3, 1)
        self.fc2 = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(torch.relu(self.conv(x)))
        flat = torch.flatten(y, 1)
        side = torch.flatten(self.side(y), 1) if self.conv_branch else flat
        return self.fc(flat) + self.fc2(side)


@pytest.mark.parametrize("conv_branch", [True, False], ids=["pool-shared", "flatten-shared"])
def test_pool_with_other_users_stays(conv_branch) -> None:
    model = SharedPool(conv_branch)
    graph, x = imported(model)
    folded = fold_replicating_pool(graph)
    assert len(pools(folded)) == 1
    torch.testing.assert_close(run_graph(folded, x)[0], model(x).detach())


def test_vgg_at_32x32_has_a_512_input_classifier() -> None:
    """torchvision's VGG repeats its 1 × 1 map 7 × 7 times at 32 × 32: the pipeline folds it."""
    torch.manual_seed(0)
    model = arch.vgg11_bn(num_classes=10).eval()
    x = torch.rand(4, 3, 32, 32)
    graph = prepare_ann(import_torch(model, x[:2]))
    assert pools(graph) == []
    first = next(n for n in graph.nodes if isinstance(n.op, Linear))
    assert tuple(first.op.weight.shape) == (4096, 512)
    torch.testing.assert_close(run_graph(graph, x)[0], model(x).detach(), rtol=1e-4, atol=1e-4)
