"""snnconv: convert trained deep networks into rate-coded spiking networks.

Quick use::

    import snnconv
    snn = snnconv.convert(model, calibration=loader)
    res = snnconv.evaluate(snn, test_loader, timesteps=256)
    print(res.table()); res.to_json("results.json")
    snnconv.save(snn, "out/"); snn = snnconv.load("out/")
"""

__version__ = "0.1.0"

from snnconv.api import convert, evaluate
from snnconv.config import Config, Precision
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
from snnconv.exporters.saved import load, save
from snnconv.ir import InputEncoding, ResetMode
from snnconv.network import SpikingNetwork
from snnconv.results import EvaluationResult

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "EvaluationResult",
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
    "load",
    "save",
]
