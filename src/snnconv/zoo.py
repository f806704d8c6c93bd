"""Small reference CNNs, a deterministic training loop, and weight files.

This module keeps the former import path ``snnconv.zoo`` working (for
example ``snnconv run snnconv.zoo:lenet --weights ...``). The code lives in
:mod:`snnconv.models`: the networks in :mod:`snnconv.models.zoo`, the binary
layers in :mod:`snnconv.models.binary`, training and weight files in
:mod:`snnconv.models.training`, and the shipped checkpoint in
``snnconv/models/weights/``.
"""

from __future__ import annotations

from snnconv.models import reexport

__all__, __getattr__ = reexport(
    __name__,
    (
        "snnconv.models.zoo",
        "snnconv.models.binary",
        "snnconv.models.training",
    ),
)
