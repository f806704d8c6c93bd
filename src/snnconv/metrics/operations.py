"""Exact operation counts: ANN multiply-accumulates and SNN synaptic operations.

Conventions (``METHOD.md``, "Counting operations"):

* **ANN MACs** per sample: Σ over conv and linear layers of n_out · f_in, with
  f_in = k_h·k_w·C_in/groups for a convolution (padding positions included:
  the count follows from shapes) and in_features for a linear layer. Pooling
  (one add or comparison per window element and output) and residual adds
  (one per output element and extra input) are *other operations*, reported
  separately. The fixed ``Scale`` synapses normalization inserts are not part
  of the ANN and are not counted there.
* **SNN synaptic operations** (SOPs): one accumulate per spike per synapse.
  A *spike source* is a spiking layer (IF or binary units), a spiking max-pool
  gate (its output spikes are what the next layer receives), or the input
  under Poisson encoding. Each source's synapses are those of the linear map
  from it to the next spiking layers (or the readout), with every pooling,
  reshape, concatenation, residual add and ``Scale`` in between composed into
  that map. Neuron i's fan-out f_out,i is the number of its synapses in the
  composed map, exact at borders, strides, padding and groups; it is computed
  once per source by applying the transposed structural map (every weight
  one) to a tensor of ones. A synapse is one path from the source to a
  target: when the same source reaches one target through several paths
  (overlapping pooling windows), each path is one accumulate. Then
  SOPs(t) = Σ_sources Σ_i |s_i(t)|·f_out,i.
* **Analog input**: the layers between the input and the first spiking layer
  run once per sample; their MACs are ``input_macs`` (counted like the ANN's),
  added to the SNN's totals when comparing with the ANN.
* **Neuron updates** (not synaptic operations, reported separately): one
  membrane update per spiking neuron per simulated step (held steps of the
  membrane clamp excluded), one bias add per step per output neuron of every
  time-varying layer with a bias, and one readout accumulation per output
  neuron per step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from snnconv.errors import UnsupportedOpError
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
    Input,
    InputEncoding,
    Linear,
    MaxPool2d,
    Node,
    ReLU,
    Reshape,
    Scale,
    Softmax,
)

#: Ops that a spike can pass through on its way to the next spiking layer.
_COMPOSABLE = (
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


def _numel(shape: Iterable[int]) -> int:
    return math.prod(int(d) for d in shape)


def macs(node: Node, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one sample through a conv or linear ``node`` (0 otherwise).

    Args:
        node: The node (its ``meta['shape']`` is one sample's output shape).
        input_shape: One sample's input shape (unused for conv and linear
            layers, whose fan-in follows from the weight).
    """
    op = node.op
    n_out = _numel(node.meta["shape"])
    if isinstance(op, Conv2d):
        _, c_in_per_group, kh, kw = op.weight.shape
        return n_out * int(c_in_per_group) * int(kh) * int(kw)
    if isinstance(op, Linear):
        return n_out * int(op.weight.shape[1])
    return 0


def other_ops(node: Node, input_shapes: list[tuple[int, ...]]) -> int:
    """Non-MAC operations of one sample: pooling window elements, residual-add elements."""
    op = node.op
    n_out = _numel(node.meta["shape"])
    if isinstance(op, (AvgPool2d, MaxPool2d)):
        return n_out * op.kernel_size[0] * op.kernel_size[1]
    if isinstance(op, AdaptiveAvgPool2d):
        c, h, w = input_shapes[0][-3:]
        oh, ow = op.output_size
        return c * _window_total(h, oh) * _window_total(w, ow)
    if isinstance(op, Add):
        return n_out * (len(node.inputs) - 1)
    return 0


