"""Clip-floor (QCFS) activations written out as ONNX nodes, matched exactly.

A network trained with the quantization-clip-floor-shift activation
(:mod:`snnconv.nn.qcfs`) in another framework exports it as plain arithmetic:

    y = λ/L · Clip(Floor(x · L/λ + 0.5), 0, L)

that is ``Mul`` (or ``Div``) by a scalar, ``Add`` of 0.5, ``Floor``, ``Clip`` with
bounds 0 and a whole L, and ``Mul`` (or ``Div``) by the inverse scalar. The
converters below follow such a chain node by node: a :class:`ClipFloor` value
stands for the part seen so far, and when the last scale undoes the first (to
1e-6) the chain becomes one quantized ReLU (``ReLU(max_value=λ, levels=L)``), as
the PyTorch importers make of ``snnconv::qcfs``. Anything else that reads a
partial chain (a second use, another shift, a clip that is not ``[0, L]``, a
scale that does not undo the first) is refused with what was expected: a
product by a constant on its own is not an operation a spiking layer performs.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch

from snnconv.importers.onnx.builder import OnnxGraphBuilder
from snnconv.importers.onnx.registry import ONNX_CONVERTERS, ai_onnx
from snnconv.importers.onnx.values import CLIP_FLOOR_PATTERN as PATTERN
from snnconv.importers.onnx.values import Activation, ClipFloor, Value
from snnconv.ir import ReLU

__all__ = ["clip_step", "shift_step"]

_TOLERANCE = 1e-6


def _scalar(b: OnnxGraphBuilder, value: Value, what: str) -> float:
    constant = b.constant(value, what)
    if constant.numel() != 1:
        raise b.unsupported(
            b.current.op_type,
            f"a product with a constant of shape {list(constant.shape)} is not a spiking "
            f"operation; a scalar is accepted as part of a clip-floor activation ({PATTERN})",
        )
    return float(constant.reshape(()))


def _scale(b: OnnxGraphBuilder, inputs: list[Value], divide: bool) -> Value:
    """``Mul``/``Div`` of an activation (or a partial chain) by a scalar."""
    first, second = inputs[0], inputs[1]
    if not divide and isinstance(first, torch.Tensor):
        first, second = second, first
    if isinstance(second, (Activation, ClipFloor)):
        raise b.unsupported(
            b.current.op_type,
            "a product of two activations is not a spiking operation; only a scalar "
            f"constant is accepted, as part of a clip-floor activation ({PATTERN})",
        )
    factor = _scalar(b, second, "input 1")
    if factor == 0 or not math.isfinite(factor):
        raise b.unsupported(b.current.op_type, f"the factor must be finite and non-zero: {factor}")
    factor = 1.0 / factor if divide else factor
    if isinstance(first, Activation):
        b.refuse_pending_pad(first)
        return ClipFloor(first, factor, "scaled", b.current_source)
    if isinstance(first, ClipFloor) and first.stage == "scaled":
        return replace(first, scale=first.scale * factor)
    if isinstance(first, ClipFloor) and first.stage == "clipped":
        return _finish(b, replace(first, scale_out=first.scale_out * factor))
    raise b.unsupported(b.current.op_type, _expected(first))


def _finish(b: OnnxGraphBuilder, chain: ClipFloor) -> Value:
    """The chain as one quantized ReLU once its output scale undoes its input scale."""
    if abs(chain.scale * chain.scale_out - 1.0) > _TOLERANCE or chain.scale <= 0:
        return chain  # perhaps a further Mul/Div completes it
    assert chain.levels is not None
    bound = chain.levels * chain.scale_out
    act = chain.source
    out = b.emit(ReLU(max_value=bound, levels=chain.levels), [act.name])
    return replace(out, shape=act.shape, layout=act.layout)


def _expected(value: Value) -> str:
    stage = value.stage if isinstance(value, ClipFloor) else "an activation"
    following = {
        "scaled": "Add(0.5) (or a further Mul/Div by a scalar)",
        "shifted": "Floor",
        "floored": "Clip(0, L) with L a whole number",
        "clipped": "Mul/Div by the scalar that undoes the first one (λ/L)",
    }
    return (
        f"this reads a clip-floor activation {stage} so far, where {following.get(stage, '')} "
        f"must follow: only the whole pattern {PATTERN} is a spiking layer"
    )


@ONNX_CONVERTERS.register(*ai_onnx("Mul", 7, 13, 14))
def convert_mul(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    return _scale(b, inputs, divide=False)


@ONNX_CONVERTERS.register(*ai_onnx("Div", 7, 13, 14))
def convert_div(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    if not isinstance(inputs[1], torch.Tensor):
        raise b.unsupported("Div", "a division by an activation is not a spiking operation")
    return _scale(b, inputs, divide=True)


def shift_step(b: OnnxGraphBuilder, chain: ClipFloor, shift: torch.Tensor) -> Value:
    """``Add`` of a constant to a scaled chain: the shift of one half."""
    if chain.stage != "scaled" or shift.numel() != 1:
        raise b.unsupported("Add", _expected(chain))
    value = float(shift.reshape(()))
    if abs(value - 0.5) > _TOLERANCE:
        raise b.unsupported(
            "Add",
            f"a clip-floor activation shifts by 0.5 (QCFS), this one by {value}: {PATTERN}",
        )
    return replace(chain, stage="shifted", shift=value)


@ONNX_CONVERTERS.register(*ai_onnx("Floor", 6, 13))
def convert_floor(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    chain = inputs[0]
    if not isinstance(chain, ClipFloor) or chain.stage != "shifted":
        raise b.unsupported("Floor", _expected(chain))
    return replace(chain, stage="floored")


def clip_step(
    b: OnnxGraphBuilder, chain: ClipFloor, low: float | None, high: float | None
) -> Value:
    """``Clip`` of a floored chain: the bounds 0 and L."""
    if chain.stage != "floored":
        raise b.unsupported("Clip", _expected(chain))
    levels = round(high) if high is not None and math.isfinite(high) else 0
    if low != 0.0 or levels < 1 or abs(high - levels) > _TOLERANCE:  # type: ignore[operator]
        raise b.unsupported(
            "Clip",
            f"a clip-floor activation clips to [0, L] with L a whole number >= 1, this one to "
            f"[{low}, {high}]: {PATTERN}",
        )
    return replace(chain, stage="clipped", levels=levels)
