"""Layer-wise weight normalization: rates in [0, 1] with few saturating neurons."""

from __future__ import annotations

import dataclasses

from snnconv.errors import UnsupportedOpError
from snnconv.ir import Conv2d, Graph, IFNeuron, Input, Linear, Node, ReLU
from snnconv.passes.calibrate import LayerStats

_NORMALIZABLE = ("Conv2d", "Linear", "ReLU", "AvgPool2d", "AdaptiveAvgPool2d", "Reshape")


def _activation_after(graph: Graph, node: Node) -> str | None:
    """The ReLU that consumes ``node``'s output through scale-transparent ops, if unique."""
    current = node
    while True:
        users = graph.users(current.name)
        if len(users) != 1:
            return None
        user = users[0]
        if isinstance(user.op, (ReLU, IFNeuron)):
            return user.name
        if not user.op.scale_transparent:
            return None
        current = user


def normalize(graph: Graph, stats: dict[str, LayerStats]) -> Graph:
    """Rescale weights so that each ReLU layer's robust maximum λ maps to 1.

    For a conv/linear layer l whose output feeds ReLU layer r (possibly through
    pooling or reshapes): W ← W·λ_in/λ_r and b ← b/λ_r, where λ_in is the scale
    of the layer's input (1 for the network input). A layer that feeds no ReLU
    (the output layer) keeps λ = 1, so the network's output is unchanged and
    its biases stay consistent with its rate inputs. Each node's scale is
    recorded in ``meta['scale']``.

    Raises:
        UnsupportedOpError: an op that normalization cannot scale through.
    """
    scale: dict[str, float] = {}
    nodes: list[Node] = []
    for node in graph.nodes:
        op = node.op
        if isinstance(op, Input):
            scale[node.name] = 1.0
        elif isinstance(op, (Conv2d, Linear)):
            s_in = scale[node.inputs[0]]
            target = _activation_after(graph, node)
            s_out = stats[target].scale if target is not None and target in stats else 1.0
            op = dataclasses.replace(
                op,
                weight=op.weight * (s_in / s_out),
                bias=None if op.bias is None else op.bias / s_out,
            )
            scale[node.name] = s_out
        elif op.scale_transparent or isinstance(op, (ReLU, IFNeuron)):
            scale[node.name] = scale[node.inputs[0]]
        else:
            raise UnsupportedOpError(
                op.kind, node.source, _NORMALIZABLE, "normalization cannot scale through it"
            )
        nodes.append(
            dataclasses.replace(node, op=op, meta={**node.meta, "scale": scale[node.name]})
        )
    return graph.replace_nodes(nodes)
