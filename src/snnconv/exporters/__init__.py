"""Exporters: NIR, for other simulators and neuromorphic chips (our own saved format is
:mod:`snnconv.saved`)."""

from snnconv.exporters.nir import NirPooling, NirSubstitute, export_nir, to_nir

__all__ = ["NirPooling", "NirSubstitute", "export_nir", "to_nir"]
