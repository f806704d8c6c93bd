"""The converted network: a spiking graph plus how it was made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snnconv.config import Config
from snnconv.ir import SPIKING_OPS, Graph


@dataclass(eq=False)
class SpikingNetwork:
    """A converted, normalized spiking network.

    Attributes:
        graph: The spiking graph (IF layers in place of ReLUs). Run as an ANN
            (IF as ReLU) it is the normalized ANN, whose outputs equal the
            original model's.
        config: The options it was converted with (and simulates with by default).
        info: Provenance: ``model``, ``calibration`` ({dataset, num_samples,
            seed}), per-layer ``stats`` ({name: {scale, max, positive, total}}),
            ``warnings``.
    """

    graph: Graph
    config: Config = field(default_factory=Config)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def spiking_layers(self) -> list[str]:
        """Names of the IF layers, in order."""
        return [n.name for n in self.graph.nodes if isinstance(n.op, SPIKING_OPS)]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's input shape."""
        return tuple(self.graph.input.op.shape)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return (
            f"SpikingNetwork(model={self.info.get('model', '?')!r}, "
            f"input={list(self.input_shape)}, nodes={len(self.graph)}, "
            f"spiking_layers={len(self.spiking_layers)})"
        )
