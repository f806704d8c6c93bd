"""Shape converters: Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat, Shape.

Reshapes relabel an activation's elements; a Transpose only changes its layout
(see :class:`~snnconv.importers.onnx.values.Activation`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from snnconv.importers.onnx.builder import OnnxGraphBuilder
from snnconv.importers.onnx.registry import ONNX_CONVERTERS, ai_onnx
from snnconv.importers.onnx.values import Value
from snnconv.ir import Concat


@ONNX_CONVERTERS.register(*ai_onnx("Flatten", 1, 11, 13))
def convert_flatten(b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axis: int = 1) -> Value:
    act = b.activation(inputs[0])
    rank = len(act.shape)
    axis = axis % rank if axis < 0 else axis
    if axis != 1:
        raise b.unsupported(
            f"Flatten(axis={axis})", "only Flatten(axis=1) keeps the batch axis by itself"
        )
    return b.relabel(act, (act.shape[0], math.prod(act.shape[1:])))


@ONNX_CONVERTERS.register(*ai_onnx("Reshape", 5, 13, 14))
def convert_reshape(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, allowzero: int = 0
) -> Value:
    act = b.activation(inputs[0])
    target = [int(v) for v in b.constant(inputs[1], "shape").reshape(-1).tolist()]
    shape = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            d = act.shape[i]
        shape.append(d)
    if shape.count(-1) > 1:
        raise b.unsupported("Reshape", f"shape {target} has more than one -1")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        shape[shape.index(-1)] = math.prod(act.shape) // max(known, 1)
    return b.relabel(act, tuple(shape))


@ONNX_CONVERTERS.register(*ai_onnx("Squeeze", 1, 11, 13))
def convert_squeeze(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axes: Sequence[int] | None = None
) -> Value:
    act = b.activation(inputs[0])
    rank = len(act.shape)
    chosen = {a % rank for a in b.axes(inputs, axes)}
    if not chosen:
        chosen = {i for i in range(1, rank) if act.shape[i] == 1}
    if 0 in chosen or any(act.shape[a] != 1 for a in chosen):
        raise b.unsupported("Squeeze", f"axes {sorted(chosen)} of shape {list(act.shape)}")
    return b.relabel(act, tuple(d for i, d in enumerate(act.shape) if i not in chosen))


@ONNX_CONVERTERS.register(*ai_onnx("Unsqueeze", 1, 11, 13))
def convert_unsqueeze(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axes: Sequence[int] | None = None
) -> Value:
    act = b.activation(inputs[0])
    inserted = b.axes(inputs, axes)
    rank = len(act.shape) + len(inserted)
    chosen = {a % rank for a in inserted}
    if 0 in chosen:
        raise b.unsupported("Unsqueeze(axis 0)", "it would move the batch axis")
    dims = iter(act.shape)
    return b.relabel(act, tuple(1 if i in chosen else next(dims) for i in range(rank)))


@ONNX_CONVERTERS.register(*ai_onnx("Transpose", 1, 13))
def convert_transpose(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, perm: Sequence[int] | None = None
) -> Value:
    act = b.activation(inputs[0])
    b.refuse_pending_pad(act)
    rank = len(act.shape)
    order = list(perm) if perm is not None else list(reversed(range(rank)))
    if order[0] != 0:
        raise b.unsupported(f"Transpose(perm={order})", "it moves the batch axis")
    per_sample = math.prod(act.shape[1:])
    current = act.layout if act.layout is not None else torch.arange(per_sample)
    permuted = current.reshape(act.shape[1:]).permute([p - 1 for p in order[1:]]).reshape(-1)
    shape = tuple(act.shape[i] for i in order)
    layout = None if torch.equal(permuted, torch.arange(per_sample)) else permuted.clone()
    out = replace(act, shape=shape, layout=layout)
    return b.materialize(out) if layout is None else out


@ONNX_CONVERTERS.register(*ai_onnx("Concat", 4, 11, 13))
def convert_concat(b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axis: int) -> Value:
    acts = [b.materialize(v, f"input {i}") for i, v in enumerate(inputs)]
    rank = len(acts[0].shape)
    dim = axis % rank
    if dim == 0:
        raise b.unsupported("Concat(axis=0)", "concatenation along the batch axis")
    return b.emit(Concat(dim), [a.name for a in acts])


@ONNX_CONVERTERS.register(*ai_onnx("Shape", 1, 13, 15, 19, 21))
def convert_shape(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, start: int = 0, end: int | None = None
) -> Value:
    act = b.activation(inputs[0])
    return torch.tensor(act.shape[start:end], dtype=torch.int64)
