"""Shape inference: record each node's per-sample output shape in ``meta['shape']``."""

from __future__ import annotations

import dataclasses

import torch

from snnconv.errors import ShapeError
from snnconv.ir import Graph
from snnconv.sim.reference import run_graph


def infer_shapes(graph: Graph) -> Graph:
    """Run the graph once on a zero sample and record every node's output shape.

    Raises:
        ShapeError: if a layer rejects its input shape (naming the layer).
    """
    names = [n.name for n in graph.nodes]
    x = torch.zeros((1, *graph.input.op.shape))  # type: ignore[attr-defined]
    try:
        _, values = run_graph(graph, x, capture=names)
    except RuntimeError as error:
        raise ShapeError(
            f"the model's layers do not fit its input shape {list(x.shape[1:])}: {error}"
        ) from error
    nodes = [
        dataclasses.replace(n, meta={**n.meta, "shape": tuple(values[n.name].shape[1:])})
        for n in graph.nodes
    ]
    return graph.replace_nodes(nodes)
