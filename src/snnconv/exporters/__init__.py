"""Exporters: the saved-network format and NIR."""

from snnconv.exporters.nir import NirPooling, NirSubstitute, export_nir, to_nir
from snnconv.exporters.saved import is_saved_network, load, save

__all__ = [
    "NirPooling",
    "NirSubstitute",
    "export_nir",
    "is_saved_network",
    "load",
    "save",
    "to_nir",
]
