"""Bias and membrane-potential calibration: the SNN's mean error at T steps, corrected.

After T steps an IF layer's rate r differs from the normalized ANN activation
it stands for, clip(a, 0, 1), by an error whose mean over the calibration data
is not zero: early spikes that later input would have cancelled, inputs that
arrive unevenly, the layers before it. Li et al. (2021, "A free lunch from
ANN") correct that mean layer by layer:

    e_c = mean over samples and positions of (clip(a, 0, 1) − r)   for each channel c,

then, for the first layer, the next, and so on (each measured with the
corrections before it in place):

- **bias calibration**: an extra input current of e_c·θ per step
  (``IFNeuron.bias_offset``: e_c·T more spikes over T steps);
- **potential calibration**: V(0)_c ← V(0)_c + e_c·T·θ (the same charge,
  given once at the start: ``IFNeuron.v_offset``).

At few steps the rate moves in quanta of 1/T, so the full first-order step can
overshoot (measured: a channel at e = −0.08 went to +0.15 at T = 4). Each layer
therefore tries the step s·e_c for s in ``STEPS`` and keeps, per channel, the one
with the smallest |mean error|, none if none helps. A channel's correction only
changes its own rates, so the per-channel choices combine exactly and no
channel's mean error ends above where it started.

Both live in the IF layers and act on the spiking network only: the network
run as an ANN is still the converted model.

The targets are the original network's activations, measured once; the SNN is
simulated on the calibration data for T steps per layer.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from snnconv.ir import Graph, IFNeuron
from snnconv.passes.calibrate import iterate_batches
from snnconv.sim.reference import run_graph

__all__ = ["STEPS", "CalibrateCurrents", "CurrentCalibration"]

STEPS = (1.0, 0.5, 0.25)
"""Fractions of the measured mean error tried as the correction (module docstring)."""


class CurrentCalibration(enum.Enum):
    """Where the correction of the mean error goes."""

    BIAS = "bias"
    """Into the bias of the layer feeding each IF layer (a current at every step)."""
    POTENTIAL = "potential"
    """Into each IF layer's initial membrane potential (a charge at the start)."""


@dataclass(frozen=True)
class CalibrateCurrents:
    """Correct each IF layer's mean rate error at T steps, layer by layer (module docstring).

    Records ``meta['current_calibration']`` on each IF layer: the mean |e| over its
    channels before and after its correction.

    Attributes:
        calibration: The calibration inputs.
        timesteps: T.
        mode: Bias or membrane-potential calibration.
        samples: Calibration samples simulated (the first ones).
        batch_size: Samples per simulated batch.
        device: Where the simulation runs.
    """

    calibration: object
    timesteps: int
    mode: CurrentCalibration = CurrentCalibration.BIAS
    samples: int = 1000
    batch_size: int = 256
    device: Any = "cpu"

    def __call__(self, graph: Graph) -> Graph:
        x = self._inputs()
        layers = [n.name for n in graph.nodes if isinstance(n.op, IFNeuron)]
        _, activations = run_graph(graph.to(self.device), x.to(self.device), capture=layers)
        targets = {name: a.clamp(max=1.0) for name, a in activations.items()}
        for name in layers:
            graph = self._calibrate_layer(graph, x, name, targets[name])
        return graph

    def _calibrate_layer(self, graph: Graph, x: Tensor, name: str, target: Tensor) -> Graph:
        """Correct one layer: per channel, the step in ``STEPS`` (or none) that leaves the
        smallest |mean error|."""
        error = self._mean_error(graph, x, name, target)
        best, chosen = error.abs(), torch.zeros_like(error)
        for step in STEPS:
            left = self._mean_error(self._correct(graph, name, step * error), x, name, target)
            better = left.abs() < best
            best, chosen = torch.where(better, left.abs(), best), torch.where(better, step, chosen)
        record = {"before": float(error.abs().mean()), "after": float(best.mean())}
        return self._correct(graph, name, chosen * error, record)

    def _inputs(self) -> Tensor:
        parts, count = [], 0
        for batch in iterate_batches(self.calibration, self.batch_size):
            parts.append(batch.float())
            count += batch.shape[0]
            if count >= self.samples:
                break
        return torch.cat(parts)[: self.samples]

    @torch.no_grad()
    def _mean_error(self, graph: Graph, x: Tensor, name: str, target: Tensor) -> Tensor:
        """Per channel: mean of clip(a, 0, 1) − rate over samples and positions."""
        from snnconv.sim.simulator import Simulator

        sim = Simulator(graph, device=self.device)
        totals = []
        for batch in x.split(self.batch_size):
            labels = torch.zeros(batch.shape[0], dtype=torch.long)
            res = sim.run(batch, labels, self.timesteps, record_spikes=False, record_rates=True)
            totals.append(res.totals[name].cpu())
        error = target.cpu() - torch.cat(totals) / self.timesteps
        return error.mean(dim=[0, *range(2, error.dim())]).double()

    def _correct(
        self, graph: Graph, name: str, error: Tensor, record: dict[str, float] | None = None
    ) -> Graph:
        """The graph with ``error`` (per channel) made up in layer ``name``."""
        neuron = graph.node(name)
        op = neuron.op
        if not isinstance(op, IFNeuron):  # pragma: no cover - called on IF layers only
            return graph
        meta = {"current_calibration": record} if record else {}
        if self.mode is CurrentCalibration.POTENTIAL:
            offset = error * self.timesteps
            if op.v_offset is not None:
                offset = offset + op.v_offset.double()
            new = dataclasses.replace(op, v_offset=offset.float().clamp(-1.0, 1.0))
        else:
            current = error * op.threshold
            if op.bias_offset is not None:
                current = current + op.bias_offset.double()
            new = dataclasses.replace(op, bias_offset=current.float())
        return graph.with_op(name, new, **meta)

    def describe(self) -> str:
        return f"calibrate_currents(mode={self.mode.value}, timesteps={self.timesteps})"
