"""Normalization converters: BatchNormalization with inference statistics."""

from __future__ import annotations

from typing import Any

from snnconv.importers.onnx.builder import OnnxGraphBuilder
from snnconv.importers.onnx.registry import ONNX_CONVERTERS, ai_onnx
from snnconv.importers.onnx.values import Value
from snnconv.ir import BatchNorm


@ONNX_CONVERTERS.register(*ai_onnx("BatchNormalization", 9, 14, 15))
def convert_batch_normalization(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    epsilon: float = 1e-5,
    momentum: float = 0.9,
    training_mode: int = 0,
) -> Value:
    if training_mode:
        raise b.unsupported(
            "BatchNormalization(training_mode=1)",
            "batch statistics cannot be computed by a spiking network; export in eval mode",
        )
    x = b.materialize(inputs[0])
    scale, shift, mean, var = (
        b.constant(v, what).float()
        for v, what in zip(inputs[1:5], ("scale", "B", "input_mean", "input_var"), strict=True)
    )
    return b.emit(BatchNorm(mean, var, scale, shift, float(epsilon)), [x.name])
