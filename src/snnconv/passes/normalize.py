"""Layer-wise weight normalization: rates in [0, 1] with few saturating neurons."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from snnconv.errors import UnsupportedOpError
from snnconv.ir import (
    Add,
    BinaryActivation,
    BinaryNeuron,
    Concat,
    Conv2d,
    Graph,
    IFNeuron,
    Input,
    Linear,
    Node,
    ReLU,
    Reshape,
    Scale,
)
from snnconv.passes.calibrate import LayerStats

_NORMALIZABLE = (
    "Conv2d",
    "Linear",
    "ReLU",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "MaxPool2d",
    "Reshape",
    "Concat",
    "Add",
)


def _single_user(graph: Graph, node: Node) -> Node | None:
    if node.name == graph.output:
        return None
    users = graph.users(node.name)
    return users[0] if len(users) == 1 else None


def _target_scale(
    graph: Graph, node: Node, stats: dict[str, LayerStats], output_scale: float
) -> float:
    """The scale λ a layer with a free output scale (conv, linear, add) should produce.

    Follows the layer's single consumer through scale-transparent ops (pooling,
    reshapes) to the activation that normalizes it (λ of that ReLU, or its
    bound if smaller), to a residual add (that add's target), or to the network
    output (``output_scale``); anything else keeps scale 1.
    """
    current = node
    while True:
        if current.name == graph.output:
            return output_scale
        user = _single_user(graph, current)
        if user is None:
            return 1.0
        if isinstance(user.op, (ReLU, IFNeuron)):
            lam = stats[user.name].scale if user.name in stats else 1.0
            bound = user.op.max_value
            return min(lam, bound) if bound is not None else lam
        if isinstance(user.op, Add):
            return _target_scale(graph, user, stats, output_scale)
        if isinstance(user.op, (BinaryActivation, BinaryNeuron)):
            return 1.0  # binary units are not normalized: their outputs never exceed 1
        if not user.op.scale_transparent or isinstance(user.op, Concat):
            return 1.0
        current = user


def _per_channel(scale: Tensor, node: Node, what: str) -> Tensor:
    """The per-channel values of a ``[C, H, W]`` scale that must be constant over H and W."""
    if scale.dim() < 2:
        return scale.reshape(-1)
    flat = scale.reshape(scale.shape[0], -1)
    if not torch.equal(flat.amax(1), flat.amin(1)):
        raise UnsupportedOpError(
            what,
            node.source,
            _NORMALIZABLE,
            "its input mixes differently normalized values within a channel",
        )
    return flat[:, 0]


def _uniform(scale: Tensor) -> float | None:
    value = float(scale.reshape(-1)[0])
    return value if bool((scale == value).all()) else None


def normalize(graph: Graph, stats: dict[str, LayerStats], *, output_scale: float = 1.0) -> Graph:
    """Rescale weights so that each ReLU layer's robust maximum λ maps to 1.

    Every node gets a scale s (one value per neuron): the factor by which its
    normalized output is smaller than the ANN's. The input has s = 1. A conv
    or linear layer whose output feeds ReLU layer r (possibly through pooling
    or reshapes) gets s = λ_r, with W ← W·s_in/λ_r per input channel and
    b ← b/λ_r; a bounded ReLU (ReLU6, clamp(0, c)) uses min(λ_r, c), so the
    IF neuron's saturation at one spike per step is exactly the bound when
    λ_r ≥ c. Pooling and reshapes pass scales through; a concatenation
    concatenates them, so each input block keeps its own λ and the next layer's
    weights absorb them per channel. The inputs of a residual add must share
    one scale: layers feeding it directly produce the add's target scale, and
    any other input (e.g. an identity shortcut from a spiking layer) is
    multiplied by a fixed :class:`~snnconv.ir.Scale` (the toolbox's fixed 1×1
    convolution). The output layer gets ``output_scale`` (1: outputs unchanged).
    Each node's scale is recorded in ``meta['scale']`` (its largest value).

    Raises:
        UnsupportedOpError: an op that normalization cannot scale through.
    """
    graph.require_shapes("normalize")
    rescale = _Rescaler(graph, stats, output_scale)
    for node in graph.nodes:
        rescale(node)
    return graph.replace_nodes(rescale.nodes)


class _Rescaler:
    """Walks the graph in order, giving each node its scale and rescaled op."""

    def __init__(self, graph: Graph, stats: dict[str, LayerStats], output_scale: float):
        self.graph, self.stats, self.output_scale = graph, stats, output_scale
        self.scales: dict[str, Tensor] = {}
        self.nodes: list[Node] = []

    def __call__(self, node: Node) -> None:
        op, inputs = node.op, list(node.inputs)
        shape = tuple(node.meta["shape"])
        if isinstance(op, Input):
            scale = torch.ones(shape, dtype=torch.float64)
        elif isinstance(op, (Conv2d, Linear)):
            op, scale = self._weighted(node, op, shape)
        elif isinstance(op, (ReLU, IFNeuron)):
            op, scale = self._activation(node, op)
        elif isinstance(op, (BinaryActivation, BinaryNeuron)):
            scale = torch.ones(shape, dtype=torch.float64)  # ±1 / 0-1 outputs, unscaled
        elif isinstance(op, Concat):
            scale = torch.cat([self.scales[i] for i in inputs], dim=op.dim - 1)
        elif isinstance(op, Add):
            inputs, scale = self._add(node, shape)
        elif isinstance(op, Reshape):
            scale = self.scales[inputs[0]].reshape(shape)
        elif op.scale_transparent:
            per_channel = _per_channel(self.scales[inputs[0]], node, op.kind)
            view = (-1,) + (1,) * (len(shape) - 1)
            scale = per_channel.reshape(view).expand(shape).clone()
        else:
            raise UnsupportedOpError(
                op.kind, node.source, _NORMALIZABLE, "normalization cannot scale through it"
            )
        self.scales[node.name] = scale
        meta = {**node.meta, "scale": float(scale.max()) if scale.numel() else 1.0}
        self.nodes.append(dataclasses.replace(node, op=op, inputs=tuple(inputs), meta=meta))

    def _weighted(
        self, node: Node, op: Conv2d | Linear, shape: tuple[int, ...]
    ) -> tuple[Conv2d | Linear, Tensor]:
        """W ← W·s_in/λ per input channel, b ← b/λ, for the λ its activation needs."""
        t = _target_scale(self.graph, node, self.stats, self.output_scale)
        if isinstance(op, Conv2d):
            s_in = _per_channel(self.scales[node.inputs[0]], node, op.kind)
            out_ch, in_per_group = op.weight.shape[:2]
            factor = s_in.reshape(op.groups, in_per_group).repeat_interleave(out_ch // op.groups, 0)
            w = op.weight.double() * factor[:, :, None, None] / t
        else:
            s_in = self.scales[node.inputs[0]].reshape(-1)
            w = op.weight.double() * s_in[None, :] / t
        b = None if op.bias is None else (op.bias.double() / t).float()
        return dataclasses.replace(op, weight=w.float(), bias=b), torch.full(
            shape, t, dtype=torch.float64
        )

    def _activation(self, node: Node, op: ReLU | IFNeuron) -> tuple[ReLU | IFNeuron, Tensor]:
        """A ReLU keeps its input's scale; a bound c becomes c/λ."""
        scale = self.scales[node.inputs[0]]
        if op.max_value is not None:
            s = _uniform(scale)
            if s is None:
                raise UnsupportedOpError(
                    "bounded ReLU", node.source, _NORMALIZABLE, "its input scale is not uniform"
                )
            op = dataclasses.replace(op, max_value=op.max_value / s)
        return op, scale

    def _add(self, node: Node, shape: tuple[int, ...]) -> tuple[list[str], Tensor]:
        """Inputs of another scale than the add's target pass through a fixed Scale."""
        t = _target_scale(self.graph, node, self.stats, self.output_scale)
        rewired = []
        for k, name in enumerate(node.inputs):
            s_in = self.scales[name]
            if bool(torch.allclose(s_in, torch.full_like(s_in, t), rtol=1e-12, atol=0)):
                rewired.append(name)
                continue
            uniform = _uniform(s_in)
            factor = torch.tensor(uniform / t) if uniform is not None else s_in / t
            scale_node = Node(
                f"{node.name}_scale{k}",
                Scale(factor.float()),
                (name,),
                {"source": node.source, "shape": shape, "scale": t},
            )
            self.nodes.append(scale_node)
            rewired.append(scale_node.name)
        return rewired, torch.full(shape, t, dtype=torch.float64)
