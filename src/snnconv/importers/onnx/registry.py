"""The ONNX converter registry, keyed by ``(domain, op_type, since_version)``.

Registering one key twice is an error (:class:`~snnconv.importers.registry.ConverterRegistry`
checks), so two converters never compete for one operator version. For a node of
opset ``v`` the converter with the largest ``since_version ≤ v`` applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from snnconv.importers.onnx.values import Value
from snnconv.importers.registry import ConverterRegistry


class OnnxOp(NamedTuple):
    """A registry key: the ONNX operator ``op_type`` of ``domain`` as defined since an opset."""

    domain: str
    op_type: str
    since_version: int

    def __str__(self) -> str:
        domain = f"{self.domain}." if self.domain else ""
        return f"{domain}{self.op_type}-{self.since_version}"


def ai_onnx(op_type: str, *since_versions: int) -> tuple[OnnxOp, ...]:
    """The keys of default-domain (``ai.onnx``) ``op_type`` at each of ``since_versions``."""
    return tuple(OnnxOp("", op_type, version) for version in since_versions)


#: Signature: (builder, node, inputs, **attributes) -> the node's output values.
OnnxConverter = Callable[..., Sequence[Value] | Value]
ONNX_CONVERTERS: ConverterRegistry[OnnxConverter] = ConverterRegistry("ONNX importer")

#: What the ONNX importer accepts, in ONNX's own words (for error messages and docs).
SUPPORTED_ONNX_OPS: tuple[str, ...] = (
    "Conv (2-D, symmetric padding)",
    "Gemm",
    "MatMul (+ Add of a bias)",
    "Relu",
    "Clip(0, c)",
    "Mul/Div by λ/L, Add(0.5), Floor, Clip(0, L), Mul/Div by L/λ: a clip-floor (QCFS) activation",
    "BatchNormalization (inference)",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean / ReduceMax over H and W (global pooling, NCHW or NHWC)",
    "Flatten",
    "Reshape, Squeeze, Unsqueeze",
    "Transpose",
    "Concat",
    "Add",
    "Softmax / LogSoftmax (output)",
    "Dropout",
    "Identity",
    "Constant",
    "Pad (zeros, folded into the next Conv/AveragePool)",
    "Sign",
    "Shape/Gather/Unsqueeze/Concat/... on constants and static shapes (folded)",
)


def find_converter(domain: str, op_type: str, opset: int) -> OnnxConverter | None:
    """The converter for ``op_type`` of ``domain`` at ``opset`` (largest since_version ≤ opset)."""
    best: tuple[int, OnnxConverter] | None = None
    registered = ONNX_CONVERTERS.keys()
    for key in registered:
        if not isinstance(key, OnnxOp):
            continue
        if key.domain == domain and key.op_type == op_type and key.since_version <= opset:
            conv = ONNX_CONVERTERS.get(key)
            if conv is not None and (best is None or key.since_version > best[0]):
                best = (key.since_version, conv)
    return None if best is None else best[1]


def supported_op_types() -> list[str]:
    """The ONNX op types with converters, sorted."""
    registered = ONNX_CONVERTERS.keys()
    return sorted({k.op_type for k in registered if isinstance(k, OnnxOp)})
