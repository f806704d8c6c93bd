"""Run a graph as an ordinary (analog) network: for statistics, parity and ANN accuracy."""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import Tensor

from snnconv.errors import ShapeError
from snnconv.ir import Graph


def last_uses(graph: Graph) -> dict[str, int]:
    """For each node, the index of the last node that reads it (its own index if none)."""
    last = {n.name: i for i, n in enumerate(graph.nodes)}
    for i, n in enumerate(graph.nodes):
        for name in n.inputs:
            last[name] = i
    last[graph.output] = len(graph.nodes)
    return last


def check_input(graph: Graph, x: Tensor) -> None:
    """Raise :class:`ShapeError` if batch ``x`` does not fit the graph's input."""
    expected = tuple(graph.input.op.shape)  # type: ignore[attr-defined]
    if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise ShapeError(
            f"input batch has shape {list(x.shape)} but the model expects "
            f"[N, {', '.join(map(str, expected))}]. Check the dataset (channels, image size) "
            "and any resize/normalization options."
        )


@torch.no_grad()
def run_graph(
    graph: Graph, x: Tensor, capture: Collection[str] = ()
) -> tuple[Tensor, dict[str, Tensor]]:
    """Evaluate ``graph`` on batch ``x`` as an ANN (IF neurons act as ReLUs).

    Args:
        graph: The graph to run.
        x: Input batch ``[N, *input_shape]``.
        capture: Names of nodes whose outputs to return.

    Returns:
        The output tensor and a dict of the captured node outputs.
    """
    check_input(graph, x)
    last = last_uses(graph)
    values: dict[str, Tensor] = {graph.input.name: x}
    captured: dict[str, Tensor] = {}
    for i, node in enumerate(graph.nodes):
        if i > 0:
            values[node.name] = node.op.apply(*(values[name] for name in node.inputs))
        if node.name in capture:
            captured[node.name] = values[node.name]
        for name in node.inputs:
            if last[name] == i and name not in capture:
                del values[name]
    return values[graph.output], captured
