"""Move a graph's parameters between devices and dtypes."""

from __future__ import annotations

import dataclasses

import torch

from snnconv.ir import Graph


def graph_to(graph: Graph, device: torch.device | str, dtype: torch.dtype = torch.float32) -> Graph:
    """A copy of ``graph`` whose parameters live on ``device`` as ``dtype``."""
    nodes = []
    for n in graph.nodes:
        tensors = n.op.tensors()
        if tensors:
            moved = {k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}
            n = dataclasses.replace(n, op=dataclasses.replace(n.op, **moved))
        nodes.append(n)
    return graph.replace_nodes(nodes)
