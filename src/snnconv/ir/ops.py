"""Typed operations of the internal graph.

Each op is a small frozen dataclass whose docstring states what it computes on
one batch (``x`` has a leading batch axis). ``apply`` evaluates the op as part
of an ordinary (analog) network; the spiking dynamics of :class:`IFNeuron` live
in :mod:`snnconv.sim.neurons`. Parameters are tensors; every other field is a
plain value, so an op round-trips through JSON + safetensors.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from snnconv.modes import BinaryKind, InputEncoding, RateEstimator, Readout, ResetMode


def _pair(value: int | tuple[int, ...] | list[int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    values = tuple(int(v) for v in value)
    if len(values) == 1:
        return (values[0], values[0])
    if len(values) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return (values[0], values[1])


def _check_finite(op_name: str, **tensors: Tensor | None) -> None:
    for name, tensor in tensors.items():
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            from snnconv.errors import NumericalError

            raise NumericalError(
                f"{op_name}.{name} contains NaN or Inf values; the model's parameters are "
                "corrupt or training diverged. Fix the checkpoint before converting."
            )


@dataclass(frozen=True, eq=False)
class Op:
    """Base class of graph operations."""

    #: True for ops with learned weights that normalization rescales.
    has_weights: ClassVar[bool] = False
    #: True for ops that are linear and positively homogeneous in their input
    #: (f(c·x) = c·f(x) for c > 0), so a per-layer scale passes through them.
    scale_transparent: ClassVar[bool] = False

    def apply(self, *inputs: Tensor) -> Tensor:
        """Evaluate the op on batched inputs."""
        raise NotImplementedError(type(self).__name__)

    @property
    def kind(self) -> str:
        """The op's type name, as used in saved files and reports."""
        return type(self).__name__

    def tensors(self) -> dict[str, Tensor]:
        """The op's tensor-valued fields (parameters), by field name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }


@dataclass(frozen=True, eq=False)
class Input(Op):
    """The network's input; ``shape`` is one sample's shape (no batch axis)."""

    shape: tuple[int, ...]

    def apply(self, *inputs: Tensor) -> Tensor:  # pragma: no cover - fed by executors
        raise RuntimeError("Input nodes are fed by the executor, not applied")


@dataclass(frozen=True, eq=False)
class Conv2d(Op):
    """y = conv2d(x, weight, bias, stride, padding, dilation, groups) (cross-correlation)."""

    weight: Tensor
    bias: Tensor | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    has_weights: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.weight.dim() != 4:
            raise ValueError(f"Conv2d weight must be 4-D, got shape {tuple(self.weight.shape)}")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise ValueError("Conv2d bias must have one entry per output channel")
        for name in ("stride", "padding", "dilation"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        _check_finite("Conv2d", weight=self.weight, bias=self.bias)

    def apply(self, *inputs: Tensor) -> Tensor:
        return F.conv2d(
            inputs[0], self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


@dataclass(frozen=True, eq=False)
class Linear(Op):
    """y = x · weightᵀ + bias (x is [N, in_features])."""

    weight: Tensor
    bias: Tensor | None = None

    has_weights: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.weight.dim() != 2:
            raise ValueError(f"Linear weight must be 2-D, got shape {tuple(self.weight.shape)}")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise ValueError("Linear bias must have one entry per output feature")
        _check_finite("Linear", weight=self.weight, bias=self.bias)

    def apply(self, *inputs: Tensor) -> Tensor:
        return F.linear(inputs[0], self.weight, self.bias)


@dataclass(frozen=True, eq=False)
class BatchNorm(Op):
    """y = (x − mean) / √(var + eps) · weight + bias, per channel (axis 1).

    Inference-mode batch normalization (running statistics), for 2-D
    ``[N, C]`` and 4-D ``[N, C, H, W]`` inputs. Folded away before simulation.
    """

    mean: Tensor
    var: Tensor
    weight: Tensor | None = None
    bias: Tensor | None = None
    eps: float = 1e-5

    def __post_init__(self) -> None:
        _check_finite("BatchNorm", mean=self.mean, var=self.var, weight=self.weight, bias=self.bias)

    def scale_shift(self) -> tuple[Tensor, Tensor]:
        """Per-channel (a, c) with y = a·x + c."""
        a = torch.rsqrt(self.var + self.eps)
        if self.weight is not None:
            a = a * self.weight
        c = -self.mean * a
        if self.bias is not None:
            c = c + self.bias
        return a, c

    def apply(self, *inputs: Tensor) -> Tensor:
        return F.batch_norm(
            inputs[0], self.mean, self.var, self.weight, self.bias, False, 0.0, self.eps
        )


@dataclass(frozen=True, eq=False)
class ReLU(Op):
    """y = max(x, 0), or min(max(x, 0), max_value) for a bounded ReLU (ReLU6, clamp(0, c)).

    With ``levels`` = L (a QCFS activation, :mod:`snnconv.nn.qcfs`) the output is
    quantized: λ/L · clip(⌊x·L/λ + ½⌋, 0, L) with λ = ``max_value``.
    """

    max_value: float | None = None
    levels: int | None = None

    def __post_init__(self) -> None:
        if self.max_value is not None and not self.max_value > 0:
            raise ValueError(f"a bounded ReLU needs a positive upper bound, got {self.max_value}")
        _check_levels(self.levels, self.max_value)

    def apply(self, *inputs: Tensor) -> Tensor:
        return _relu(inputs[0], self.max_value, self.levels)


def _check_levels(levels: int | None, max_value: float | None) -> None:
    if levels is not None and (levels < 1 or max_value is None):
        raise ValueError(
            f"a quantized ReLU needs levels >= 1 and a bound, got {levels}, {max_value}"
        )


def _relu(x: Tensor, max_value: float | None, levels: int | None) -> Tensor:
    """ReLU, bounded by ``max_value``, quantized to ``levels`` steps of max_value/levels."""
    if levels is not None and max_value is not None:
        steps = torch.clamp(torch.floor(x * (levels / max_value) + 0.5), 0, levels)
        return steps * (max_value / levels)
    y = torch.relu(x)
    return y if max_value is None else y.clamp(max=max_value)


def _tiled_mean(x: Tensor, kernel: tuple[int, int], divisor: int | None) -> Tensor:
    """Average pooling with non-overlapping windows (stride = kernel, no padding, floor
    mode) as strided additions: several times faster than ``F.avg_pool2d`` on CPUs for
    small kernels; equal for spikes, within float rounding otherwise."""
    kh, kw = kernel
    h, w = x.shape[-2] // kh, x.shape[-1] // kw
    rows = x[..., : h * kh, : w * kw].unflatten(-1, (w, kw))  # [..., H, w, kw]
    acc = sum((rows[..., j] for j in range(1, kw)), rows[..., 0])
    cols = acc.unflatten(-2, (h, kh))  # [..., h, kh, w]
    out = sum((cols[..., i, :] for i in range(1, kh)), cols[..., 0, :])
    return out / (divisor or kh * kw)


@dataclass(frozen=True, eq=False)
class AvgPool2d(Op):
    """y = avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    scale_transparent: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name in ("kernel_size", "stride", "padding"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))

    def apply(self, *inputs: Tensor) -> Tensor:
        x = inputs[0]
        tiled = self.stride == self.kernel_size and self.padding == (0, 0)
        if tiled and not self.ceil_mode and x.dim() == 4:
            return _tiled_mean(x, self.kernel_size, self.divisor_override)
        return F.avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


