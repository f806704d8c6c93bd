"""Pooling converters: MaxPool, AveragePool, the global pools, and ReduceMean/ReduceMax
over the spatial axes (global pooling as Keras models write it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from snnconv.importers.onnx.builder import OnnxGraphBuilder
from snnconv.importers.onnx.registry import ONNX_CONVERTERS, ai_onnx
from snnconv.importers.onnx.values import Activation, Value, channels_last_order
from snnconv.importers.onnx.windows import (
    check_4d,
    pair,
    spatial_pads,
    window_input,
    window_padding,
)
from snnconv.ir import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, Op


def _kernel_and_stride(
    kernel_shape: Sequence[int], strides: Sequence[int] | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    kernel = pair(kernel_shape, "kernel_shape")
    stride = pair(strides, "strides") if strides else (1, 1)  # ONNX default: 1
    return kernel, stride


def _global_pool_op(x: Activation, is_max: bool) -> Op:
    """Max or average pooling of an NCHW activation over all of H and W."""
    h, w = x.shape[2:]
    return MaxPool2d((h, w), (h, w)) if is_max else AdaptiveAvgPool2d((1, 1))


@ONNX_CONVERTERS.register(*ai_onnx("MaxPool", 8, 10, 11, 12))
def convert_max_pool(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    kernel_shape: Sequence[int],
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    dilations: Sequence[int] = (1, 1),
    pads: Sequence[int] | None = None,
    storage_order: int = 0,
    strides: Sequence[int] | None = None,
) -> Value:
    if b.output_used(1):
        raise b.unsupported("MaxPool (Indices output)", "the argmax indices cannot be computed")
    x = b.materialize(inputs[0])
    check_4d(b, x)
    kernel, stride = _kernel_and_stride(kernel_shape, strides)
    padding = window_padding(b, x, kernel, stride, dilations, pads, auto_pad)
    op = MaxPool2d(kernel, stride, padding, pair(dilations, "dilations"), bool(ceil_mode))
    return b.emit(op, [x.name])


@ONNX_CONVERTERS.register(*ai_onnx("AveragePool", 7, 10, 11, 19))
def convert_average_pool(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    kernel_shape: Sequence[int],
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    count_include_pad: int = 0,
    dilations: Sequence[int] = (1, 1),
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> Value:
    x = window_input(b, inputs[0])
    if tuple(dilations) != (1, 1):
        raise b.unsupported("AveragePool(dilations>1)", "dilated average pooling")
    own = any(spatial_pads(b, pads)) or auto_pad in ("SAME_UPPER", "SAME_LOWER")
    if x.pad is not None and own and not count_include_pad:
        raise b.unsupported(
            "Pad + AveragePool(pads, count_include_pad=0)",
            f"the zeros of {x.pad_node} count in the average but the pool's own padding "
            "does not; one AvgPool2d cannot do both",
        )
    kernel, stride = _kernel_and_stride(kernel_shape, strides)
    include = bool(count_include_pad) or x.pad is not None
    padding = window_padding(b, x, kernel, stride, (1, 1), pads, auto_pad)
    op = AvgPool2d(kernel, stride, padding, bool(ceil_mode), include)
    return b.emit(op, [x.name])


@ONNX_CONVERTERS.register(*ai_onnx("GlobalAveragePool", 1), *ai_onnx("GlobalMaxPool", 1))
def convert_global_pool(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    x = b.materialize(inputs[0])
    check_4d(b, x)
    return b.emit(_global_pool_op(x, is_max=node.op_type == "GlobalMaxPool"), [x.name])


def _channels_last(act: Activation, internal: tuple[int, ...]) -> bool:
    """Whether ``act`` is the NHWC view of a 4-D NCHW internal tensor."""
    if act.layout is None or len(act.shape) != 4 or len(internal) != 4:
        return False
    c, h, w = internal[1:]
    if act.shape[1:] != (h, w, c):
        return False
    return torch.equal(act.layout, channels_last_order(c, h, w))


@ONNX_CONVERTERS.register(
    *ai_onnx("ReduceMean", 1, 11, 13, 18), *ai_onnx("ReduceMax", 1, 11, 12, 13, 18, 20)
)
def convert_reduce(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    axes: Sequence[int] | None = None,
    keepdims: int = 1,
    noop_with_empty_axes: int = 0,
) -> Value:
    """ReduceMean/ReduceMax over both spatial axes: global pooling (Keras's
    GlobalAveragePooling2D/GlobalMaxPooling2D, on NCHW or channels-last tensors)."""
    act = b.activation(inputs[0])
    rank = len(act.shape)
    chosen = sorted(a % rank for a in b.axes(inputs, axes)) or list(range(rank))
    if act.layout is None and rank == 4 and chosen == [2, 3]:
        x = b.materialize(act)
    elif rank == 4 and chosen == [1, 2] and _channels_last(act, b.internal_shape(act.name)):
        x = replace(act, shape=b.internal_shape(act.name), layout=None)
    else:
        raise b.unsupported(
            f"{node.op_type}(axes={chosen})",
            "only a reduction over both spatial axes (global pooling) of an NCHW or NHWC "
            "image tensor is supported",
        )
    pooled = b.emit(_global_pool_op(x, is_max=node.op_type == "ReduceMax"), [x.name])
    c = x.shape[1]
    if not keepdims:
        return b.relabel(pooled, (1, c))
    # [N, C, 1, 1] and [N, 1, 1, C] hold the elements in the same order.
    return pooled if chosen == [2, 3] else replace(pooled, shape=(1, 1, 1, c))
