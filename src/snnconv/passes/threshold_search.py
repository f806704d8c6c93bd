"""Threshold search: each layer's λ chosen for accuracy at T steps, not by a percentile.

An IF layer normalized by λ and started at V(0) = θ/2 turns a constant input a
into ⌊T·a/λ + ½⌋ spikes in T steps (at most T): its rate code stands for the
quantized activation

    q_T(a; λ) = λ/T · clip(⌊T·a/λ + ½⌋, 0, T).

A large λ (the 99.9th percentile) clips few values but leaves few levels for
the bulk of the activations; a small λ resolves the bulk and clips the tail.
:class:`SearchThresholds` picks, per layer, the λ minimizing the mean squared
error E(λ) = mean[(a − q_T(a; λ))²] over the layer's positive activations on
the calibration data (zero and negative values cost nothing at any λ), among
λ = c·λ_p for c on a grid, the percentile's own λ_p (c = 1) included, so the
chosen λ's error never exceeds the percentile's. The same criterion is Li et
al. (2021, "A free lunch from ANN: towards efficient, accurate spiking neural
networks calibration") minimizing the clipping and quantization error layer by
layer; here it runs at the number of steps the network will run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from snnconv.ir import Graph
from snnconv.passes.calibrate import LayerStats, iterate_batches
from snnconv.sim.reference import run_graph

__all__ = ["SEARCH_GRID", "SearchThresholds", "quantization_error"]

#: Candidate factors c of λ = c·λ_percentile (1.0 among them).
SEARCH_GRID: tuple[float, ...] = tuple(round(0.2 + 0.05 * k, 2) for k in range(27))

#: Positive activations kept per layer for the search (a seeded uniform sample).
_SAMPLE = 1 << 19


def quantization_error(values: Tensor, lam: float, timesteps: int) -> float:
    """mean[(a − q_T(a; λ))²] over ``values`` (positive activations)."""
    levels = torch.clamp(torch.floor(values * (timesteps / lam) + 0.5), 0, timesteps)
    return float(((values - levels * (lam / timesteps)) ** 2).mean())


@dataclass(frozen=True)
class SearchThresholds:
    """Replace each activation layer's λ (``meta['stats']``) by the one minimizing its
    T-step quantization error on the calibration data; record the factor c = λ/λ_p in
    ``meta['threshold_search']``.

    Attributes:
        calibration: The calibration inputs.
        timesteps: T.
        batch_size: Samples per forward pass.
        device: Where the passes run.
        grid: The candidate factors of the percentile's λ.
    """

    calibration: object
    timesteps: int
    batch_size: int = 256
    device: Any = "cpu"
    grid: tuple[float, ...] = SEARCH_GRID

    def __call__(self, graph: Graph) -> Graph:
        layers = [  # QCFS layers keep the λ they were trained with
            n.name
            for n in graph.nodes
            if "stats" in n.meta and getattr(n.op, "levels", None) is None
        ]
        values = self._positive_samples(graph, layers)
        nodes = []
        for node in graph.nodes:
            if node.name in values:
                stats: LayerStats = node.meta["stats"]
                factor = self.best_factor(values[node.name], stats.scale)
                node = dataclasses.replace(
                    node,
                    meta={
                        **node.meta,
                        "stats": dataclasses.replace(stats, scale=factor * stats.scale),
                        "threshold_search": factor,
                    },
                )
            nodes.append(node)
        return graph.replace_nodes(nodes)

    def best_factor(self, values: Tensor, scale: float) -> float:
        """The grid factor with the least error (the smallest among equals; 1 if no data)."""
        if values.numel() == 0:
            return 1.0
        errors = {c: quantization_error(values, c * scale, self.timesteps) for c in self.grid}
        return min(errors, key=lambda c: (errors[c], c != 1.0, c))

    @torch.no_grad()
    def _positive_samples(self, graph: Graph, layers: list[str]) -> dict[str, Tensor]:
        """A seeded sample of each layer's positive activations (float64)."""
        generator = torch.Generator().manual_seed(0)
        on_device = graph.to(self.device)
        kept: dict[str, list[Tensor]] = {name: [] for name in layers}
        for x in iterate_batches(self.calibration, self.batch_size):
            _, acts = run_graph(on_device, x.to(self.device, torch.float32), capture=layers)
            for name, a in acts.items():
                positive = a.reshape(-1)[a.reshape(-1) > 0].double().cpu()
                if positive.numel() > _SAMPLE // 4:  # bounded memory per batch
                    pick = torch.randperm(positive.numel(), generator=generator)[: _SAMPLE // 4]
                    positive = positive[pick]
                kept[name].append(positive)
        samples = {}
        for name, parts in kept.items():
            values = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
            if values.numel() > _SAMPLE:
                values = values[torch.randperm(values.numel(), generator=generator)[:_SAMPLE]]
            samples[name] = values
        return samples

    def describe(self) -> str:
        return f"search_thresholds(timesteps={self.timesteps})"
