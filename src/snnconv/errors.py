"""Exception types. Every user-facing failure names the problem and the fix."""

from __future__ import annotations

import importlib
from typing import Any


class SnnconvError(Exception):
    """Base class of errors caused by the user's input (model, data, options).

    The command line turns these into exit status 2 with the message and no
    traceback; anything else is an internal error (exit status 1).
    """


class UnsupportedOpError(SnnconvError):
    """The model contains an operation that cannot be converted."""

    def __init__(
        self, op: str, node: str, supported: list[str] | tuple[str, ...], reason: str = ""
    ):
        self.op = op
        self.node = node
        self.supported = tuple(supported)
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"unsupported operation {op!r} at {node!r}{why}. Supported: "
            f"{', '.join(self.supported)}. Replace it with a supported equivalent "
            "(e.g. ReLU for other activations) and retrain, or remove it."
        )


class DataError(SnnconvError):
    """A dataset is missing, unreadable or has the wrong shape."""


class ModelLoadError(SnnconvError):
    """A model file is missing, unreadable, or unsafe to load."""


class ConfigError(SnnconvError, ValueError):
    """An option has an invalid value."""


class ShapeError(SnnconvError, ValueError):
    """Input data does not fit the model."""


class NumericalError(SnnconvError, ValueError):
    """NaN or Inf in weights or activations."""


def require_extra(module: str, extra: str, purpose: str) -> Any:
    """Import an optional dependency, or raise :class:`ModelLoadError` naming the extra that
    installs it (``pip install 'snnconv[EXTRA]'``)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ModelLoadError(
            f"{purpose} needs the {module} package: pip install 'snnconv[{extra}]' ({error})"
        ) from error
