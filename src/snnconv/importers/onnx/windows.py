"""Sliding windows shared by Conv and the pooling ops: inputs, kernels and padding."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from snnconv.importers.onnx.builder import OnnxGraphBuilder
from snnconv.importers.onnx.values import Activation, Value


def pair(values: Sequence[int], what: str) -> tuple[int, int]:
    """``values`` as an ``(H, W)`` pair; a ValueError unless it has two entries."""
    if len(values) != 2:
        raise ValueError(f"{what} must have two entries (2-D), got {list(values)}")
    return (int(values[0]), int(values[1]))


def check_4d(b: OnnxGraphBuilder, act: Activation) -> None:
    """Refuse ``act`` unless it is an ``[N, C, H, W]`` tensor."""
    if len(act.shape) != 4:
        raise b.unsupported(
            b.current.op_type, f"only 2-D ops on [N, C, H, W] are supported, got {list(act.shape)}"
        )


def window_input(b: OnnxGraphBuilder, value: Value) -> Activation:
    """An NCHW activation, keeping a pending Pad for the window op to fold."""
    act = b.activation(value)
    base = b.materialize(replace(act, pad=None))
    check_4d(b, base)
    return replace(base, pad=act.pad, pad_node=act.pad_node)


def spatial_pads(b: OnnxGraphBuilder, pads: Sequence[int] | None) -> tuple[int, int, int, int]:
    """ONNX ``pads`` as ``(top, left, bottom, right)``; zeros where there are none."""
    if not pads:
        return (0, 0, 0, 0)
    if len(pads) != 4:
        raise b.unsupported(b.current.op_type, f"only 2-D ops are supported (pads={list(pads)})")
    return (int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3]))


def window_padding(
    b: OnnxGraphBuilder,
    act: Activation,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
    auto_pad: str,
) -> tuple[int, int]:
    """Symmetric (H, W) padding from ONNX ``pads``/``auto_pad`` plus any pending Pad."""
    top, left, bottom, right = spatial_pads(b, pads)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        h, w = act.shape[2:]
        pad_hw = []
        for size, k, s, d in zip((h, w), kernel, strides, dilations, strict=True):
            out = math.ceil(size / s)
            pad_hw.append(max((out - 1) * s + (k - 1) * d + 1 - size, 0))
        half = [p // 2 for p in pad_hw]
        if auto_pad == "SAME_UPPER":
            top, left, bottom, right = half[0], half[1], pad_hw[0] - half[0], pad_hw[1] - half[1]
        else:
            top, left, bottom, right = pad_hw[0] - half[0], pad_hw[1] - half[1], half[0], half[1]
    elif auto_pad not in ("NOTSET", "VALID", ""):
        raise b.unsupported(b.current.op_type, f"auto_pad={auto_pad}")
    if act.pad is not None:
        pt, pl, pb, pr = act.pad
        top, left, bottom, right = top + pt, left + pl, bottom + pb, right + pr
    if top != bottom or left != right:
        raise b.unsupported(
            b.current.op_type,
            f"asymmetric padding (top, left, bottom, right) = {(top, left, bottom, right)}; "
            "snnconv pads symmetrically. Use odd kernels with 'same' padding at stride 1, or "
            "pad explicitly and symmetrically",
        )
    return (top, left)
