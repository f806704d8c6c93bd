"""The readout: from the output layer's input current to a class ranking after every step.

:class:`ReadoutScan` keeps the accumulated output current V (the membrane
potential without threshold or reset) and, for the spike readouts, the output
spikes; :meth:`ReadoutScan.scan` runs one loop over the steps of a chunk and
returns each step's class scores:

- ``POTENTIAL``: V itself;
- ``SPIKES``: output IF neurons (threshold λ_out, reset by subtraction): the
  spike count, ties broken by V;
- ``SOFTMAX``: each output neuron spikes with probability softmax(z(t))_i
  (seeded): the spike count, ties broken by V.

V is accumulated step by step in float32 (not with ``cumsum``, whose summation
order differs), so the readout is bit-identical for every chunk size.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from snnconv.ir import Readout
from snnconv.sim.neurons import if_step_subtract

__all__ = ["ReadoutScan"]


class ReadoutScan:
    """The readout's state for one batch.

    Args:
        kind: The readout.
        batch: Samples.
        classes: Output neurons.
        threshold: θ of the output IF neurons (``SPIKES``): the output layer's λ.
        generator: The seeded generator of the spiking softmax.
        device: Where the state lives.
    """

    def __init__(
        self,
        kind: Readout,
        batch: int,
        classes: int,
        threshold: float,
        generator: torch.Generator,
        device: Any,
    ) -> None:
        self.kind, self.threshold, self.generator = kind, threshold, generator
        self.potential = torch.zeros((batch, classes), device=device)
        self.v = torch.zeros((batch, classes), device=device)
        self.counts = torch.zeros((batch, classes), device=device)
        self._spikes = torch.empty_like(self.v)

    def select(self, keep: Tensor) -> None:
        """Keep only the samples ``keep`` (indices into the batch)."""
        self.potential, self.v, self.counts = (
            self.potential[keep],
            self.v[keep],
            self.counts[keep],
        )
        self._spikes = torch.empty_like(self.v)

    def scan(self, current: Tensor) -> Tensor:
        """Scores ``[k, B, C]`` after each of the ``k`` steps whose output currents are
        ``current`` ``[k, B, C]``."""
        cumulative = torch.empty_like(current)
        scores = cumulative if self.kind is Readout.POTENTIAL else torch.empty_like(current)
        potential = self.potential
        for j in range(current.shape[0]):
            torch.add(potential, current[j], out=cumulative[j])
            potential = cumulative[j]
            if self.kind is not Readout.POTENTIAL:
                self._spike(current[j])
                scores[j] = self.counts + (0.5 + torch.atan(potential) / math.pi)
        self.potential = potential.clone()
        return scores

    def _spike(self, z: Tensor) -> None:
        """One step of the output neurons (the fractional part of the score, strictly inside
        (0, 1) and increasing in V, only breaks ties between equal counts)."""
        if self.kind is Readout.SPIKES:
            if_step_subtract(self.v, z, self.threshold, self._spikes)
        else:
            p = torch.softmax(z, dim=-1)
            u = torch.rand(p.shape, generator=self.generator, device=p.device)
            torch.lt(u, p, out=self._spikes)
        self.counts.add_(self._spikes)
