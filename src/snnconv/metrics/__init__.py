"""Metrics of a simulation: per-layer diagnostics."""

from snnconv.metrics.diagnostics import LayerDiagnostics

__all__ = ["LayerDiagnostics"]
