"""Remove ops that do nothing at inference time."""

from __future__ import annotations

import dataclasses

from snnconv.ir import Dropout, Graph, Identity, ReLU, Reshape


def remove_dropout(graph: Graph) -> Graph:
    """Remove Dropout and Identity nodes, a ReLU applied to a ReLU's output, and
    reshapes that are undone or chained (x.flatten(1).view(n, -1) is one reshape)."""
    changed = True
    while changed:
        changed = False
        for node in graph.nodes:
            op = node.op
            if isinstance(op, (Dropout, Identity)):
                graph, changed = graph.bypass(node.name), True
                break
            if not node.inputs:
                continue
            src = graph.node(node.inputs[0])
            if isinstance(op, ReLU) and isinstance(src.op, ReLU):
                graph, changed = graph.bypass(node.name), True
                break
            if (
                isinstance(op, Reshape)
                and isinstance(src.op, Reshape)
                and len(graph.users(src.name)) == 1
            ):
                merged = dataclasses.replace(node, inputs=src.inputs)
                nodes = [merged if n is node else n for n in graph.nodes if n is not src]
                graph, changed = graph.replace_nodes(nodes), True
                break
            shape = src.meta.get("shape")
            if isinstance(op, Reshape) and shape is not None and tuple(shape) == op.shape:
                graph, changed = graph.bypass(node.name), True
                break
    return graph
