"""Per-layer diagnostics: how well each spiking layer's rates follow the ANN."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class LayerDiagnostics:
    """Streaming statistics of one spiking layer over an evaluation.

    Compares each neuron's SNN rate r (spikes / T, signed for sign units) with
    its activation a in the normalized ANN (the layer's ReLU output divided by
    λ, i.e. the rate it should have), over all samples and neurons.
    """

    count: int = 0
    silent: int = 0
    saturated: int = 0
    sum_a: float = 0.0
    sum_r: float = 0.0
    sum_aa: float = 0.0
    sum_rr: float = 0.0
    sum_ar: float = 0.0

    def update(self, activation: Tensor, rate: Tensor) -> None:
        """Add a batch of normalized ANN activations and SNN rates (same shape)."""
        self.count += activation.numel()
        self.silent += int(torch.count_nonzero(rate == 0))
        self.saturated += int(torch.count_nonzero(rate.abs() >= 1.0))
        a = activation.double().reshape(-1)  # float64 sums, products by dot products
        r = rate.double().reshape(-1)
        self.sum_a += float(a.sum())
        self.sum_r += float(r.sum())
        self.sum_aa += float(torch.dot(a, a))
        self.sum_rr += float(torch.dot(r, r))
        self.sum_ar += float(torch.dot(a, r))

    @property
    def silent_fraction(self) -> float:
        """Fraction of (sample, neuron) pairs that never spiked."""
        return self.silent / self.count if self.count else float("nan")

    @property
    def saturated_fraction(self) -> float:
        """Fraction of (sample, neuron) pairs that spiked at every step."""
        return self.saturated / self.count if self.count else float("nan")

    @property
    def correlation(self) -> float:
        """Pearson correlation between normalized ANN activations and SNN rates."""
        n = self.count
        if n < 2:
            return float("nan")
        cov = self.sum_ar - self.sum_a * self.sum_r / n
        var_a = self.sum_aa - self.sum_a**2 / n
        var_r = self.sum_rr - self.sum_r**2 / n
        if var_a <= 0 or var_r <= 0:
            return float("nan")
        return cov / math.sqrt(var_a * var_r)


def spike_rates(totals: Tensor, timesteps: int) -> Tensor:
    """Rates from per-neuron spike totals over ``timesteps`` steps."""
    return totals / float(timesteps)


__all__ = ["LayerDiagnostics", "spike_rates"]
