"""snnconv: convert trained deep networks into rate-coded spiking networks.

Quick use::

    import snnconv
    snn = snnconv.convert(model, calibration=loader)
    res = snnconv.evaluate(snn, test_loader, timesteps=256)
    print(res.table()); res.to_json("results.json")
    snnconv.save(snn, "out/"); snn = snnconv.load("out/")
"""

__version__ = "0.1.0"

from snnconv.api import convert, evaluate  # noqa: E402
from snnconv.config import Config  # noqa: E402
from snnconv.errors import (  # noqa: E402
    ConfigError,
    DataError,
    ModelLoadError,
    NumericalError,
    ShapeError,
    SnnconvError,
    UnsupportedOpError,
)
from snnconv.exporters.saved import load, save  # noqa: E402
from snnconv.ir import InputEncoding, ResetMode  # noqa: E402
from snnconv.network import SpikingNetwork  # noqa: E402
from snnconv.results import EvaluationResult  # noqa: E402

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "EvaluationResult",
    "InputEncoding",
    "ModelLoadError",
    "NumericalError",
    "ResetMode",
    "ShapeError",
    "SnnconvError",
    "SpikingNetwork",
    "UnsupportedOpError",
    "__version__",
    "convert",
    "evaluate",
    "load",
    "save",
]
