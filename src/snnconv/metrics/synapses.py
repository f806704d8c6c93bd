"""Distinct synapses of the maps between spiking layers, exactly and without enumerating them.

Between two spiking layers (or a spiking layer and the readout) the ops that
carry spikes compose into one linear map, and a spiking network deploys that
map composed: each (source neuron, target neuron) pair it connects is one
synapse with one summed weight, and one accumulate per spike. A source
neuron's fan-out is therefore the number of **distinct** targets it reaches
structurally (through any non-zero pattern of the ops' shapes, whatever the
weights' values), not the number of paths: a conv 5×5 followed by a conv 3×3
reaches a 7×7 window of each output channel once, not 5·5·3·3 times.

The count is exact and cheap because every supported op relates neurons as a
*product*: a convolution relates input channel c to the output channels of
its group, input row y to the output rows whose window covers it, and column
x likewise; pooling does the same with an identity on channels. Relations
compose factor by factor, so the set a source neuron (c, y, x) reaches at a
node is a union of *boxes* ``channels[c] × rows[y] × cols[x]``, one per way
through residual adds, each held as three small boolean matrices (source
index × node index). A linear layer maps any non-empty box to all its
outputs; concatenation places a box in its block of the output; a residual
add unions the boxes of its inputs, whose size is taken by inclusion and
exclusion (an intersection of boxes is the box of the intersections). So a
source of any size costs a few products of matrices no larger than its
channel count or image side.

:func:`brute_force_fan_out` counts the same thing by pushing one-hot inputs
through the ops with every weight one, the reference of the tests; it is the
fall-back for the rare composition the box algebra does not express (a
reshape other than a flatten, a scale with a non-channel zero pattern).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from snnconv.ir import (
    SPIKING_OPS,
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    BatchNorm,
    BinaryActivation,
    Concat,
    Conv2d,
    Dropout,
    Graph,
    Identity,
    Linear,
    ReLU,
    Reshape,
    Scale,
    Softmax,
)

__all__ = [
    "COMPOSABLE",
    "BoxAlgebraError",
    "brute_force_fan_out",
    "distinct_fan_out",
    "structural_map",
]

#: Ops a spike can pass through on its way to the next spiking layer.
COMPOSABLE = (
    "Conv2d",
    "Linear",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "Reshape",
    "Concat",
    "Add",
    "Scale",
    "Identity",
    "Dropout",
)

#: One-to-one maps of one sample's neurons (BatchNorm/ReLU etc.: ANN leftovers in a graph).
_IDENTITY_OPS = (Identity, Dropout, BatchNorm, ReLU, Softmax, BinaryActivation)

#: Boxes at one node beyond which inclusion–exclusion (2^k terms) is not attempted.
_MAX_BOXES = 10


class BoxAlgebraError(Exception):
    """A composition the box algebra cannot express (the caller falls back to brute force)."""


# --- structural maps (every synapse weighted one): the brute-force reference ----------------


def _window_bounds(size: int, out: int) -> list[tuple[int, int]]:
    """Start and end of each adaptive-pooling window along one axis (PyTorch's rule)."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _adaptive_sum(x: Tensor, output_size: tuple[int, int]) -> Tensor:
    """Sum (not mean) over each adaptive-pooling window: adaptive mean × window area."""
    h, w = x.shape[-2:]
    rows = torch.tensor([e - s for s, e in _window_bounds(h, output_size[0])], dtype=x.dtype)
    cols = torch.tensor([e - s for s, e in _window_bounds(w, output_size[1])], dtype=x.dtype)
    return F.adaptive_avg_pool2d(x, output_size) * rows[:, None] * cols[None, :]


def structural_map(op: object, inputs: list[Tensor]) -> Tensor:
    """The op with every synapse weighted one (its output counts paths from its inputs).

    Raises:
        TypeError: The op is not one a spike can pass through (see :data:`COMPOSABLE`).
    """
    x = inputs[0]
    if isinstance(op, Conv2d):
        ones = torch.ones(op.weight.shape, dtype=x.dtype)
        return F.conv2d(x, ones, None, op.stride, op.padding, op.dilation, op.groups)
    if isinstance(op, Linear):
        return F.linear(x, torch.ones(op.weight.shape, dtype=x.dtype))
    if isinstance(op, AvgPool2d):
        return F.avg_pool2d(
            x, op.kernel_size, op.stride, op.padding, op.ceil_mode, True, divisor_override=1
        )
    if isinstance(op, AdaptiveAvgPool2d):
        return _adaptive_sum(x, op.output_size)
    if isinstance(op, Reshape):
        return x.reshape(x.shape[0], *op.shape)
    if isinstance(op, Concat):
        return torch.cat(inputs, dim=op.dim)
    if isinstance(op, Add):
        out = inputs[0]
        for other in inputs[1:]:
            out = out + other
        return out
    if isinstance(op, Scale):
        return x * (op.factor.cpu() != 0).to(x.dtype)
    if isinstance(op, _IDENTITY_OPS):
        return x
    raise TypeError(type(op).__name__)


def _shape(graph: Graph, name: str) -> tuple[int, ...]:
    return tuple(int(d) for d in graph.node(name).meta["shape"])


def brute_force_fan_out(
    graph: Graph, source: str, stops: set[str], *, batch: int = 256
) -> tuple[Tensor, set[str]]:
    """Distinct targets of every neuron of ``source``, by one-hot probes (the reference).

    Each neuron's one-hot input is pushed through the ops between it and the
    next spiking layers with every weight one; its fan-out is the number of
    non-zero elements at the spiking layers' inputs and at the graph output.

    Args:
        graph: A spiking graph with shapes.
        source: The spike source.
        stops: Nodes where spikes stop (the other spike sources: their
            inputs are not targets, their outputs are their own sources).
        batch: Probes per pass.

    Returns:
        The fan-out (float64, the source's shape) and the target nodes reached.

    Raises:
        TypeError: An op on the way has no structural map.
    """
    shape = _shape(graph, source)
    neurons = math.prod(shape)
    counts = torch.zeros(neurons, dtype=torch.float64)
    targets: set[str] = set()
    for start in range(0, neurons, batch):
        size = min(batch, neurons - start)
        probe = torch.zeros(size, neurons, dtype=torch.float64)
        probe[torch.arange(size), torch.arange(start, start + size)] = 1.0
        values = {source: probe.reshape(size, *shape)}
        for node in graph.nodes:
            if node.name == source or not any(i in values for i in node.inputs):
                continue
            if isinstance(node.op, SPIKING_OPS):
                reached = values[node.inputs[0]].reshape(size, -1) != 0
                counts[start : start + size] += reached.sum(1)
                targets.add(node.name)
                continue
            if node.name in stops:
                continue
            inputs = [
                values[i]
                if i in values
                else torch.zeros(size, *_shape(graph, i), dtype=probe.dtype)
                for i in node.inputs
            ]
            values[node.name] = structural_map(node.op, inputs)
            if node.name == graph.output:
                counts[start : start + size] += (values[node.name].reshape(size, -1) != 0).sum(1)
                targets.add(node.name)
    return counts.reshape(shape), targets


# --- the box algebra ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Box:
    """Source neuron (c, y, x) reaches ``channels[c] × rows[y] × cols[x]`` at a node.

    ``channels`` is boolean [C_source, C_node], ``rows`` [H_source, H_node] and
    ``cols`` [W_source, W_node]; 1-D tensors are (F, 1, 1). ``flat`` marks a
    flattened view of a 3-D node (only its size and emptiness are used);
    ``block`` tells apart flattened boxes placed in different blocks of a
    concatenation, which never intersect.
    """

    channels: Tensor
    rows: Tensor
    cols: Tensor
    flat: bool = False
    block: tuple[int, ...] = ()

    def key(self) -> tuple[object, ...]:
        """Identity of the set, to drop duplicate boxes."""
        return (
            self.flat,
            self.block,
            *((*m.shape, m.to(torch.uint8).numpy().tobytes()) for m in self.factors),
        )

    @property
    def factors(self) -> tuple[Tensor, Tensor, Tensor]:
        return (self.channels, self.rows, self.cols)


def _compose(relation: Tensor, step: Tensor) -> Tensor:
    """Boolean product: reach through ``relation`` then ``step``."""
    return (relation.to(torch.float32) @ step.to(torch.float32)) > 0


def _window_relation(
    size_in: int, size_out: int, kernel: int, stride: int, padding: int, dilation: int
) -> Tensor:
    """[size_in, size_out]: input index i lies in the window of output o (padding excluded)."""
    out = torch.arange(size_out)[:, None]
    taps = torch.arange(kernel)[None, :]
    index = out * stride - padding + taps * dilation
    valid = (index >= 0) & (index < size_in)
    relation = torch.zeros(size_in, size_out, dtype=torch.bool)
    relation[index[valid], out.expand_as(index)[valid]] = True
    return relation


def _adaptive_relation(size_in: int, size_out: int) -> Tensor:
    relation = torch.zeros(size_in, size_out, dtype=torch.bool)
    for o, (start, end) in enumerate(_window_bounds(size_in, size_out)):
        relation[start:end, o] = True
    return relation


def _groups_relation(c_in: int, c_out: int, groups: int) -> Tensor:
    return (torch.arange(c_in)[:, None] // (c_in // groups)) == (
        torch.arange(c_out)[None, :] // (c_out // groups)
    )


def _as_3d(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if len(shape) == 1:
        return (shape[0], 1, 1)
    raise BoxAlgebraError(f"a {len(shape)}-D tensor")


def _spatial(
    boxes: list[_Box], op_name: str, channels: Tensor | None, rows: Tensor, cols: Tensor
) -> list[_Box]:
    """Compose every box with a channel relation (None: identity) and row/column relations."""
    result = []
    for box in boxes:
        if box.flat:
            raise BoxAlgebraError(f"{op_name} of a flattened tensor")
        result.append(
            replace(
                box,
                channels=box.channels if channels is None else _compose(box.channels, channels),
                rows=_compose(box.rows, rows),
                cols=_compose(box.cols, cols),
            )
        )
    return result


_Inputs = list[tuple[tuple[int, ...], list[_Box]]]


def _through(op: object, node_shape: tuple[int, ...], inputs: _Inputs) -> list[_Box]:
    """The boxes at a node's output from the boxes at its inputs."""
    first_shape, boxes = inputs[0]
    if isinstance(op, _IDENTITY_OPS):
        return boxes
    if isinstance(op, Conv2d):
        (c_in, h_in, w_in), (c_out, h_out, w_out) = _as_3d(first_shape), _as_3d(node_shape)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
            tuple(op.weight.shape[2:]),
            op.stride,
            op.padding,
            op.dilation,
        )
        return _spatial(
            boxes,
            "a convolution",
            _groups_relation(c_in, c_out, op.groups),
            _window_relation(h_in, h_out, int(kh), sh, ph, dh),
            _window_relation(w_in, w_out, int(kw), sw, pw, dw),
        )
    if isinstance(op, AvgPool2d):
        (_, h_in, w_in), (_, h_out, w_out) = _as_3d(first_shape), _as_3d(node_shape)
        (kh, kw), (sh, sw), (ph, pw) = op.kernel_size, op.stride, op.padding
        return _spatial(
            boxes,
            "average pooling",
            None,
            _window_relation(h_in, h_out, kh, sh, ph, 1),
            _window_relation(w_in, w_out, kw, sw, pw, 1),
        )
    if isinstance(op, AdaptiveAvgPool2d):
        (_, h_in, w_in), (_, h_out, w_out) = _as_3d(first_shape), _as_3d(node_shape)
        return _spatial(
            boxes,
            "adaptive pooling",
            None,
            _adaptive_relation(h_in, h_out),
            _adaptive_relation(w_in, w_out),
        )
    if isinstance(op, Linear):
        out = int(op.weight.shape[0])
        return [
            _Box(
                channels=box.channels.any(1, keepdim=True).expand(-1, out),
                rows=box.rows.any(1, keepdim=True),
                cols=box.cols.any(1, keepdim=True),
            )
            for box in boxes
        ]
    if isinstance(op, Reshape):
        if first_shape == node_shape or _as_3d(first_shape) == _as_3d(node_shape):
            return boxes
        if len(node_shape) == 1:  # a flatten: only the size and emptiness of each box matter
            return [replace(box, flat=True) for box in boxes]
        raise BoxAlgebraError(f"a reshape from {first_shape} to {node_shape}")
    if isinstance(op, Scale):
        factor = torch.broadcast_to(op.factor.detach().cpu(), node_shape) != 0
        if bool(factor.all()):
            return boxes
        c = _as_3d(node_shape)[0]
        per_channel = factor.reshape(c, -1)
        if not bool((per_channel == per_channel[:, :1]).all()):
            raise BoxAlgebraError("a scale with zeros inside a channel")
        return _spatial(
            boxes,
            "a scale",
            torch.diag(per_channel[:, 0]),
            torch.eye(_as_3d(node_shape)[1], dtype=torch.bool),
            torch.eye(_as_3d(node_shape)[2], dtype=torch.bool),
        )
    if isinstance(op, Add):
        return [box for _, input_boxes in inputs for box in input_boxes]
    if isinstance(op, Concat):
        return _concat(op, node_shape, inputs)
    raise TypeError(type(op).__name__)


def _concat(op: Concat, node_shape: tuple[int, ...], inputs: _Inputs) -> list[_Box]:
    if op.dim not in (1, -len(node_shape)):
        raise BoxAlgebraError(f"a concatenation along dimension {op.dim}")
    c_out = _as_3d(node_shape)[0]
    result = []
    offset = 0
    for index, (shape, boxes) in enumerate(inputs):
        c_in = shape[0]
        for box in boxes:
            if box.flat:
                result.append(replace(box, block=(*box.block, index)))
                continue
            channels = torch.zeros(box.channels.shape[0], c_out, dtype=torch.bool)
            channels[:, offset : offset + c_in] = box.channels
            result.append(replace(box, channels=channels))
        offset += c_in
    return result


def _union_size(boxes: list[_Box], source: tuple[int, int, int]) -> Tensor:
    """|∪ boxes| for every source neuron, by inclusion and exclusion: float64 [C, H, W]."""
    unique = list({box.key(): box for box in boxes}.values())
    if len(unique) > _MAX_BOXES:
        raise BoxAlgebraError(f"{len(unique)} ways through residual adds")
    total = torch.zeros(source, dtype=torch.float64)
    for k in range(1, len(unique) + 1):
        for subset in itertools.combinations(unique, k):
            if len({(b.flat, b.block) for b in subset}) > 1:
                continue  # flattened boxes in different concatenation blocks never meet
            sizes = []
            for axis in range(3):
                common = subset[0].factors[axis]
                for other in subset[1:]:
                    common = common & other.factors[axis]
                sizes.append(common.sum(1).to(torch.float64))
            term = sizes[0][:, None, None] * sizes[1][None, :, None] * sizes[2][None, None, :]
            total += term if k % 2 else -term
    return total


def distinct_fan_out(graph: Graph, source: str, stops: set[str]) -> tuple[Tensor, set[str]]:
    """Distinct targets of every neuron of ``source`` in the maps to the next spiking layers.

    Args:
        graph: A spiking graph with shapes (``meta['shape']``).
        source: The spike source.
        stops: The other spike sources (their inputs are not targets).

    Returns:
        The fan-out (float64, the source's shape) and the target nodes reached.

    Raises:
        BoxAlgebraError: The composition is not a union of products (use
            :func:`brute_force_fan_out`).
        TypeError: An op on the way has no structural map.
    """
    shape = _shape(graph, source)
    c, h, w = _as_3d(shape)
    eye = [torch.eye(n, dtype=torch.bool) for n in (c, h, w)]
    reach: dict[str, list[_Box]] = {source: [_Box(eye[0], eye[1], eye[2])]}
    total = torch.zeros((c, h, w), dtype=torch.float64)
    targets: set[str] = set()
    for node in graph.nodes:
        if node.name == source or not any(i in reach for i in node.inputs):
            continue
        if isinstance(node.op, SPIKING_OPS):
            total += _union_size(reach[node.inputs[0]], (c, h, w))
            targets.add(node.name)
            continue
        if node.name in stops:
            continue
        inputs = [(_shape(graph, i), reach.get(i, [])) for i in node.inputs]
        reach[node.name] = _through(node.op, _shape(graph, node.name), inputs)
        if node.name == graph.output:
            total += _union_size(reach[node.name], (c, h, w))
            targets.add(node.name)
    return total.reshape(shape), targets


def fan_out_cost(graph: Graph, source: str) -> int:
    """A rough cost of :func:`brute_force_fan_out`: neurons × the ANN's per-sample work."""
    nodes: Iterable[int] = (math.prod(_shape(graph, n.name)) for n in graph.nodes)
    return math.prod(_shape(graph, source)) * sum(nodes)
