"""One typed configuration for conversion and simulation."""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from snnconv.errors import ConfigError
from snnconv.ir import InputEncoding, RateEstimator, Readout, ResetMode


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
    def dtype(self) -> torch.dtype:
        """The torch dtype."""
        return getattr(torch, self.value)


@dataclass(frozen=True)
class Config:
    """Options of conversion and simulation, with the paper's defaults.

    Attributes:
        percentile: p of the robust maximum λ per layer: the p-th percentile of
            the layer's non-zero activations over the calibration set. In
            (0, 100]; 100 is max-norm (Diehl et al. 2015); useful range 99–99.999.
        pool_aware_percentile: For a layer whose values are max-pooled, take λ
            no smaller than the percentile of the max-pooled values (default
            True): a max pool passes on its largest input, which is the one
            most likely to exceed the layer's own percentile and saturate.
        reset: IF neuron reset: ``ResetMode.SUBTRACT`` (V ← V − θ, default)
            or ``ResetMode.ZERO`` (V ← 0).
        input_encoding: ``InputEncoding.ANALOG`` (the image is a constant
            input current, default) or ``InputEncoding.POISSON`` (seeded
            Bernoulli spikes with probability min(|x|, 1) per step).
        v_init: Initial membrane potential as a fraction of the threshold, in
            [0, 1). 0 is the paper's choice; 0.5 centres the rate's
            quantization error (fewer steps for the same accuracy).
        calibration_samples: Calibration samples drawn (seeded) from a
            dataset's training split by the command line.
        batch_size: Samples simulated at once.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA if available).
        threads: CPU threads for PyTorch (None: PyTorch's default).
        seed: Seed of every random choice (calibration sampling, Poisson input).
        chunk: Time steps simulated per layer call (K). None picks the
            measured default for the device (see :func:`default_chunk`).
        readout: ``Readout.POTENTIAL`` (accumulated output current, default),
            ``Readout.SPIKES`` (output spike counts) or ``Readout.SOFTMAX``
            (the paper's spiking softmax).
        maxpool: ``MaxPoolMode.GATE`` (spiking max-pool gate, default) or
            ``MaxPoolMode.AVERAGE`` (replace by average pooling; changes the ANN).
        rate_estimator: The gate's online rate estimate: ``COUNT`` (default),
            ``MOVING_AVERAGE`` over ``rate_window`` steps, or ``EXPONENTIAL``
            with ``rate_decay``.
        rate_window: Window of the moving-average estimator (steps).
        rate_decay: Decay of the exponential estimator, in (0, 1).
        clamp_steps: Membrane clamp for deep networks: a spiking layer at depth
            d holds its membrane for the first ``clamp_steps``·d steps (0 = off).
        negative_spikes: IF neurons whose net spike count is positive emit a
            −1 spike when V ≤ −θ (V ← V + θ), so their net count stays within
            one spike of max(0, integrated input / θ): spikes fired by a
            transient are taken back. Beyond the paper (off by default); needs
            reset by subtraction. Costs events (each ±1 spike is one); on a
            random-weight GoogLeNet at T = 512 (with percentile 100 and
            v_init 0.5) it raises the lowest per-layer rate–activation
            correlation from 0.82 to 0.985.
        binary_threshold: θ of the units replacing binary activations (not
            normalized). None: 0.05 for both kinds, so that units fire on the
            sign of V for all practical inputs, as sign(z) and H(z) = [z > 0]
            require (the toolbox's θ = 1 makes a sign unit's rate clip(z, −1, 1),
            a hard tanh rather than sign).
        precision: Number format of the synaptic layers between spiking layers:
            ``Precision.FLOAT32`` (exact, default), ``BFLOAT16`` or ``FLOAT16``
            (faster where the hardware has them; the accuracy effect must be
            measured, see :class:`Precision`).
        energy_ac_pj: Energy of one synaptic accumulate (SOP) for the energy
            estimate, in pJ (default 0.9: a 32-bit float add in 45 nm CMOS,
            Horowitz 2014).
        energy_mac_pj: Energy of one multiply-accumulate, in pJ (default 4.6: a
            32-bit float multiply + add in 45 nm CMOS).
    """

    percentile: float = 99.9
    pool_aware_percentile: bool = True
    reset: ResetMode = ResetMode.SUBTRACT
    input_encoding: InputEncoding = InputEncoding.ANALOG
    v_init: float = 0.0
    calibration_samples: int = 1000
    batch_size: int = 256
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    chunk: int | None = None
    readout: Readout = Readout.POTENTIAL
    maxpool: MaxPoolMode = MaxPoolMode.GATE
    rate_estimator: RateEstimator = RateEstimator.COUNT
    rate_window: int = 16
    rate_decay: float = 0.9
    clamp_steps: int = 0
    negative_spikes: bool = False
    binary_threshold: float | None = None
    precision: Precision = Precision.FLOAT32
    energy_ac_pj: float = 0.9
    energy_mac_pj: float = 4.6

    #: Options that affect only simulation and reporting: a saved network is re-simulated
    #: with new values.
    SIMULATION_OPTIONS: ClassVar[tuple[str, ...]] = (
        "input_encoding",
        "readout",
        "batch_size",
        "device",
        "threads",
        "seed",
        "chunk",
        "precision",
        "energy_ac_pj",
        "energy_mac_pj",
    )

    def __post_init__(self) -> None:
        for name, kind in _ENUM_FIELDS.items():
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                raise ConfigError(
                    f"{name} must be one of {[m.value for m in kind]}, got {value!r}"
                ) from None
        if self.rate_window < 1:
            raise ConfigError(f"rate_window must be a positive integer, got {self.rate_window}")
        if not 0 < self.rate_decay < 1:
            raise ConfigError(f"rate_decay must be in (0, 1), got {self.rate_decay}")
        if self.binary_threshold is not None and not self.binary_threshold > 0:
            raise ConfigError(f"binary_threshold must be positive, got {self.binary_threshold}")
        for name in ("energy_ac_pj", "energy_mac_pj"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"{name} must be a finite energy >= 0 (pJ), got {value}")
        if self.negative_spikes and self.reset is not ResetMode.SUBTRACT:
            raise ConfigError(
                "negative_spikes needs reset='subtract' (with reset to zero the membrane "
                "forgets how far the spike count is ahead of the input); drop one of the two"
            )
        if self.clamp_steps < 0:
            raise ConfigError(f"clamp_steps must be >= 0, got {self.clamp_steps}")
        if not (0 < self.percentile <= 100) or math.isnan(self.percentile):
            raise ConfigError(
                f"percentile must be in (0, 100], got {self.percentile}; 99.9 is the default "
                "and 100 gives max-norm"
            )
        if not (0 <= self.v_init < 1):
            raise ConfigError(f"v_init must be in [0, 1) (a fraction of θ), got {self.v_init}")
        for name in ("calibration_samples", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {self.threads}")
        if self.chunk is not None and self.chunk < 1:
            raise ConfigError(f"chunk must be a positive integer, got {self.chunk}")
        try:
            device_type: str | None = torch.device(
                "cuda" if self.device == "auto" else self.device
            ).type
        except (RuntimeError, TypeError):
            device_type = None
        if device_type not in ("cpu", "cuda"):
            raise ConfigError(
                f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}"
            )

    def resolved_device(self) -> torch.device:
        """The device to run on (``auto`` becomes CUDA when available)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was requested but CUDA is not available; use 'cpu'")
        return device

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every option."""
        out = dataclasses.asdict(self)
        for name in _ENUM_FIELDS:
            out[name] = getattr(self, name).value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}")
        return cls(**data)


_ENUM_FIELDS: dict[str, type[enum.Enum]] = {
    "reset": ResetMode,
    "input_encoding": InputEncoding,
    "readout": Readout,
    "maxpool": MaxPoolMode,
    "rate_estimator": RateEstimator,
    "precision": Precision,
}
