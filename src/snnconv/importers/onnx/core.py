"""Core converters: dense layers (Gemm, MatMul), Add, and the ops that only pass
values on (Dropout, Identity, Constant)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from snnconv.importers.onnx.builder import OnnxGraphBuilder
from snnconv.importers.onnx.clipfloor import shift_step
from snnconv.importers.onnx.registry import ONNX_CONVERTERS, ai_onnx
from snnconv.importers.onnx.values import Activation, ClipFloor, Value
from snnconv.ir import Add, Linear


def _unpermute_columns(weight: torch.Tensor, layout: torch.Tensor | None) -> torch.Tensor:
    """Weights reading the internal order: ``W_int[:, p[j]] = W[:, j]``."""
    if layout is None:
        return weight.contiguous().clone()
    out = torch.empty_like(weight)
    out[:, layout] = weight
    return out


@ONNX_CONVERTERS.register(*ai_onnx("Gemm", 1, 11))
def convert_gemm(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
) -> Value:
    if transA:
        raise b.unsupported("Gemm(transA=1)", "the activation must be the [batch, features] A")
    name, layout = b.features(inputs[0])
    matrix = b.constant(inputs[1], "B (weight)").float()
    weight = matrix if transB else matrix.t()
    weight = weight * float(alpha)
    bias = None
    c = b.optional_constant(inputs, 2, "C (bias)")
    if c is not None:
        c = c.float() * float(beta)
        if c.numel() not in (1, weight.shape[0]):
            raise b.unsupported("Gemm", f"bias C of shape {list(c.shape)} is not per output")
        bias = c.reshape(-1).expand(weight.shape[0]).clone()
    return b.emit(Linear(_unpermute_columns(weight, layout), bias), [name])


@ONNX_CONVERTERS.register(*ai_onnx("MatMul", 1, 13))
def convert_matmul(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    name, layout = b.features(inputs[0])
    matrix = b.constant(inputs[1], "second operand (weight)").float()
    if matrix.dim() != 2:
        raise b.unsupported("MatMul", f"the weight must be 2-D, got {list(matrix.shape)}")
    return b.emit(Linear(_unpermute_columns(matrix.t(), layout)), [name])


@ONNX_CONVERTERS.register(*ai_onnx("Add", 7, 13, 14))
def convert_add(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    first, second = inputs[0], inputs[1]
    if isinstance(first, torch.Tensor) and isinstance(second, (Activation, ClipFloor)):
        first, second = second, first
    if isinstance(first, ClipFloor) and isinstance(second, torch.Tensor):
        return shift_step(b, first, second)
    if isinstance(first, Activation) and isinstance(second, torch.Tensor):
        names = list(node.input) if isinstance(inputs[0], Activation) else list(node.input)[::-1]
        folded = b.fold_bias(first, second, names[0])
        if folded is None:
            raise b.unsupported(
                "Add(activation, constant)",
                "a constant can only be added as the bias of the Conv/Gemm/MatMul right before "
                "it (with no other users); fold it into a bias",
            )
        return folded
    a, c = b.activation(first, "input 0"), b.activation(second, "input 1")
    if a.shape != c.shape:
        raise b.unsupported(
            "Add", f"the inputs have different shapes {list(a.shape)} and {list(c.shape)}"
        )
    same = (a.layout is None and c.layout is None) or (
        a.layout is not None and c.layout is not None and torch.equal(a.layout, c.layout)
    )
    if not same or b.internal_shape(a.name) != b.internal_shape(c.name):
        a, c = b.materialize(a, "input 0"), b.materialize(c, "input 1")
    out = b.emit(Add(), [a.name, c.name])
    return replace(out, shape=a.shape, layout=a.layout)


@ONNX_CONVERTERS.register(*ai_onnx("Dropout", 7, 10, 12, 13))
def convert_dropout(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, ratio: float = 0.5, seed: int = 0
) -> Sequence[Value]:
    if b.output_used(1):
        raise b.unsupported("Dropout (mask output)", "the dropout mask is not computed")
    if len(inputs) > 2 and isinstance(inputs[2], torch.Tensor) and bool(inputs[2].any()):
        raise b.unsupported("Dropout(training_mode=1)", "export the model in eval mode")
    return [b.activation(inputs[0]), None]


@ONNX_CONVERTERS.register(*ai_onnx("Identity", 1, 13, 14, 16))
def convert_identity(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    return inputs[0]


@ONNX_CONVERTERS.register(*ai_onnx("Constant", 1, 9, 11, 12, 13))
def convert_constant(b: OnnxGraphBuilder, node: Any, inputs: list[Value], **attrs: Any) -> Value:
    if len(attrs) != 1:
        raise b.unsupported(
            "Constant", f"expected exactly one value attribute, got {sorted(attrs)}"
        )
    ((key, value),) = attrs.items()
    if key == "sparse_value":
        raise b.unsupported("Constant(sparse_value)", "sparse constants")
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, str) or (isinstance(value, tuple) and value and isinstance(value[0], str)):
        raise b.unsupported(f"Constant({key})", "string constants")
    dtype = torch.float32 if key.startswith("value_float") else torch.int64
    return torch.tensor(value, dtype=dtype)