@dataclass(frozen=True, eq=False)
class AdaptiveAvgPool2d(Op):
    """y = adaptive_avg_pool2d(x, output_size)."""

    output_size: tuple[int, int]

    scale_transparent: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_size", _pair(self.output_size, "output_size"))

    def apply(self, *inputs: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(inputs[0], self.output_size)


@dataclass(frozen=True, eq=False)
class Reshape(Op):
    """y = x.reshape(N, *shape): ``shape`` is one sample's output shape.

    Covers flatten, view and reshape that keep the batch axis.
    """

    shape: tuple[int, ...]

    scale_transparent: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    def apply(self, *inputs: Tensor) -> Tensor:
        return inputs[0].reshape(inputs[0].shape[0], *self.shape)


@dataclass(frozen=True, eq=False)
class Dropout(Op):
    """y = x at inference (removed before simulation)."""

    p: float = 0.5

    scale_transparent: ClassVar[bool] = True

    def apply(self, *inputs: Tensor) -> Tensor:
        return inputs[0]


@dataclass(frozen=True, eq=False)
class Identity(Op):
    """y = x (removed before simulation)."""

    scale_transparent: ClassVar[bool] = True

    def apply(self, *inputs: Tensor) -> Tensor:
        return inputs[0]


@dataclass(frozen=True, eq=False)
class IFNeuron(Op):
    """Integrate-and-fire neurons replacing a ReLU.

    Per time step (dt = 1): V ← V + z; s = [V ≥ θ]; then V ← V − θ·s
    (``ResetMode.SUBTRACT``) or V ← V·(1 − s) (``ResetMode.ZERO``), with
    V(0) = ``v_init``·θ. The spike rate approximates ReLU(z)/θ clipped to [0, 1],
    so :meth:`apply` (used when the network runs as an ANN) is the ReLU, bounded
    by ``max_value`` when the layer replaced a bounded ReLU. For the first
    ``hold_steps`` steps the membrane is held at zero (no integration, no
    spikes): the toolbox's remedy for transient errors in deep networks.

    With ``negative_spikes`` (reset by subtraction only) a neuron whose net
    spike count c is positive also emits a −1 spike when V < 0 and
    V ≤ −h·θ (h = ``negative_threshold``), and then V ← V + θ. Since
    θ·c + V − V(0) is the integrated input X at every step, c stays within one
    spike of max(0, (X + V(0))/θ): spikes fired early by a transient are taken
    back when the input turns out lower, instead of staying counted. With
    h = 0 the count is exactly max(0, ⌊(X + V(0))/θ⌋) after every step (the
    T-step quantized ReLU the rate code stands for, rounded when V(0) = θ/2),
    as long as the input stays below θ per step, at the cost of more events
    where the input hovers around a multiple of θ; h = 1 (the default) fires
    fewer events and may keep one spike too many.

    ``v_offset`` (optional, one value per channel, in units of θ) is added to
    V(0): the membrane-potential calibration. ``bias_offset`` (optional, one
    value per channel) is added to the input current at every step: the bias
    calibration. Both act on the spiking network only: :meth:`apply` (the ANN)
    ignores them, so the ANN stays the converted model.

    ``levels`` = L marks a layer converted from a QCFS activation: :meth:`apply`
    is then the quantized activation (``max_value``/L steps), which the neuron
    reproduces exactly for a constant input after L steps from V(0) = θ/2.
    """

    threshold: float = 1.0
    reset: ResetMode = ResetMode.SUBTRACT
    v_init: float = 0.0
    max_value: float | None = None
    hold_steps: int = 0
    negative_spikes: bool = False
    negative_threshold: float = 1.0
    v_offset: Tensor | None = None
    bias_offset: Tensor | None = None
    levels: int | None = None

    def __post_init__(self) -> None:
        _check_levels(self.levels, self.max_value)
        if not (self.threshold > 0 and math.isfinite(self.threshold)):
            raise ValueError(f"IFNeuron threshold must be positive, got {self.threshold}")
        if not 0 <= self.negative_threshold <= 1:
            raise ValueError(f"negative_threshold must be in [0, 1], got {self.negative_threshold}")
        if self.hold_steps < 0:
            raise ValueError(f"hold_steps must be >= 0, got {self.hold_steps}")
        if self.negative_spikes and self.reset is not ResetMode.SUBTRACT:
            raise ValueError(
                "negative_spikes needs reset by subtraction: with reset to zero the "
                "membrane no longer remembers how far the count is ahead of the input"
            )

    def apply(self, *inputs: Tensor) -> Tensor:
        return _relu(inputs[0], self.max_value, self.levels)


@dataclass(frozen=True, eq=False)
class MaxPool2d(Op):
    """y = max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode).

    In a spiking network the pool is a gate (see :mod:`snnconv.sim.maxpool`):
    each window passes only the spikes of the input whose online-estimated
    rate (``estimator``, ``window``, ``decay``) is highest.
    """

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    estimator: RateEstimator = RateEstimator.COUNT
    window: int = 16
    decay: float = 0.9

    scale_transparent: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name in ("kernel_size", "stride", "padding", "dilation"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        object.__setattr__(self, "estimator", RateEstimator(self.estimator))
        if self.window < 1:
            raise ValueError(f"max-pool rate window must be >= 1, got {self.window}")
        if not 0 < self.decay < 1:
            raise ValueError(f"max-pool rate decay must be in (0, 1), got {self.decay}")

    def apply(self, *inputs: Tensor) -> Tensor:
        return window_max(
            inputs[0], self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )


def _pooled_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil: bool) -> int:
    """The output size of ``max_pool2d`` along one axis (PyTorch's rule, ceil_mode included:
    a last window that would start in the right padding is dropped)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def window_max(
    x: Tensor,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    ceil_mode: bool = False,
) -> Tensor:
    """``F.max_pool2d(x, ...)``, the same values, as the element-wise maximum of the
    window's strided slices where the window has at most 16 positions: PyTorch's CPU
    max-pooling kernel took 7× as long for 2×2 windows (8.8 ms against 1.3 ms on
    [256, 16, 28, 28]), and the spiking max-pool gate pools every step. Padding (and
    the overhang of ``ceil_mode``) is -inf, never the maximum, as in ``max_pool2d``."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    if kh * kw > 16 or not x.is_floating_point() or x.dim() not in (3, 4):
        return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    height, width = x.shape[-2:]
    out_h = _pooled_size(height, kh, sh, ph, dh, ceil_mode)
    out_w = _pooled_size(width, kw, sw, pw, dw, ceil_mode)
    if out_h < 1 or out_w < 1:  # let PyTorch say what is wrong with the sizes
        return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    bottom = max(0, (out_h - 1) * sh + dh * (kh - 1) + 1 - ph - height)
    right = max(0, (out_w - 1) * sw + dw * (kw - 1) + 1 - pw - width)
    if ph or pw or bottom or right:
        x = F.pad(x, (pw, right, ph, bottom), value=-math.inf)
    out: Tensor | None = None
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + (out_h - 1) * sh + 1, sh)
            cols = slice(j * dw, j * dw + (out_w - 1) * sw + 1, sw)
            part = x[..., rows, cols]
            out = part if out is None else torch.maximum(out, part)
    assert out is not None
    return out.contiguous() if kh * kw > 1 else out.clone()


