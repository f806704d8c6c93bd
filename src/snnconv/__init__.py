"""snnconv: convert trained deep networks into rate-coded spiking networks.

Quick use::

    import snnconv
    snn = snnconv.convert(model, calibration=loader)
    res = snnconv.evaluate(snn, test_loader, timesteps=256)
    print(res.table()); res.to_json("results.json")
    snnconv.save(snn, "out/"); snn = snnconv.load("out/")

The names below load their modules on first use, so that ``import snnconv``
and the command line's ``--help`` do not load PyTorch until it is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from snnconv.version import __version__

if TYPE_CHECKING:
    from snnconv.api import convert, evaluate
    from snnconv.config import Config
    from snnconv.errors import (
        ConfigError,
        DataError,
        ModelLoadError,
        NumericalError,
        ShapeError,
        SnnconvError,
        UnsupportedOpError,
    )
    from snnconv.exporters.nir import export_nir
    from snnconv.finetuning import FinetuneResult, finetune
    from snnconv.modes import InputEncoding, Precision, ResetMode
    from snnconv.network import SpikingNetwork
    from snnconv.results import EvaluationResult
    from snnconv.saved import load, save

#: Where each public name lives.
_HOMES: dict[str, str] = {
    "convert": "snnconv.api",
    "evaluate": "snnconv.api",
    "Config": "snnconv.config",
    "ConfigError": "snnconv.errors",
    "DataError": "snnconv.errors",
    "ModelLoadError": "snnconv.errors",
    "NumericalError": "snnconv.errors",
    "ShapeError": "snnconv.errors",
    "SnnconvError": "snnconv.errors",
    "UnsupportedOpError": "snnconv.errors",
    "export_nir": "snnconv.exporters.nir",
    "finetune": "snnconv.finetuning",
    "FinetuneResult": "snnconv.finetuning",
    "InputEncoding": "snnconv.modes",
    "Precision": "snnconv.modes",
    "ResetMode": "snnconv.modes",
    "SpikingNetwork": "snnconv.network",
    "EvaluationResult": "snnconv.results",
    "load": "snnconv.saved",
    "save": "snnconv.saved",
}

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "EvaluationResult",
    "FinetuneResult",
    "InputEncoding",
    "ModelLoadError",
    "NumericalError",
    "Precision",
    "ResetMode",
    "ShapeError",
    "SnnconvError",
    "SpikingNetwork",
    "UnsupportedOpError",
    "__version__",
    "convert",
    "evaluate",
    "export_nir",
    "finetune",
    "load",
    "save",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'snnconv' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
