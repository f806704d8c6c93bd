"""Exact operation counts: ANN multiply-accumulates and SNN synaptic operations.

Conventions (the user guide, "Operation counts"):

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
  that map, as a spiking network deploys it: each pair (source neuron,
  target neuron) the composed map connects is one synapse with one summed
  weight. Neuron i's fan-out f_out,i is the number of **distinct** targets it
  reaches structurally (whatever the weights' values), exact at borders,
  strides, padding, dilation and groups; it is computed once per source
  (:mod:`snnconv.metrics.synapses`). When the same source reaches a target
  through several paths (overlapping pooling windows before a convolution,
  conv → conv or linear → linear without an activation between, a residual
  add of two branches of one source), that target is one synapse. Then
  SOPs(t) = Σ_sources Σ_i |s_i(t)|·f_out,i. Each side is counted as it would
  run: the ANN layer by layer (its MACs are those of the network as built),
  the SNN on its composed synapses.
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

from torch import Tensor

from snnconv.errors import UnsupportedOpError
from snnconv.ir import (
    SPIKING_OPS,
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    Conv2d,
    Graph,
    Input,
    InputEncoding,
    Linear,
    MaxPool2d,
    Node,
)
from snnconv.metrics.synapses import (
    COMPOSABLE,
    BoxAlgebraError,
    _window_bounds,
    brute_force_fan_out,
    distinct_fan_out,
    fan_out_cost,
)

#: Above this many probe-element operations the brute-force fan-out is refused.
_BRUTE_FORCE_LIMIT = 2 * 10**9


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


def _window_total(size: int, out: int) -> int:
    """Input elements summed over the adaptive-pooling windows along one axis."""
    return sum(end - start for start, end in _window_bounds(size, out))


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
    """The fan-out maps of the sources ``wanted``: distinct targets per neuron.

    Each source's fan-out is counted by the box algebra of
    :mod:`snnconv.metrics.synapses` (exact, at the cost of small matrix
    products), or, for a composition it cannot express, by one-hot probes.
    Static (analog-input) values carry no synapses.

    Raises:
        UnsupportedOpError: an op between two spiking layers has no structural map,
            or a composition the box algebra cannot express is too large to probe.
    """
    stops = sources | set(wanted)
    result = []
    for name in wanted:
        node = graph.node(name)
        try:
            try:
                counts, targets = distinct_fan_out(graph, name, stops - {name})
            except BoxAlgebraError as why:
                if fan_out_cost(graph, name) > _BRUTE_FORCE_LIMIT:
                    raise UnsupportedOpError(
                        f"{why}",
                        node.source,
                        COMPOSABLE,
                        "operation counting cannot compose it exactly for a layer this large",
                    ) from None
                counts, targets = brute_force_fan_out(graph, name, stops - {name})
        except TypeError as error:
            culprit = next(n for n in graph.nodes if type(n.op).__name__ == str(error))
            raise UnsupportedOpError(
                culprit.op.kind,
                culprit.source,
                COMPOSABLE,
                "operation counting cannot compose it into the map between spiking layers",
            ) from None
        ordered = [n.name for n in graph.nodes if n.name in targets]
        result.append(Source(name, node.op.kind, counts, ordered))
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
