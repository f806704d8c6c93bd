"""Exporters: the saved-network format (and, later, NIR)."""

from snnconv.exporters.saved import is_saved_network, load, save

__all__ = ["is_saved_network", "load", "save"]
