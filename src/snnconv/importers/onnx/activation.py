"""Activation-function converters: Relu, Clip (a bounded ReLU), Sign, Softmax, LogSoftmax."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from snnconv.importers.onnx.builder import OnnxGraphBuilder
from snnconv.importers.onnx.clipfloor import clip_step
from snnconv.importers.onnx.registry import ONNX_CONVERTERS, ai_onnx
from snnconv.importers.onnx.values import Activation, ClipFloor, Value
from snnconv.ir import BinaryActivation, BinaryKind, Op, ReLU, Softmax


def _elementwise(b: OnnxGraphBuilder, value: Value, op: Op) -> Activation:
    """An elementwise op: applies in any layout, which it keeps."""
    act = b.activation(value)
    b.refuse_pending_pad(act)
    out = b.emit(op, [act.name])
    return replace(out, shape=act.shape, layout=act.layout)


@ONNX_CONVERTERS.register(*ai_onnx("Relu", 6, 14))
def convert_relu(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    return _elementwise(b, inputs[0], ReLU())


def _clip(b: OnnxGraphBuilder, value: Value, low: float | None, high: float | None) -> Value:
    if isinstance(value, ClipFloor):
        return clip_step(b, value, low, high)
    if low is None or low != 0.0:
        raise b.unsupported(
            f"Clip(min={low})", "only a lower bound of 0 maps onto an IF neuron (a bounded ReLU)"
        )
    if high is not None and high >= 3.0e38:
        high = None
    if high is not None and high <= 0:
        raise b.unsupported(f"Clip(0, {high})", "the upper bound must be positive")
    return _elementwise(b, value, ReLU(max_value=high))


@ONNX_CONVERTERS.register(*ai_onnx("Clip", 6))
def convert_clip_6(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    min: float = -3.4028234663852886e38,
    max: float = 3.4028234663852886e38,
) -> Value:
    return _clip(b, inputs[0], min, max)


@ONNX_CONVERTERS.register(*ai_onnx("Clip", 11, 13))
def convert_clip(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    low = b.optional_constant(inputs, 1, "min")
    low_value = None if low is None else float(low)
    high = b.optional_constant(inputs, 2, "max")
    return _clip(b, inputs[0], low_value, None if high is None else float(high))


@ONNX_CONVERTERS.register(*ai_onnx("Sign", 9, 13))
def convert_sign(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    return _elementwise(b, inputs[0], BinaryActivation(BinaryKind.SIGN))


@ONNX_CONVERTERS.register(*ai_onnx("Softmax", 1, 11, 13), *ai_onnx("LogSoftmax", 1, 11, 13))
def convert_softmax(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axis: int | None = None
) -> Value:
    x = b.materialize(inputs[0])
    default = -1 if b.opset >= 13 else 1
    dim = default if axis is None else int(axis)
    rank = len(x.shape)
    if b.opset < 13 and dim % rank != rank - 1:
        raise b.unsupported(
            "Softmax",
            f"axis {dim} before opset 13 coerces to 2-D over axes {dim}..; "
            "only the last axis is supported",
        )
    return b.emit(Softmax(dim, node.op_type == "LogSoftmax"), [x.name])