@dataclass(frozen=True, eq=False)
class Concat(Op):
    """y = cat(inputs, dim) — ``dim`` counts the batch axis (1 = channels)."""

    dim: int = 1

    scale_transparent: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"Concat dim must be >= 1 (not the batch axis), got {self.dim}")

    def apply(self, *inputs: Tensor) -> Tensor:
        return torch.cat(inputs, dim=self.dim)


@dataclass(frozen=True, eq=False)
class Add(Op):
    """y = a + b (same shapes)."""

    def apply(self, *inputs: Tensor) -> Tensor:
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


@dataclass(frozen=True, eq=False)
class Scale(Op):
    """y = x · factor, with ``factor`` of one sample's shape (or broadcastable to it).

    Inserted by normalization where inputs with different scales meet (a
    residual add): the fixed identity synapses of the toolbox's rewrite.
    """

    factor: Tensor

    has_weights: ClassVar[bool] = True

    def apply(self, *inputs: Tensor) -> Tensor:
        return inputs[0] * self.factor


@dataclass(frozen=True, eq=False)
class Softmax(Op):
    """y = softmax(x, dim), or log_softmax if ``log`` (only as the network's output)."""

    dim: int = -1
    log: bool = False

    def apply(self, *inputs: Tensor) -> Tensor:
        fn = F.log_softmax if self.log else F.softmax
        return fn(inputs[0], dim=self.dim)