def _window_bounds(size: int, out: int) -> list[tuple[int, int]]:
    """Start and end of each adaptive-pooling window along one axis (PyTorch's rule)."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _window_total(size: int, out: int) -> int:
    return sum(end - start for start, end in _window_bounds(size, out))


def _adaptive_sum(x: Tensor, output_size: tuple[int, int]) -> Tensor:
    """Sum (not mean) over each adaptive-pooling window: adaptive mean × window area."""
    h, w = x.shape[-2:]
    rows = torch.tensor([e - s for s, e in _window_bounds(h, output_size[0])], dtype=x.dtype)
    cols = torch.tensor([e - s for s, e in _window_bounds(w, output_size[1])], dtype=x.dtype)
    return F.adaptive_avg_pool2d(x, output_size) * rows[:, None] * cols[None, :]


def _structural(op: object, inputs: list[Tensor]) -> Tensor:
    """The op with every synapse weighted one (counts paths instead of computing values)."""
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
    if isinstance(op, (Identity, Dropout, BatchNorm, ReLU, Softmax, BinaryActivation)):
        return x  # one-to-one maps of one sample's neurons (BatchNorm/ReLU: ANN leftovers)
    raise TypeError(type(op).__name__)


@dataclass
class Source:
    """A node whose output events trigger synaptic operations.

    Attributes:
        name: The node.
        op: Its op's kind (``IFNeuron``, ``BinaryNeuron``, ``MaxPool2d`` gate, ``Input``).
        fan_out: ``[*shape]`` synapses of each neuron in the composed map (float64).
        targets: Nodes whose values receive its synapses (next spiking layers' inputs,
            or the readout).
    """

    name: str
    op: str
    fan_out: Tensor
    targets: list[str] = field(default_factory=list)

    @property
    def neurons(self) -> int:
        """Number of neurons (positions) of the source."""
        return self.fan_out.numel()

    @property
    def uniform(self) -> bool:
        """Whether every neuron has the same fan-out."""
        return bool((self.fan_out == self.fan_out.reshape(-1)[0]).all())


def spike_sources(graph: Graph, encoding: InputEncoding = InputEncoding.ANALOG) -> list[Node]:
    """The nodes whose spikes trigger synaptic operations, in graph order."""
    static = static_nodes(graph, encoding)
    sources = []
    for node in graph.nodes:
        if (
            isinstance(node.op, SPIKING_OPS)
            or (isinstance(node.op, MaxPool2d) and node.name not in static)
            or (isinstance(node.op, Input) and encoding is InputEncoding.POISSON)
        ):
            sources.append(node)
    return sources


def static_nodes(graph: Graph, encoding: InputEncoding = InputEncoding.ANALOG) -> set[str]:
    """Nodes computed once per sample (the analog input and what depends only on it)."""
    static: set[str] = set()
    for node in graph.nodes:
        if isinstance(node.op, Input):
            if encoding is InputEncoding.ANALOG:
                static.add(node.name)
        elif not isinstance(node.op, SPIKING_OPS) and all(i in static for i in node.inputs):
            static.add(node.name)
    return static


def fan_out(graph: Graph, source: str, sources: set[str] | None = None) -> Source:
    """The fan-out of every neuron of ``source`` in the composed map to the next spiking layers.

    Args:
        graph: A spiking graph with shapes (``meta['shape']``).
        source: The spike source's node name.
        sources: All spike sources (gates stop the composed map: their output
            spikes are counted as their own source). Defaults to ``source`` and
            every spiking layer and gated max-pool.

    Raises:
        UnsupportedOpError: an op between two spiking layers has no structural map.
    """
    if sources is None:
        sources = {n.name for n in spike_sources(graph)} | {source}
    return fan_out_maps(graph, [source], sources)[0]


def fan_out_maps(graph: Graph, wanted: list[str], sources: set[str]) -> list[Source]:
    """The fan-out maps of the sources ``wanted``, in one structural pass over the graph.

    Every spike source's value is a leaf tensor of ones; every node between
    spiking layers applies its structural map (weights one); the sum over all
    targets (the spiking layers' input currents and the readout) is then
    differentiated once: its gradient with respect to a source's leaf counts,
    for each of its neurons, the paths to targets, i.e. the transposed
    composed map applied to ones. Static (analog-input) values enter as zeros.

    Raises:
        UnsupportedOpError: an op between two spiking layers has no structural map.
    """
    with torch.enable_grad():  # callers may run under no_grad (evaluate does)
        return _fan_out_maps(graph, wanted, sources | set(wanted))


def _fan_out_maps(graph: Graph, wanted: list[str], sources: set[str]) -> list[Source]:
    shapes = {n.name: (1, *(int(d) for d in n.meta["shape"])) for n in graph.nodes}
    leaves: dict[str, Tensor] = {}
    values: dict[str, Tensor] = {}
    targets: dict[str, set[str]] = {name: set() for name in sources}
    reach: dict[str, set[str]] = {}  # which sources reach each node
    total = torch.zeros((), dtype=torch.float64)
    for node in graph.nodes:
        if node.name in sources:
            leaf = torch.ones(shapes[node.name], dtype=torch.float64)
            leaves[node.name] = leaf.requires_grad_(node.name in wanted)
            values[node.name] = leaves[node.name]
            reach[node.name] = {node.name}
        incoming = set().union(*(reach.get(i, set()) for i in node.inputs))
        if not incoming:
            continue
        if isinstance(node.op, SPIKING_OPS):
            # a spiking layer's input current is where its sources' synapses end
            (name,) = node.inputs
            total = total + values[name].sum()
            for s in incoming:
                targets[s].add(node.name)
            continue
        if node.name in sources:
            continue  # a gate: its input spikes stop here, its output is its own source
        inputs = [values[i] if i in reach else torch.zeros(shapes[i]) for i in node.inputs]
        try:
            out = _structural(node.op, [x.double() for x in inputs])
        except TypeError:
            raise UnsupportedOpError(
                node.op.kind,
                node.source,
                _COMPOSABLE,
                "operation counting cannot compose it into the map between spiking layers",
            ) from None
        values[node.name] = out
        reach[node.name] = incoming
        if node.name == graph.output:
            total = total + out.sum()
            for s in incoming:
                targets[s].add(node.name)
    grads: tuple[Tensor | None, ...] = (None,) * len(wanted)
    if total.requires_grad:
        grads = torch.autograd.grad(total, [leaves[w] for w in wanted], allow_unused=True)
    result = []
    for name, grad in zip(wanted, grads, strict=True):
        f = torch.zeros(shapes[name], dtype=torch.float64) if grad is None else grad.detach()
        ordered = [n.name for n in graph.nodes if n.name in targets[name]]
        result.append(Source(name, graph.node(name).op.kind, f[0], ordered))
    return result


@dataclass
class OperationCounts:
    """Static per-sample counts of a spiking graph (independent of the data).

    Attributes:
        ann_macs: ``{node: MACs per sample}`` of the ANN's conv and linear layers.
        ann_other: ``{node: other operations per sample}`` (pooling, adds).
        input_macs: ``{node: MACs per sample}`` of the layers computed once from
            the analog input (empty with Poisson input).
        sources: The spike sources and their fan-out maps.
        hold_steps: ``{spiking layer: held steps}`` of the membrane clamp.
        neurons: ``{spiking layer: neurons}``.
        bias_adds_per_step: Bias additions per step of the time-varying layers.
        readout_per_step: Output neurons accumulated per step.
    """

    ann_macs: dict[str, int]
    ann_other: dict[str, int]
    input_macs: dict[str, int]
    sources: list[Source]
    neurons: dict[str, int]
    hold_steps: dict[str, int]
    bias_adds_per_step: int
    readout_per_step: int

    @property
    def ann_macs_total(self) -> int:
        """ANN MACs per sample."""
        return sum(self.ann_macs.values())

    @property
    def ann_other_total(self) -> int:
        """ANN other operations per sample."""
        return sum(self.ann_other.values())

    @property
    def input_macs_total(self) -> int:
        """MACs per sample of the one-off analog input pass."""
        return sum(self.input_macs.values())

    def membrane_updates(self, timesteps: int) -> int:
        """Membrane updates per sample over ``timesteps`` steps (held steps excluded)."""
        return sum(
            n * max(timesteps - self.hold_steps[name], 0) for name, n in self.neurons.items()
        )

    def neuron_updates(self, timesteps: int) -> dict[str, int]:
        """Neuron updates per sample over ``timesteps`` steps, by kind."""
        return {
            "membrane": self.membrane_updates(timesteps),
            "bias": self.bias_adds_per_step * timesteps,
            "readout": self.readout_per_step * timesteps,
        }


def count_operations(
    graph: Graph, encoding: InputEncoding = InputEncoding.ANALOG
) -> OperationCounts:
    """Count the static operations of a spiking graph and each source's fan-out map.

    Args:
        graph: A spiking graph with shapes (as made by :func:`snnconv.convert`).
        encoding: Input encoding: with analog input the layers before the first
            spiking layer are computed once (``input_macs``); with Poisson input
            the input is a spike source.

    Raises:
        UnsupportedOpError: an op between spiking layers cannot be counted.
    """
    static = static_nodes(graph, encoding)
    shapes = {n.name: tuple(int(d) for d in n.meta["shape"]) for n in graph.nodes}
    ann_macs: dict[str, int] = {}
    ann_other: dict[str, int] = {}
    input_macs: dict[str, int] = {}
    bias_adds = 0
    for node in graph.nodes[1:]:
        in_shapes = [shapes[i] for i in node.inputs]
        m = macs(node, in_shapes[0])
        if m:
            ann_macs[node.name] = m
            if node.name in static:
                input_macs[node.name] = m
            elif getattr(node.op, "bias", None) is not None:
                bias_adds += _numel(shapes[node.name])
        other = other_ops(node, in_shapes)
        if other:
            ann_other[node.name] = other
    source_nodes = spike_sources(graph, encoding)
    names = [n.name for n in source_nodes]
    sources = fan_out_maps(graph, names, set(names))
    spiking = [n for n in graph.nodes if isinstance(n.op, SPIKING_OPS)]
    return OperationCounts(
        ann_macs=ann_macs,
        ann_other=ann_other,
        input_macs=input_macs,
        sources=sources,
        neurons={n.name: _numel(shapes[n.name]) for n in spiking},
        hold_steps={n.name: int(getattr(n.op, "hold_steps", 0)) for n in spiking},
        bias_adds_per_step=bias_adds,
        readout_per_step=_numel(shapes[graph.output]),
    )


__all__ = [
    "OperationCounts",
    "Source",
    "count_operations",
    "fan_out",
    "fan_out_maps",
    "macs",
    "other_ops",
    "spike_sources",
    "static_nodes",
]
