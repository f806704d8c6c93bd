"""Replace ReLU activations with integrate-and-fire neurons; configure spiking pools."""

from __future__ import annotations

import dataclasses

from snnconv.config import Config
from snnconv.ir import (
    BinaryActivation,
    BinaryKind,
    BinaryNeuron,
    Graph,
    IFNeuron,
    MaxPool2d,
    RateEstimator,
    ReLU,
    ResetMode,
)

#: θ of binary units when none is configured (see ``Config.binary_threshold``): small, so
#: that units fire on the sign of V as the binary activation does.
DEFAULT_BINARY_THRESHOLD: dict[BinaryKind, float] = {
    BinaryKind.SIGN: 0.05,
    BinaryKind.HEAVISIDE: 0.05,
}


#: V(0)/θ of layers converted from QCFS activations, whatever ``v_init`` says: the shift ½
#: of QCFS is the neuron's half-threshold start (Bu et al. 2022).
QCFS_V_INIT = 0.5

#: The options' defaults (those of :class:`~snnconv.config.Config`).
_DEFAULTS = Config()


def spiking_depth(graph: Graph) -> dict[str, int]:
    """For each node, the number of activation layers on the longest path from the input
    up to and including it."""
    depth: dict[str, int] = {}
    for node in graph.nodes:
        base = max((depth[i] for i in node.inputs), default=0)
        spiking = (ReLU, IFNeuron, BinaryActivation, BinaryNeuron)
        depth[node.name] = base + (1 if isinstance(node.op, spiking) else 0)
    return depth


def to_spiking(
    graph: Graph,
    *,
    threshold: float = 1.0,
    reset: ResetMode = _DEFAULTS.reset,
    v_init: float = _DEFAULTS.v_init,
    hold_per_depth: int = _DEFAULTS.clamp_steps,
    rate_estimator: RateEstimator = _DEFAULTS.rate_estimator,
    rate_window: int = _DEFAULTS.rate_window,
    rate_decay: float = _DEFAULTS.rate_decay,
    binary_threshold: float | None = _DEFAULTS.binary_threshold,
    negative_spikes: bool = _DEFAULTS.negative_spikes,
    negative_threshold: float = 1.0,
) -> Graph:
    """Turn every ReLU into an :class:`IFNeuron` layer (and every binary activation into
    a :class:`BinaryNeuron` layer) with the given dynamics.

    The graph must already be normalized (threshold 1 then corresponds to the
    layer's robust maximum λ; a bounded ReLU keeps its normalized bound for
    ANN runs). A layer converted from a QCFS activation (a ReLU with ``levels``)
    starts at V(0) = θ/2 whatever ``v_init`` is. A layer at depth d (its position
    among activation layers on the longest path from the input) holds its membrane for
    ``hold_per_depth``·d
    steps; with ``negative_spikes`` the IF neurons take back transient spikes
    (see :class:`IFNeuron`). Max-pool layers get the gate's rate estimator. The output layer
    stays analog: the simulator reads it out.

    On a graph that is already spiking it sets these dynamics on the existing
    neurons and gates (their thresholds kept unless ``binary_threshold`` is
    given): how a saved network is re-simulated with other dynamics.
    """
    depth = spiking_depth(graph)
    nodes = []
    for n in graph.nodes:
        op = n.op
        hold = hold_per_depth * depth[n.name]
        if isinstance(op, (ReLU, IFNeuron)):
            theta = op.threshold if isinstance(op, IFNeuron) else threshold
            neuron = IFNeuron(
                threshold=theta,
                reset=reset,
                v_init=QCFS_V_INIT if op.levels is not None else v_init,
                max_value=op.max_value,
                hold_steps=hold,
                negative_spikes=negative_spikes,
                negative_threshold=negative_threshold,
                v_offset=op.v_offset if isinstance(op, IFNeuron) else None,
                bias_offset=op.bias_offset if isinstance(op, IFNeuron) else None,
                levels=op.levels,
            )
            n = dataclasses.replace(n, op=neuron)
        elif isinstance(op, (BinaryActivation, BinaryNeuron)):
            own = op.threshold if isinstance(op, BinaryNeuron) else None
            theta = binary_threshold or own or DEFAULT_BINARY_THRESHOLD[op.function]
            binary = BinaryNeuron(op.function, theta, reset, v_init, hold)
            n = dataclasses.replace(n, op=binary)
        elif isinstance(op, MaxPool2d):
            pool = dataclasses.replace(
                op, estimator=rate_estimator, window=rate_window, decay=rate_decay
            )
            n = dataclasses.replace(n, op=pool)
        nodes.append(n)
    return graph.replace_nodes(nodes)


def respike(graph: Graph, config: Config) -> Graph:
    """:func:`to_spiking` with the neuron and gate dynamics of ``config`` (the flow's last
    pass, and how a saved network is re-simulated with other dynamics)."""
    return to_spiking(
        graph,
        reset=config.reset,
        v_init=config.v_init,
        hold_per_depth=config.clamp_steps,
        rate_estimator=config.rate_estimator,
        rate_window=config.rate_window,
        rate_decay=config.rate_decay,
        binary_threshold=config.binary_threshold,
        negative_spikes=config.negative_spikes,
        negative_threshold=config.resolved_negative_threshold,
    )
