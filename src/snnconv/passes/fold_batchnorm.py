"""Fold inference-mode batch normalization into the preceding conv/linear layer."""

from __future__ import annotations

import dataclasses

import torch

from snnconv.ir import BatchNorm, BinaryActivation, Conv2d, Graph, Linear, Node


def fold_batchnorm(graph: Graph) -> Graph:
    """Remove every :class:`BatchNorm` node; the network computes the same function.

    A batch-norm that feeds a binary activation (sign, Heaviside) is first
    divided by its gain's magnitude |a| (both activations are invariant to
    positive scaling), so only sign(a) multiplies the weights and binary
    weights stay binary; a channel with a = 0 becomes the constant sign(c).

    A batch-norm whose input is a Conv2d or Linear used only by it folds into
    that layer: with a = γ/√(var + ε), W̃ = W·a (per output channel) and
    b̃ = β + (b − μ)·a. Any other batch-norm becomes an equivalent per-channel
    affine layer: a depthwise 1×1 Conv2d (4-D inputs) or a diagonal Linear
    (2-D inputs).
    """
    for node in list(graph.nodes):
        if not isinstance(node.op, BatchNorm):
            continue
        bn: BatchNorm = node.op
        a, c = (t.double() for t in bn.scale_shift())
        users = graph.users(node.name)
        if len(users) == 1 and isinstance(users[0].op, BinaryActivation):
            # sign(a·y + c) = sign(sign(a)·y + c/|a|) and H likewise: only the sign of the
            # per-channel gain reaches the weights, so binary (±1) weights stay binary; the
            # rest becomes a bias (a threshold shift), with the comparison flipped where a < 0.
            magnitude = a.abs()
            nonzero = magnitude > 0
            c = torch.where(nonzero, c / torch.where(nonzero, magnitude, 1.0), c)
            a = torch.sign(a)
        # Read the inputs from the current graph: a fold before this node may have rewired them.
        (src_name,) = graph.node(node.name).inputs
        src = graph.node(src_name)
        if isinstance(src.op, (Conv2d, Linear)) and len(graph.users(src_name)) == 1:
            w = src.op.weight.double()
            shape = (-1,) + (1,) * (w.dim() - 1)
            bias = src.op.bias.double() if src.op.bias is not None else torch.zeros_like(a)
            folded = dataclasses.replace(
                src.op, weight=(w * a.reshape(shape)).float(), bias=(bias * a + c).float()
            )
            graph = graph.with_op(src_name, folded).bypass(node.name)
        else:
            graph = graph.with_op(node.name, _affine_layer(node, a, c))
    return graph


def _affine_layer(node: Node, a: torch.Tensor, c: torch.Tensor) -> Conv2d | Linear:
    shape = node.meta.get("shape")
    channels = a.shape[0]
    if shape is not None and len(shape) == 1:
        return Linear(torch.diag(a).float(), c.float())
    return Conv2d(a.reshape(channels, 1, 1, 1).float(), c.float(), groups=channels)