@dataclass(frozen=True, eq=False)
class BinaryActivation(Op):
    """y = sign(x) or H(x) = [x > 0]: the activations of a BinaryNet."""

    function: BinaryKind = BinaryKind.SIGN

    def __post_init__(self) -> None:
        object.__setattr__(self, "function", BinaryKind(self.function))

    def apply(self, *inputs: Tensor) -> Tensor:
        x = inputs[0]
        return torch.sign(x) if self.function is BinaryKind.SIGN else (x > 0).to(x.dtype)


@dataclass(frozen=True, eq=False)
class BinaryNeuron(Op):
    """Spiking units replacing a binary activation (no normalization needed).

    Heaviside: an IF neuron (V ← V + z; s = [V ≥ θ]; reset), rate ≈ clip(z/θ, 0, 1).
    Sign: a two-sided IF neuron emitting ±1 spikes: s = [V ≥ θ] − [V ≤ −θ], then
    V ← V − θ·s (reset by subtraction) or V ← 0 where s ≠ 0 (reset to zero);
    its rate ≈ clip(z/θ, −1, 1), which agrees in sign with sign(z). Run as an
    ANN (:meth:`apply`) it is the binary activation itself.
    """

    function: BinaryKind = BinaryKind.SIGN
    threshold: float = 1.0
    reset: ResetMode = ResetMode.SUBTRACT
    v_init: float = 0.0
    hold_steps: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "function", BinaryKind(self.function))
        object.__setattr__(self, "reset", ResetMode(self.reset))
        if not (self.threshold > 0 and math.isfinite(self.threshold)):
            raise ValueError(f"BinaryNeuron threshold must be positive, got {self.threshold}")

    def apply(self, *inputs: Tensor) -> Tensor:
        return BinaryActivation(self.function).apply(*inputs)


#: Every op type, by the name used in saved files.
OP_TYPES: dict[str, type[Op]] = {
    cls.__name__: cls
    for cls in (
        Input,
        Conv2d,
        Linear,
        BatchNorm,
        ReLU,
        AvgPool2d,
        AdaptiveAvgPool2d,
        Reshape,
        Dropout,
        Identity,
        IFNeuron,
        MaxPool2d,
        Concat,
        Add,
        Scale,
        Softmax,
        BinaryActivation,
        BinaryNeuron,
    )
}

#: Ops with spiking dynamics (membrane state, spikes as outputs).
SPIKING_OPS: tuple[type[Op], ...] = (IFNeuron, BinaryNeuron)

#: Enumerations that appear as op fields (for saved files).
ENUM_TYPES: dict[str, type[enum.Enum]] = {
    cls.__name__: cls for cls in (ResetMode, InputEncoding, RateEstimator, Readout, BinaryKind)
}
