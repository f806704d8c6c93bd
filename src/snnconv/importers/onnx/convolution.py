"""Convolution converters: Conv, and the zero Pad folded into the next Conv/AveragePool."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from snnconv.importers.onnx.builder import OnnxGraphBuilder
from snnconv.importers.onnx.registry import ONNX_CONVERTERS, ai_onnx
from snnconv.importers.onnx.values import Activation, Value
from snnconv.importers.onnx.windows import pair, window_input, window_padding
from snnconv.ir import Conv2d


@ONNX_CONVERTERS.register(*ai_onnx("Conv", 1, 11))
def convert_conv(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] = (1, 1),
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] = (1, 1),
) -> Value:
    x = window_input(b, inputs[0])
    weight = b.constant(inputs[1], "weight").float()
    bias = b.optional_constant(inputs, 2, "bias")
    if weight.dim() != 4:
        raise b.unsupported("Conv", "only 2-D convolutions (4-D weights) are supported")
    kernel = tuple(kernel_shape) if kernel_shape else tuple(weight.shape[2:])
    padding = window_padding(b, x, kernel, strides, dilations, pads, auto_pad)
    op = Conv2d(
        weight.clone(),
        None if bias is None else bias.float().clone(),
        pair(strides, "strides"),
        padding,
        pair(dilations, "dilations"),
        int(group),
    )
    return b.emit(op, [x.name])


def _pad_inputs(
    b: OnnxGraphBuilder, act: Activation, inputs: list[Value]
) -> tuple[list[int], float]:
    """The ``pads`` over every axis and the fill value, from the inputs of Pad-11 and later."""
    amounts = [int(v) for v in b.constant(inputs[1], "pads").reshape(-1).tolist()]
    fill_value = b.optional_constant(inputs, 2, "constant_value")
    fill = 0.0 if fill_value is None else float(fill_value)
    axes_value = b.optional_constant(inputs, 3, "axes")
    if axes_value is not None:
        axes = [int(a) % len(act.shape) for a in axes_value.tolist()]
        full = [0] * (2 * len(act.shape))
        half = len(amounts) // 2
        for i, a in enumerate(axes):
            full[a], full[a + len(act.shape)] = amounts[i], amounts[i + half]
        amounts = full
    return amounts, fill


@ONNX_CONVERTERS.register(*ai_onnx("Pad", 2, 11, 13, 18, 19, 21))
def convert_pad(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    mode: str = "constant",
    pads: Sequence[int] | None = None,
    value: float = 0.0,
) -> Value:
    act = b.materialize(inputs[0])
    if b.opset >= 11:
        amounts, fill = _pad_inputs(b, act, inputs)
    else:
        amounts, fill = [int(v) for v in pads or ()], float(value)
    if mode != "constant" or fill != 0.0:
        raise b.unsupported(
            f"Pad(mode={mode}, value={fill})", "only zero padding can be folded into a convolution"
        )
    rank = len(act.shape)
    begin, end = amounts[:rank], amounts[rank:]
    if rank != 4 or any(begin[:2]) or any(end[:2]) or min(amounts) < 0:
        raise b.unsupported(
            f"Pad(pads={amounts})", "only non-negative padding of H and W of an NCHW tensor"
        )
    return replace(act, pad=(begin[2], begin[3], end[2], end[3]), pad_node=b.current_source)
