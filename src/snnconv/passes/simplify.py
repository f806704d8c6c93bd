"""Remove ops that do nothing at inference time."""

from __future__ import annotations

import dataclasses

from snnconv.errors import UnsupportedOpError
from snnconv.ir import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    Dropout,
    Graph,
    Identity,
    Linear,
    MaxPool2d,
    ReLU,
    Reshape,
    Softmax,
)


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


def remove_output_softmax(graph: Graph) -> Graph:
    """Remove a Softmax/LogSoftmax over the classes at the network's output.

    Both are monotonic, so the class ranking is that of their input; the
    readouts work on the output layer's currents. The removal is recorded in
    the new output node's ``meta['output_activation']``. A softmax anywhere
    else is left for normalization to refuse.
    """
    out = graph.output_node
    if not isinstance(out.op, Softmax):
        return graph
    rank = len(out.meta.get("shape", ())) + 1
    if out.op.dim % rank != rank - 1 or rank != 2:
        raise UnsupportedOpError(
            "softmax",
            out.source,
            ("Softmax/LogSoftmax over the class axis of [N, classes] outputs",),
            f"it normalizes over axis {out.op.dim} of a {rank}-D output",
        )
    kind = "log_softmax" if out.op.log else "softmax"
    graph = graph.bypass(out.name)
    return graph.with_op(graph.output, graph.output_node.op, output_activation=kind)


def replace_maxpool(graph: Graph) -> Graph:
    """Replace every MaxPool2d by an AvgPool2d with the same windows.

    This changes the ANN (its accuracy must be measured again); the spiking
    network then needs no max-pool gate. Padding is excluded from the averages.
    """
    nodes = []
    for n in graph.nodes:
        if isinstance(n.op, MaxPool2d):
            if n.op.dilation != (1, 1):
                raise UnsupportedOpError(
                    "MaxPool2d(dilation>1)",
                    n.source,
                    ("MaxPool2d without dilation",),
                    "average pooling has no dilation; use the max-pool gate instead",
                )
            pool = AvgPool2d(
                n.op.kernel_size, n.op.stride, n.op.padding, n.op.ceil_mode, False, None
            )
            n = dataclasses.replace(n, op=pool, meta={**n.meta, "replaced": "MaxPool2d"})
        nodes.append(n)
    return graph.replace_nodes(nodes)


def fold_replicating_pool(graph: Graph) -> Graph:
    """Remove adaptive average pools that only copy pixels.

    An ``AdaptiveAvgPool2d`` whose output size equals its input's is the
    identity and is removed. One whose output size is a whole multiple
    (kh, kw) of its input's repeats every pixel kh × kw times (each window is
    one pixel). When it feeds only a flatten that feeds only a ``Linear``
    layer, the copies fold into that layer: W̃[:, c, i, j] = Σ W[:, c, i·kh + a,
    j·kw + b] over a < kh, b < kw, and the flatten reads the pool's input.
    The network computes the same function (up to float rounding) with kh·kw
    times fewer multiply-accumulates in that layer: torchvision's VGG at
    32 × 32 repeats its 1 × 1 map 7 × 7 times before a 25,088-input Linear,
    which becomes a 512-input one (49× fewer operations, for the ANN as for
    the spiking network). Needs one sample's ``shape`` in ``meta``
    (``infer_shapes``); a pool without it is left alone.
    """
    for node in graph.nodes:
        if not isinstance(node.op, AdaptiveAvgPool2d):
            continue
        shape = graph.node(node.inputs[0]).meta.get("shape")
        if shape is None or len(shape) != 3:
            continue
        channels, height, width = (int(s) for s in shape)
        out_h, out_w = node.op.output_size
        if (out_h, out_w) == (height, width):
            return fold_replicating_pool(graph.bypass(node.name))
        if out_h % height or out_w % width:
            continue
        users = graph.users(node.name)
        if len(users) != 1:
            continue
        flatten = users[0]
        consumers = graph.users(flatten.name)
        if (
            not isinstance(flatten.op, Reshape)
            or flatten.op.shape != (channels * out_h * out_w,)
            or len(consumers) != 1
        ):
            continue
        linear = consumers[0].op
        if not isinstance(linear, Linear):
            continue
        kh, kw = out_h // height, out_w // width
        weight = linear.weight.double()
        weight = weight.reshape(weight.shape[0], channels, height, kh, width, kw).sum((3, 5))
        folded = dataclasses.replace(linear, weight=weight.reshape(weight.shape[0], -1).float())
        graph = graph.with_op(consumers[0].name, folded, repeats_folded=(kh, kw))
        flat = (channels * height * width,)
        graph = graph.with_op(flatten.name, Reshape(flat), shape=flat)
        return fold_replicating_pool(graph.bypass(node.name))
    return graph
