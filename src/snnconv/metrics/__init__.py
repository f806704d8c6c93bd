"""Metrics of a simulation: operation counts, the error-vs-operations trade-off, energy,
and per-layer diagnostics."""

from snnconv.metrics.diagnostics import LayerDiagnostics
from snnconv.metrics.operations import OperationCounts, Source, count_operations
from snnconv.metrics.tradeoff import EnergyModel, error_vs_operations, milestones

__all__ = [
    "EnergyModel",
    "LayerDiagnostics",
    "OperationCounts",
    "Source",
    "count_operations",
    "error_vs_operations",
    "milestones",
]
