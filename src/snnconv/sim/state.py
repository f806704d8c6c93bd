"""What a batch's simulation carries from one step to the next, and what it counts.

:class:`BatchState` holds the input, the static values, every IF layer's
membrane, every max-pool gate's estimates and the readout; :meth:`BatchState.select`
keeps only some of the samples (the per-sample early exit drops the samples
that are done).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from snnconv.sim.maxpool import MaxPoolGate
from snnconv.sim.neurons import IFState
from snnconv.sim.readout import ReadoutScan

__all__ = ["BatchState", "Tally"]


@dataclass
class Tally:
    """What one batch's simulation counts per step (``[T]`` each) and per neuron."""

    correct1: Tensor
    correct5: Tensor
    #: Spikes (events) per spiking layer.
    spikes: dict[str, Tensor]
    #: Events of the other spike sources (gates, Poisson input) with a fan-out map.
    events: dict[str, Tensor]
    #: Synaptic operations per source with a fan-out map (float64).
    sops: dict[str, Tensor]
    #: Spikes of each neuron over all steps, per spiking layer (with ``record_rates``).
    totals: dict[str, Tensor]

    @classmethod
    def zeros(
        cls,
        timesteps: int,
        layers: list[str],
        sources: list[str],
        counted: list[str],
        shapes: dict[str, Tensor],
        device: torch.device,
    ) -> Tally:
        def steps(dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(timesteps, dtype=dtype, device=device)

        return cls(
            steps(torch.int64),
            steps(torch.int64),
            {name: steps() for name in layers},
            {name: steps() for name in sources},
            {name: steps(torch.float64) for name in counted},
            {name: torch.zeros_like(v) for name, v in shapes.items()},
        )


@dataclass
class BatchState:
    """Everything a batch's simulation carries from one chunk to the next."""

    x: Tensor
    static: dict[str, Tensor]
    neurons: dict[str, IFState]
    gates: dict[str, MaxPoolGate]
    readout: ReadoutScan
    tally: Tally

    def select(self, keep: Tensor) -> None:
        """Keep only the samples ``keep`` (indices into the batch) in every tensor."""
        self.x = self.x[keep]
        self.static = {name: value[keep] for name, value in self.static.items()}
        for neurons in self.neurons.values():
            neurons.select(keep)
        for gate in self.gates.values():
            gate.select(keep)
        self.readout.select(keep)
