"""Replace ReLU activations with integrate-and-fire neurons."""

from __future__ import annotations

import dataclasses

from snnconv.ir import Graph, IFNeuron, ReLU, ResetMode


def to_spiking(
    graph: Graph,
    *,
    threshold: float = 1.0,
    reset: ResetMode = ResetMode.SUBTRACT,
    v_init: float = 0.0,
) -> Graph:
    """Turn every ReLU into an :class:`IFNeuron` layer with the given dynamics.

    The graph must already be normalized (threshold 1 then corresponds to the
    layer's robust maximum λ). The output layer stays analog: the simulator
    accumulates its input current as the readout.
    """
    neuron = IFNeuron(threshold=threshold, reset=reset, v_init=v_init)
    nodes = [
        dataclasses.replace(n, op=neuron) if isinstance(n.op, ReLU) else n for n in graph.nodes
    ]
    return graph.replace_nodes(nodes)
