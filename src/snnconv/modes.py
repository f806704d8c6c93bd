"""Typed modes: the enumerations of the options and of the ops' fields.

Torch-free, so that the options (:mod:`snnconv.config`) and the command line's
help can be read without loading PyTorch. :mod:`snnconv.ir` re-exports the ones
that are fields of ops.
"""

from __future__ import annotations

import enum
from typing import Any


class ResetMode(enum.Enum):
    """What an IF neuron's membrane does after a spike."""

    SUBTRACT = "subtract"
    """V ← V − θ: keeps the surplus charge (the default; rates converge to the ReLU)."""
    ZERO = "zero"
    """V ← 0: discards the surplus (offered for comparison; biased low)."""


class InputEncoding(enum.Enum):
    """How the input image drives the first layer."""

    ANALOG = "analog"
    """The image is a constant input current at every step (the default)."""
    POISSON = "poisson"
    """Each pixel spikes (±1) with probability min(|x|, 1) per step."""


class RateEstimator(enum.Enum):
    """How a spiking max-pool gate estimates each input's firing rate online."""

    COUNT = "count"
    """Spikes so far (the running rate times t; the default)."""
    MOVING_AVERAGE = "moving_average"
    """Spikes in the last ``window`` steps."""
    EXPONENTIAL = "exponential"
    """e ← decay·e + s, an exponentially weighted average."""


class Readout(enum.Enum):
    """How the output layer's activity becomes a class ranking after each step."""

    POTENTIAL = "potential"
    """Accumulated input current of the output layer (no threshold, no reset; default)."""
    SPIKES = "spikes"
    """Spike counts of IF output neurons (threshold λ_out, the output layer's robust
    maximum); ties broken by the accumulated input current."""
    SOFTMAX = "softmax"
    """Spiking softmax: each output neuron spikes with probability softmax(z(t))_i at
    every step (seeded); ranked by spike count, ties broken by accumulated current."""


class BinaryKind(enum.Enum):
    """Binary activations of BinaryNets."""

    SIGN = "sign"
    """sign(x) ∈ {−1, 0, +1} (0 only at exactly 0)."""
    HEAVISIDE = "heaviside"
    """H(x) = 1 if x > 0 else 0."""


class MaxPoolMode(enum.Enum):
    """What becomes of max-pooling layers."""

    GATE = "gate"
    """The paper's spiking max-pool gate (the default; the ANN is unchanged)."""
    AVERAGE = "average"
    """Replace max-pooling by average pooling: this changes the ANN."""


class Precision(enum.Enum):
    """Number format of the synaptic layers (conv, linear) between spiking layers.

    Spikes (0, ±1) are exact in every format; the membrane potentials, the
    layers computed once from the analog input, the layers that feed the
    readout and all counts stay float32 whatever the choice.
    """

    FLOAT32 = "float32"
    """Exact float32 (the default)."""
    BFLOAT16 = "bfloat16"
    """Weights rounded to bfloat16 (8 significant bits), the layers computed in it
    and their outputs (the currents) converted back to float32 with 8 significant
    bits; faster convolutions on CPUs with AVX512-BF16 or AMX, and on GPUs.
    Measure the accuracy effect (guide §6)."""
    FLOAT16 = "float16"
    """The same with float16 (11 significant bits); for GPUs."""

    @property
    def dtype(self) -> Any:
        """The ``torch.dtype`` (imports torch)."""
        import torch

        return getattr(torch, self.value)


class NirPooling(enum.Enum):
    """How average pooling is written."""

    AVERAGE = "average"
    """``nir.AvgPool2d`` (the default)."""
    SUM = "sum"
    """``nir.SumPool2d``, with 1/(kh·kw) folded into the next Conv2d/Linear's weights."""


class NirSubstitute(enum.Enum):
    """Documented approximations the user may opt into for features NIR cannot express."""

    AVERAGE_POOL = "average-pool"
    """Write the spiking max-pool gate as average pooling of the same windows. This
    changes the network: its accuracy is that of the max→average replaced ANN (convert
    with ``Config(maxpool=MaxPoolMode.AVERAGE)`` to normalize for it)."""
    DROP_INITIAL_STATE = "drop-initial-state"
    """Ignore the membrane hold of the first steps (``clamp_steps``) and a non-zero
    initial membrane (``v_init``): consumers start integrating at step 1 from v = 0."""


__all__ = [
    "BinaryKind",
    "InputEncoding",
    "MaxPoolMode",
    "NirPooling",
    "NirSubstitute",
    "Precision",
    "RateEstimator",
    "Readout",
    "ResetMode",
]
