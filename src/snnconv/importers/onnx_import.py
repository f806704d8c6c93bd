"""Import an ONNX model (opsets 11 to the ``onnx`` package's current one) into the internal graph.

ONNX is the path for Keras/TensorFlow (through ``tf2onnx``) and other frameworks.
Converters are registered by :class:`OnnxOp` ``(domain, op_type, since_version)``;
for a node of opset ``v`` the converter with the largest ``since_version ≤ v``
applies. Each converter receives the builder, the node, its input values and the
node's ONNX attributes as keyword arguments.

Values flowing between ONNX nodes are either constants (``torch.Tensor``:
initializers, ``Constant`` nodes and anything computed from them, folded with
ONNX's reference evaluator) or :class:`Activation` s computed from the image.
An activation may carry a *layout*: a permutation of its elements relative to the
internal (NCHW) tensor. That is how the NHWC↔NCHW ``Transpose`` nodes that
``tf2onnx`` writes around Keras convolutions are folded away: a transpose only
changes the layout; a layout reaching a dense layer is folded into its weight
columns; a layout reaching an op that needs NCHW is refused with a clear error.
"""

from __future__ import annotations

import enum
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from snnconv.errors import ConfigError, ModelLoadError, ShapeError, UnsupportedOpError
from snnconv.importers.registry import ConverterRegistry
from snnconv.ir import (
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    BatchNorm,
    BinaryActivation,
    BinaryKind,
    Concat,
    Conv2d,
    Graph,
    Input,
    Linear,
    MaxPool2d,
    Node,
    Op,
    ReLU,
    Reshape,
    Softmax,
)

#: The oldest default-domain opset the importer reads.
MIN_OPSET = 11


def _require_onnx() -> Any:
    """The ``onnx`` module, or a clear error naming the extra to install."""
    try:
        import onnx
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ModelLoadError(
            f"ONNX import needs the onnx package: pip install 'snnconv[onnx]' ({error})"
        ) from error
    return onnx


def parse_input_layout(value: InputLayout | str) -> InputLayout:
    """An :class:`InputLayout` from itself or its name (``auto``, ``nchw``, ``nhwc``)."""
    if isinstance(value, InputLayout):
        return value
    try:
        return InputLayout(str(value).lower())
    except ValueError:
        raise ConfigError(
            f"input layout must be one of {[m.value for m in InputLayout]}, got {value!r}"
        ) from None


def max_opset() -> int:
    """The newest default-domain opset: the one the installed ``onnx`` package defines."""
    import onnx.defs

    return int(onnx.defs.onnx_opset_version())


class InputLayout(enum.Enum):
    """How the ONNX model's image input is laid out."""

    AUTO = "auto"
    """NHWC if every consumer of a 4-D input is a Transpose(perm=[0, 3, 1, 2]), else NCHW."""
    NCHW = "nchw"
    """Channels first (PyTorch, and Keras models converted with ``--inputs-as-nchw``)."""
    NHWC = "nhwc"
    """Channels last (Keras/TensorFlow models converted by tf2onnx without ``--inputs-as-nchw``)."""


class OnnxOp(NamedTuple):
    """A registry key: the ONNX operator ``op_type`` of ``domain`` as defined since an opset."""

    domain: str
    op_type: str
    since_version: int

    def __str__(self) -> str:
        domain = f"{self.domain}." if self.domain else ""
        return f"{domain}{self.op_type}-{self.since_version}"


@dataclass(frozen=True, eq=False)
class Activation:
    """A tensor computed from the input image.

    Attributes:
        name: The internal graph node that holds its elements.
        shape: Its ONNX shape, batch axis first (the batch axis is 1 here).
        layout: ``None`` if the internal tensor has exactly this shape and order;
            else a permutation ``p`` of the per-sample elements with
            ``onnx_value.flatten(1)[:, j] == internal.flatten(1)[:, p[j]]``.
        pad: A pending zero padding ``(top, left, bottom, right)`` of a ``Pad`` node,
            folded into the next Conv or AveragePool.
        pad_node: Where that padding came from (for messages).
    """

    name: str
    shape: tuple[int, ...]
    layout: torch.Tensor | None = None
    pad: tuple[int, int, int, int] | None = None
    pad_node: str = ""


Value = Activation | torch.Tensor | None

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


def _source(node: Any, index: int) -> str:
    return f"{node.name or f'#{index}'} ({node.op_type})"


class OnnxGraphBuilder:
    """Accumulates internal nodes while walking an ONNX graph in topological order."""

    def __init__(self, opset: int, uses: dict[str, int]):
        self.opset = opset
        self.uses = uses
        self.nodes: list[Node] = []
        self.examples: dict[str, torch.Tensor] = {}
        self.values: dict[str, Value] = {}
        self._names: set[str] = set()
        self.current: Any = None
        self.current_source = ""

    # -- errors -----------------------------------------------------------
    def unsupported(self, op: str, reason: str = "") -> UnsupportedOpError:
        """The error for something the current node does that cannot be converted."""
        return UnsupportedOpError(op, self.current_source, SUPPORTED_ONNX_OPS, reason)

    # -- values -----------------------------------------------------------
    def constant(self, value: Value, what: str) -> torch.Tensor:
        """``value`` as a constant tensor; refuses activations."""
        if isinstance(value, torch.Tensor):
            return value
        raise self.unsupported(
            self.current.op_type,
            f"its {what} must be a constant (an initializer), not computed from the input",
        )

    def activation(self, value: Value, what: str = "input") -> Activation:
        """``value`` as an activation; refuses constants."""
        if isinstance(value, Activation):
            return value
        raise self.unsupported(
            self.current.op_type,
            f"its {what} must be computed from the network input; an op on constants only "
            "is folded, so this usually means a weight is fed where data was expected",
        )

    def _unique(self, base: str) -> str:
        name = re.sub(r"[^0-9A-Za-z_.]", "_", base) or "node"
        candidate, k = name, 1
        while candidate in self._names:
            k += 1
            candidate = f"{name}_{k}"
        self._names.add(candidate)
        return candidate

    def add_input(self, shape: tuple[int, ...]) -> str:
        """Create the internal Input node for one sample of ``shape`` (NCHW)."""
        self._names.add("input")
        self.nodes.append(Node("input", Input(shape), (), {"source": "input"}))
        self.examples["input"] = torch.zeros((1, *shape))
        return "input"

    def emit(self, op: Op, inputs: Sequence[str], suffix: str = "") -> Activation:
        """Append an internal node computing ``op`` on internal nodes ``inputs``."""
        base = self.current.name or f"{self.current.op_type}"
        name = self._unique(base + suffix)
        example = op.apply(*(self.examples[i] for i in inputs))
        self.examples[name] = example
        self.nodes.append(Node(name, op, tuple(inputs), {"source": self.current_source}))
        return Activation(name, tuple(example.shape))

    def internal_shape(self, name: str) -> tuple[int, ...]:
        """The shape (batch 1 first) of internal node ``name``."""
        return tuple(self.examples[name].shape)

    def materialize(self, value: Value, what: str = "input") -> Activation:
        """An activation whose internal tensor has exactly its ONNX shape and order (NCHW)."""
        act = self.activation(value, what)
        if act.pad is not None:
            raise self.unsupported(
                "Pad",
                f"the zero padding of {act.pad_node} can only be folded into a following Conv "
                f"or AveragePool, but it feeds {self.current.op_type}; pad inside the "
                "convolution/pooling instead",
            )
        if act.layout is not None:
            raise self.unsupported(
                self.current.op_type,
                f"its {what} is in a permuted layout (e.g. channels-last, NHWC) left by a "
                "Transpose; snnconv computes in NCHW and folds transposes only into dense "
                "layers (Gemm/MatMul) or cancels them with the inverse transpose. Convert the "
                "model with NCHW tensors (tf2onnx --inputs-as-nchw) or add the transpose back",
            )
        if self.internal_shape(act.name) != act.shape:
            return self.emit(Reshape(act.shape[1:]), [act.name], suffix="_reshape")
        return act

    def features(self, value: Value) -> tuple[str, torch.Tensor | None]:
        """A 2-D activation for a dense layer: (internal node name, element permutation)."""
        act = self.activation(value)
        if act.pad is not None:
            self.materialize(act)  # raises with the Pad's name
        if len(act.shape) != 2:
            raise self.unsupported(
                self.current.op_type,
                f"a dense layer needs a 2-D [batch, features] input, got shape {list(act.shape)}; "
                "flatten before it",
            )
        name = act.name
        if len(self.internal_shape(name)) != 2:
            name = self.emit(Reshape((act.shape[1],)), [name], suffix="_flatten").name
        return name, act.layout

    def fold_bias(self, act: Activation, bias: torch.Tensor, onnx_name: str) -> Activation | None:
        """Add a constant ``bias`` to the Conv2d/Linear that produced ``act``, if it can.

        Possible when that layer was the last one emitted, its output (ONNX value
        ``onnx_name``) has no other user, and ``bias`` is constant per output channel.
        """
        if act.layout is not None or act.pad is not None or self.uses.get(onnx_name, 0) != 1:
            return None
        producer = self.nodes[-1]
        if producer.name != act.name or not isinstance(producer.op, (Conv2d, Linear)):
            return None
        try:
            full = torch.zeros(act.shape) + bias.float()
        except RuntimeError:
            return None
        if tuple(full.shape) != act.shape:
            return None
        per_channel = full[0].reshape(full.shape[1], -1)
        if not torch.equal(per_channel, per_channel[:, :1].expand_as(per_channel)):
            return None
        b = per_channel[:, 0].clone()
        old = producer.op.bias
        self.nodes[-1] = replace(
            producer, op=replace(producer.op, bias=b if old is None else old + b)
        )
        self.examples[producer.name] = self.examples[producer.name] + b.reshape(
            (1, -1) + (1,) * (len(act.shape) - 2)
        )
        return act


# -- attribute helpers ----------------------------------------------------------
def _attribute_value(attribute: Any) -> Any:
    import onnx

    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value)
    if isinstance(value, onnx.TensorProto):
        return _tensor(value)
    return value


def _tensor(proto: Any) -> torch.Tensor:
    from onnx import numpy_helper

    array = np.array(numpy_helper.to_array(proto))
    if array.dtype == np.float64 or array.dtype == np.float16:
        array = array.astype(np.float32)
    return torch.from_numpy(array.copy())


def _spatial_pads(b: OnnxGraphBuilder, pads: Sequence[int] | None) -> tuple[int, int, int, int]:
    if not pads:
        return (0, 0, 0, 0)
    if len(pads) != 4:
        raise b.unsupported(b.current.op_type, f"only 2-D ops are supported (pads={list(pads)})")
    return (int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3]))


def _window_padding(
    b: OnnxGraphBuilder,
    act: Activation,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
    auto_pad: str,
) -> tuple[int, int]:
    """Symmetric (H, W) padding from ONNX ``pads``/``auto_pad`` plus any pending Pad."""
    top, left, bottom, right = _spatial_pads(b, pads)
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


def _pair(values: Sequence[int], what: str) -> tuple[int, int]:
    if len(values) != 2:
        raise ValueError(f"{what} must have two entries (2-D), got {list(values)}")
    return (int(values[0]), int(values[1]))


def _check_4d(b: OnnxGraphBuilder, act: Activation) -> None:
    if len(act.shape) != 4:
        raise b.unsupported(
            b.current.op_type, f"only 2-D ops on [N, C, H, W] are supported, got {list(act.shape)}"
        )


def _conv_input(b: OnnxGraphBuilder, value: Value) -> Activation:
    """An NCHW activation, keeping a pending Pad for the window op to fold."""
    act = b.activation(value)
    base = b.materialize(replace(act, pad=None))
    _check_4d(b, base)
    return replace(base, pad=act.pad, pad_node=act.pad_node)


# -- converters ---------------------------------------------------------------
@ONNX_CONVERTERS.register(OnnxOp("", "Conv", 1), OnnxOp("", "Conv", 11))
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
    x = _conv_input(b, inputs[0])
    weight = b.constant(inputs[1], "weight").float()
    bias = (
        b.constant(inputs[2], "bias").float() if len(inputs) > 2 and inputs[2] is not None else None
    )
    if weight.dim() != 4:
        raise b.unsupported("Conv", "only 2-D convolutions (4-D weights) are supported")
    kernel = tuple(kernel_shape) if kernel_shape else tuple(weight.shape[2:])
    padding = _window_padding(b, x, kernel, strides, dilations, pads, auto_pad)
    op = Conv2d(
        weight.clone(),
        None if bias is None else bias.clone(),
        _pair(strides, "strides"),
        padding,
        _pair(dilations, "dilations"),
        int(group),
    )
    return b.emit(op, [x.name])


@ONNX_CONVERTERS.register(OnnxOp("", "Gemm", 1), OnnxOp("", "Gemm", 11))
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
    if len(inputs) > 2 and inputs[2] is not None:
        c = b.constant(inputs[2], "C (bias)").float() * float(beta)
        if c.numel() not in (1, weight.shape[0]):
            raise b.unsupported("Gemm", f"bias C of shape {list(c.shape)} is not per output")
        bias = c.reshape(-1).expand(weight.shape[0]).clone()
    return b.emit(Linear(_unpermute_columns(weight, layout), bias), [name])


def _unpermute_columns(weight: torch.Tensor, layout: torch.Tensor | None) -> torch.Tensor:
    """Weights reading the internal order: ``W_int[:, p[j]] = W[:, j]``."""
    if layout is None:
        return weight.contiguous().clone()
    out = torch.empty_like(weight)
    out[:, layout] = weight
    return out


@ONNX_CONVERTERS.register(OnnxOp("", "MatMul", 1), OnnxOp("", "MatMul", 13))
def convert_matmul(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    name, layout = b.features(inputs[0])
    matrix = b.constant(inputs[1], "second operand (weight)").float()
    if matrix.dim() != 2:
        raise b.unsupported("MatMul", f"the weight must be 2-D, got {list(matrix.shape)}")
    return b.emit(Linear(_unpermute_columns(matrix.t(), layout)), [name])


@ONNX_CONVERTERS.register(OnnxOp("", "Relu", 6), OnnxOp("", "Relu", 14))
def convert_relu(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    return _elementwise(b, inputs[0], ReLU())


def _elementwise(b: OnnxGraphBuilder, value: Value, op: Op) -> Activation:
    """An elementwise op: applies in any layout, which it keeps."""
    act = b.activation(value)
    if act.pad is not None:
        b.materialize(act)  # raises with the Pad's name
    out = b.emit(op, [act.name])
    return replace(out, shape=act.shape, layout=act.layout)


@ONNX_CONVERTERS.register(OnnxOp("", "Clip", 6))
def convert_clip_6(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    min: float = -3.4028234663852886e38,
    max: float = 3.4028234663852886e38,
) -> Value:
    return _clip(b, inputs[0], min, max)


@ONNX_CONVERTERS.register(OnnxOp("", "Clip", 11), OnnxOp("", "Clip", 13))
def convert_clip(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    low = float(b.constant(inputs[1], "min")) if len(inputs) > 1 and inputs[1] is not None else None
    high = (
        float(b.constant(inputs[2], "max")) if len(inputs) > 2 and inputs[2] is not None else None
    )
    return _clip(b, inputs[0], low, high)


def _clip(b: OnnxGraphBuilder, value: Value, low: float | None, high: float | None) -> Value:
    if low is None or low != 0.0:
        raise b.unsupported(
            f"Clip(min={low})", "only a lower bound of 0 maps onto an IF neuron (a bounded ReLU)"
        )
    if high is not None and high >= 3.0e38:
        high = None
    if high is not None and high <= 0:
        raise b.unsupported(f"Clip(0, {high})", "the upper bound must be positive")
    return _elementwise(b, value, ReLU(max_value=high))


@ONNX_CONVERTERS.register(
    OnnxOp("", "BatchNormalization", 9),
    OnnxOp("", "BatchNormalization", 14),
    OnnxOp("", "BatchNormalization", 15),
)
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


@ONNX_CONVERTERS.register(
    OnnxOp("", "MaxPool", 8),
    OnnxOp("", "MaxPool", 10),
    OnnxOp("", "MaxPool", 11),
    OnnxOp("", "MaxPool", 12),
)
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
    if len(node.output) > 1 and node.output[1] and b.uses.get(node.output[1], 0):
        raise b.unsupported("MaxPool (Indices output)", "the argmax indices cannot be computed")
    x = b.materialize(inputs[0])
    _check_4d(b, x)
    kernel = _pair(kernel_shape, "kernel_shape")
    stride = _pair(strides, "strides") if strides else (1, 1)  # ONNX default: 1
    padding = _window_padding(b, x, kernel, stride, dilations, pads, auto_pad)
    op = MaxPool2d(kernel, stride, padding, _pair(dilations, "dilations"), bool(ceil_mode))
    return b.emit(op, [x.name])


@ONNX_CONVERTERS.register(
    OnnxOp("", "AveragePool", 7),
    OnnxOp("", "AveragePool", 10),
    OnnxOp("", "AveragePool", 11),
    OnnxOp("", "AveragePool", 19),
)
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
    x = _conv_input(b, inputs[0])
    if tuple(dilations) != (1, 1):
        raise b.unsupported("AveragePool(dilations>1)", "dilated average pooling")
    own = any(_spatial_pads(b, pads)) or auto_pad in ("SAME_UPPER", "SAME_LOWER")
    if x.pad is not None and own and not count_include_pad:
        raise b.unsupported(
            "Pad + AveragePool(pads, count_include_pad=0)",
            f"the zeros of {x.pad_node} count in the average but the pool's own padding "
            "does not; one AvgPool2d cannot do both",
        )
    kernel = _pair(kernel_shape, "kernel_shape")
    stride = _pair(strides, "strides") if strides else (1, 1)  # ONNX default: 1
    include = bool(count_include_pad) or x.pad is not None
    padding = _window_padding(b, x, kernel, stride, (1, 1), pads, auto_pad)
    op = AvgPool2d(kernel, stride, padding, bool(ceil_mode), include)
    return b.emit(op, [x.name])


@ONNX_CONVERTERS.register(OnnxOp("", "GlobalAveragePool", 1))
def convert_global_average_pool(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    x = b.materialize(inputs[0])
    _check_4d(b, x)
    return b.emit(AdaptiveAvgPool2d((1, 1)), [x.name])


@ONNX_CONVERTERS.register(OnnxOp("", "GlobalMaxPool", 1))
def convert_global_max_pool(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    x = b.materialize(inputs[0])
    _check_4d(b, x)
    h, w = x.shape[2:]
    return b.emit(MaxPool2d((h, w), (h, w)), [x.name])


def _relabel(b: OnnxGraphBuilder, act: Activation, shape: tuple[int, ...]) -> Activation:
    """The same elements under a new ONNX shape (reshape keeps the flattened order)."""
    if act.pad is not None:
        b.materialize(act)  # raises with the Pad's name
    if shape[0] != act.shape[0]:
        raise b.unsupported(
            b.current.op_type,
            f"it changes the batch axis ({list(act.shape)} -> {list(shape)}); snnconv needs "
            "every reshape to keep axis 0 as the batch",
        )
    if math.prod(shape) != math.prod(act.shape):
        raise b.unsupported(
            b.current.op_type, f"cannot reshape {list(act.shape)} into {list(shape)}"
        )
    if act.layout is None and b.internal_shape(act.name) != shape:
        out = b.emit(Reshape(shape[1:]), [act.name])
        return out
    return replace(act, shape=shape)


@ONNX_CONVERTERS.register(
    OnnxOp("", "Flatten", 1), OnnxOp("", "Flatten", 11), OnnxOp("", "Flatten", 13)
)
def convert_flatten(b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axis: int = 1) -> Value:
    act = b.activation(inputs[0])
    rank = len(act.shape)
    axis = axis % rank if axis < 0 else axis
    if axis != 1:
        raise b.unsupported(
            f"Flatten(axis={axis})", "only Flatten(axis=1) keeps the batch axis by itself"
        )
    return _relabel(b, act, (act.shape[0], math.prod(act.shape[1:])))


@ONNX_CONVERTERS.register(
    OnnxOp("", "Reshape", 5), OnnxOp("", "Reshape", 13), OnnxOp("", "Reshape", 14)
)
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
    return _relabel(b, act, tuple(shape))


def _axes(b: OnnxGraphBuilder, inputs: list[Value], axes: Sequence[int] | None) -> list[int]:
    if axes is not None:
        return [int(a) for a in axes]
    if len(inputs) > 1 and inputs[1] is not None:
        return [int(a) for a in b.constant(inputs[1], "axes").reshape(-1).tolist()]
    return []


@ONNX_CONVERTERS.register(
    OnnxOp("", "Squeeze", 1), OnnxOp("", "Squeeze", 11), OnnxOp("", "Squeeze", 13)
)
def convert_squeeze(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axes: Sequence[int] | None = None
) -> Value:
    act = b.activation(inputs[0])
    rank = len(act.shape)
    chosen = {a % rank for a in _axes(b, inputs, axes)}
    if not chosen:
        chosen = {i for i in range(1, rank) if act.shape[i] == 1}
    if 0 in chosen or any(act.shape[a] != 1 for a in chosen):
        raise b.unsupported("Squeeze", f"axes {sorted(chosen)} of shape {list(act.shape)}")
    return _relabel(b, act, tuple(d for i, d in enumerate(act.shape) if i not in chosen))


@ONNX_CONVERTERS.register(
    OnnxOp("", "Unsqueeze", 1), OnnxOp("", "Unsqueeze", 11), OnnxOp("", "Unsqueeze", 13)
)
def convert_unsqueeze(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axes: Sequence[int] | None = None
) -> Value:
    act = b.activation(inputs[0])
    rank = len(act.shape) + len(_axes(b, inputs, axes))
    chosen = {a % rank for a in _axes(b, inputs, axes)}
    if 0 in chosen:
        raise b.unsupported("Unsqueeze(axis 0)", "it would move the batch axis")
    dims = iter(act.shape)
    return _relabel(b, act, tuple(1 if i in chosen else next(dims) for i in range(rank)))


@ONNX_CONVERTERS.register(OnnxOp("", "Transpose", 1), OnnxOp("", "Transpose", 13))
def convert_transpose(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, perm: Sequence[int] | None = None
) -> Value:
    act = b.activation(inputs[0])
    if act.pad is not None:
        b.materialize(act)
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


@ONNX_CONVERTERS.register(
    OnnxOp("", "Concat", 4), OnnxOp("", "Concat", 11), OnnxOp("", "Concat", 13)
)
def convert_concat(b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axis: int) -> Value:
    acts = [b.materialize(v, f"input {i}") for i, v in enumerate(inputs)]
    rank = len(acts[0].shape)
    dim = axis % rank
    if dim == 0:
        raise b.unsupported("Concat(axis=0)", "concatenation along the batch axis")
    return b.emit(Concat(dim), [a.name for a in acts])


@ONNX_CONVERTERS.register(OnnxOp("", "Add", 7), OnnxOp("", "Add", 13), OnnxOp("", "Add", 14))
def convert_add(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    first, second = inputs[0], inputs[1]
    if isinstance(first, torch.Tensor) and isinstance(second, Activation):
        first, second = second, first
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


def _softmax(b: OnnxGraphBuilder, value: Value, axis: int | None, log: bool) -> Value:
    x = b.materialize(value)
    default = -1 if b.opset >= 13 else 1
    dim = default if axis is None else int(axis)
    rank = len(x.shape)
    if b.opset < 13 and dim % rank != rank - 1:
        raise b.unsupported(
            "Softmax",
            f"axis {dim} before opset 13 coerces to 2-D over axes {dim}..; "
            "only the last axis is supported",
        )
    return b.emit(Softmax(dim, log), [x.name])


@ONNX_CONVERTERS.register(
    OnnxOp("", "Softmax", 1), OnnxOp("", "Softmax", 11), OnnxOp("", "Softmax", 13)
)
def convert_softmax(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axis: int | None = None
) -> Value:
    return _softmax(b, inputs[0], axis, log=False)


@ONNX_CONVERTERS.register(
    OnnxOp("", "LogSoftmax", 1), OnnxOp("", "LogSoftmax", 11), OnnxOp("", "LogSoftmax", 13)
)
def convert_log_softmax(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, axis: int | None = None
) -> Value:
    return _softmax(b, inputs[0], axis, log=True)


@ONNX_CONVERTERS.register(
    OnnxOp("", "Dropout", 7),
    OnnxOp("", "Dropout", 10),
    OnnxOp("", "Dropout", 12),
    OnnxOp("", "Dropout", 13),
)
def convert_dropout(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, ratio: float = 0.5, seed: int = 0
) -> Sequence[Value]:
    if len(node.output) > 1 and node.output[1] and b.uses.get(node.output[1], 0):
        raise b.unsupported("Dropout (mask output)", "the dropout mask is not computed")
    if len(inputs) > 2 and isinstance(inputs[2], torch.Tensor) and bool(inputs[2].any()):
        raise b.unsupported("Dropout(training_mode=1)", "export the model in eval mode")
    return [b.activation(inputs[0]), None]


@ONNX_CONVERTERS.register(
    OnnxOp("", "Identity", 1),
    OnnxOp("", "Identity", 13),
    OnnxOp("", "Identity", 14),
    OnnxOp("", "Identity", 16),
)
def convert_identity(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    return inputs[0]


@ONNX_CONVERTERS.register(
    OnnxOp("", "Constant", 1),
    OnnxOp("", "Constant", 9),
    OnnxOp("", "Constant", 11),
    OnnxOp("", "Constant", 12),
    OnnxOp("", "Constant", 13),
)
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


@ONNX_CONVERTERS.register(
    OnnxOp("", "Pad", 2),
    OnnxOp("", "Pad", 11),
    OnnxOp("", "Pad", 13),
    OnnxOp("", "Pad", 18),
    OnnxOp("", "Pad", 19),
    OnnxOp("", "Pad", 21),
)
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
        amounts = [int(v) for v in b.constant(inputs[1], "pads").reshape(-1).tolist()]
        fill = (
            float(b.constant(inputs[2], "constant_value"))
            if len(inputs) > 2 and inputs[2] is not None
            else 0.0
        )
        if len(inputs) > 3 and inputs[3] is not None:
            axes = [int(a) % len(act.shape) for a in b.constant(inputs[3], "axes").tolist()]
            full = [0] * (2 * len(act.shape))
            half = len(amounts) // 2
            for i, a in enumerate(axes):
                full[a], full[a + len(act.shape)] = amounts[i], amounts[i + half]
            amounts = full
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


def _channels_last(act: Activation, internal: tuple[int, ...]) -> bool:
    """Whether ``act`` is the NHWC view of a 4-D NCHW internal tensor."""
    if act.layout is None or len(act.shape) != 4 or len(internal) != 4:
        return False
    c, h, w = internal[1:]
    if act.shape[1:] != (h, w, c):
        return False
    order = torch.arange(c * h * w).reshape(c, h, w).permute(1, 2, 0).reshape(-1)
    return torch.equal(act.layout, order)


def _reduce(
    b: OnnxGraphBuilder,
    inputs: list[Value],
    axes: Sequence[int] | None,
    keepdims: int,
    is_max: bool,
) -> Value:
    """ReduceMean/ReduceMax over both spatial axes: global pooling (Keras's
    GlobalAveragePooling2D/GlobalMaxPooling2D, on NCHW or channels-last tensors)."""
    act = b.activation(inputs[0])
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = [int(a) for a in b.constant(inputs[1], "axes").reshape(-1).tolist()]
    rank = len(act.shape)
    chosen = sorted(int(a) % rank for a in axes) if axes else list(range(rank))
    op_name = "ReduceMax" if is_max else "ReduceMean"
    if act.layout is None and rank == 4 and chosen == [2, 3]:
        x = b.materialize(act)
    elif rank == 4 and chosen == [1, 2] and _channels_last(act, b.internal_shape(act.name)):
        x = replace(act, shape=b.internal_shape(act.name), layout=None)
    else:
        raise b.unsupported(
            f"{op_name}(axes={chosen})",
            "only a reduction over both spatial axes (global pooling) of an NCHW or NHWC "
            "image tensor is supported",
        )
    c, h, w = x.shape[1:]
    op = MaxPool2d((h, w), (h, w)) if is_max else AdaptiveAvgPool2d((1, 1))
    pooled = b.emit(op, [x.name])
    if not keepdims:
        return _relabel(b, pooled, (1, c))
    # [N, C, 1, 1] and [N, 1, 1, C] hold the elements in the same order.
    return pooled if chosen == [2, 3] else replace(pooled, shape=(1, 1, 1, c))


@ONNX_CONVERTERS.register(
    OnnxOp("", "ReduceMean", 1),
    OnnxOp("", "ReduceMean", 11),
    OnnxOp("", "ReduceMean", 13),
    OnnxOp("", "ReduceMean", 18),
)
def convert_reduce_mean(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    axes: Sequence[int] | None = None,
    keepdims: int = 1,
    noop_with_empty_axes: int = 0,
) -> Value:
    return _reduce(b, inputs, axes, keepdims, is_max=False)


@ONNX_CONVERTERS.register(
    OnnxOp("", "ReduceMax", 1),
    OnnxOp("", "ReduceMax", 11),
    OnnxOp("", "ReduceMax", 12),
    OnnxOp("", "ReduceMax", 13),
    OnnxOp("", "ReduceMax", 18),
    OnnxOp("", "ReduceMax", 20),
)
def convert_reduce_max(
    b: OnnxGraphBuilder,
    node: Any,
    inputs: list[Value],
    *,
    axes: Sequence[int] | None = None,
    keepdims: int = 1,
    noop_with_empty_axes: int = 0,
) -> Value:
    return _reduce(b, inputs, axes, keepdims, is_max=True)


@ONNX_CONVERTERS.register(OnnxOp("", "Sign", 9), OnnxOp("", "Sign", 13))
def convert_sign(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> Value:
    return _elementwise(b, inputs[0], BinaryActivation(BinaryKind.SIGN))


@ONNX_CONVERTERS.register(
    OnnxOp("", "Shape", 1),
    OnnxOp("", "Shape", 13),
    OnnxOp("", "Shape", 15),
    OnnxOp("", "Shape", 19),
    OnnxOp("", "Shape", 21),
)
def convert_shape(
    b: OnnxGraphBuilder, node: Any, inputs: list[Value], *, start: int = 0, end: int | None = None
) -> Value:
    act = b.activation(inputs[0])
    return torch.tensor(act.shape[start:end], dtype=torch.int64)


# -- lookup -----------------------------------------------------------------------
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


# -- loading --------------------------------------------------------------------------
def load_onnx(path: str | os.PathLike[str]) -> Any:
    """Read an ONNX file (and its external-data files) and check it.

    Raises:
        ModelLoadError: missing, truncated or corrupt file, missing external data.
    """
    onnx = _require_onnx()
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"ONNX model file {p} does not exist")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as error:
        raise ModelLoadError(
            f"{p} is not a readable ONNX model ({type(error).__name__}: {error}); the file is "
            "truncated or corrupt. Export it again (torch.onnx.export, or tf2onnx for Keras)."
        ) from error
    from onnx.external_data_helper import uses_external_data

    missing = []
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            location = {e.key: e.value for e in tensor.external_data}.get("location", "")
            if not (p.parent / location).is_file():
                missing.append(f"{tensor.name} -> {location}")
    if missing:
        raise ModelLoadError(
            f"{p} keeps weights in external data files that are missing next to it: "
            f"{', '.join(sorted(set(missing))[:5])}. Copy the .data file(s) into {p.parent} "
            "or re-save the model with all tensors inside (onnx.save(model, path, "
            "save_as_external_data=False))."
        )
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(p.parent))
    except Exception as error:
        raise ModelLoadError(
            f"cannot read the external data of {p} ({type(error).__name__}: {error}); the "
            ".data file is truncated or does not belong to this model"
        ) from error
    try:
        onnx.checker.check_model(model)
    except Exception as error:
        raise ModelLoadError(
            f"{p} is not a valid ONNX model: {str(error).strip().splitlines()[0]}. "
            "Export it again with a current exporter."
        ) from error
    return model


def _opset(model: Any) -> int:
    versions = {(o.domain or ""): int(o.version) for o in model.opset_import}
    opset = versions.get("", versions.get("ai.onnx"))
    if opset is None:
        raise ModelLoadError("the ONNX model imports no default-domain opset (ai.onnx)")
    newest = max_opset()
    if not MIN_OPSET <= opset <= newest:
        raise UnsupportedOpError(
            f"opset {opset}",
            "model",
            SUPPORTED_ONNX_OPS,
            f"snnconv reads ONNX opsets {MIN_OPSET} to {newest}; convert the model with "
            f"onnx.version_converter.convert_version(model, {min(max(opset, MIN_OPSET), newest)})",
        )
    return opset


def _dims(value_info: Any) -> list[int | None]:
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return []
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in tensor_type.shape.dim
    ]


def _fold(node: Any, inputs: list[torch.Tensor | None], opset: int) -> list[torch.Tensor]:
    """Evaluate ``node`` on constant inputs with ONNX's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    feeds = {
        name: value.numpy()
        for name, value in zip(node.input, inputs, strict=True)
        if name and value is not None
    }
    results = ReferenceEvaluator(node, opsets={"": opset}).run(None, feeds)
    return [torch.from_numpy(np.array(r).copy()) for r in results]


def import_onnx(
    model: str | os.PathLike[str] | Any,
    *,
    input_layout: InputLayout | str = InputLayout.AUTO,
    input_shape: Sequence[int] | None = None,
) -> Graph:
    """Convert an ONNX model into the internal graph.

    Args:
        model: A path to a ``.onnx`` file or an ``onnx.ModelProto``.
        input_layout: Layout of the model's image input. ``AUTO`` detects the
            channels-last input of a tf2onnx-converted Keras model by the
            Transpose(perm=[0, 3, 1, 2]) it feeds; ``NHWC`` forces it. Either way the
            imported graph takes NCHW batches, like snnconv's data loaders give.
        input_shape: One sample's shape as the data loader gives it (``C, H, W``),
            needed when the model's non-batch input dimensions are dynamic.

    Returns:
        The graph, in NCHW, with initializers and constant subgraphs folded.

    Raises:
        ModelLoadError: unreadable, corrupt or incomplete file.
        UnsupportedOpError: an op, opset or attribute without a conversion (names the
            op, the node and the supported list).
        ShapeError: dynamic input dimensions without ``input_shape``.
    """
    onnx = _require_onnx()
    layout = parse_input_layout(input_layout)
    proto = load_onnx(model) if isinstance(model, (str, os.PathLike)) else model
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"expected a path or onnx.ModelProto, got {type(proto)!r}")
    opset = _opset(proto)
    graph = proto.graph
    for node in graph.node:
        if node.op_type in ("If", "Loop", "Scan"):
            raise UnsupportedOpError(
                node.op_type, _source(node, 0), SUPPORTED_ONNX_OPS, "control flow"
            )

    constants: dict[str, torch.Tensor] = {t.name: _tensor(t) for t in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in constants]
    if len(real_inputs) != 1:
        raise UnsupportedOpError(
            "multiple inputs" if real_inputs else "no input",
            "model",
            SUPPORTED_ONNX_OPS,
            "snnconv converts networks with exactly one image input "
            f"(found {[i.name for i in real_inputs]})",
        )
    if len(graph.output) != 1:
        raise UnsupportedOpError(
            "multiple outputs", "model", SUPPORTED_ONNX_OPS, "snnconv needs a single output"
        )
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    uses[graph.output[0].name] = uses.get(graph.output[0].name, 0) + 1

    inp = real_inputs[0]
    dims = _dims(inp)
    consumers = [n for n in graph.node if inp.name in n.input]
    if layout is InputLayout.AUTO:
        nhwc = (
            len(dims) == 4
            and bool(consumers)
            and all(
                n.op_type == "Transpose"
                and [a.ints for a in n.attribute if a.name == "perm"] == [[0, 3, 1, 2]]
                for n in consumers
            )
        )
        layout = InputLayout.NHWC if nhwc else InputLayout.NCHW
    if layout is InputLayout.NHWC and len(dims) != 4:
        raise ShapeError(
            f"input_layout=nhwc needs a 4-D image input, but {inp.name!r} has {len(dims)} dims"
        )
    per_sample = dims[1:]
    if input_shape is not None:
        given = tuple(int(d) for d in input_shape)
        onnx_given = (given[1], given[2], given[0]) if layout is InputLayout.NHWC else given
        if len(onnx_given) != len(per_sample) or any(
            d is not None and d != g for d, g in zip(per_sample, onnx_given, strict=False)
        ):
            raise ShapeError(
                f"input_shape {list(given)} does not fit the model's input {inp.name!r} "
                f"of shape {['?' if d is None else d for d in dims]} ({layout.value})"
            )
        per_sample = list(onnx_given)
    if not dims or any(d is None for d in per_sample):
        raise ShapeError(
            f"the ONNX model's input {inp.name!r} has dynamic dimensions "
            f"{['?' if d is None else d for d in dims]}; give one sample's shape with "
            "--input-shape C,H,W (input_shape=(C, H, W) in Python)"
        )
    onnx_shape = (1, *(int(d) for d in per_sample))  # type: ignore[arg-type]

    b = OnnxGraphBuilder(opset, uses)
    if layout is InputLayout.NHWC:
        h, w, c = onnx_shape[1:]
        b.add_input((c, h, w))
        order = torch.arange(c * h * w).reshape(c, h, w).permute(1, 2, 0).reshape(-1)
        b.values[inp.name] = Activation("input", onnx_shape, order.clone())
    else:
        b.add_input(onnx_shape[1:])
        b.values[inp.name] = Activation("input", onnx_shape)
    b.values.update(constants)

    for index, node in enumerate(graph.node):
        b.current, b.current_source = node, _source(node, index)
        inputs: list[Value] = []
        for name in node.input:
            if not name:
                inputs.append(None)
            elif name in b.values:
                inputs.append(b.values[name])
            else:
                raise ModelLoadError(
                    f"node {b.current_source} reads {name!r}, which no earlier node produces; "
                    "the graph is not in topological order or is incomplete"
                )
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        attrs = {a.name: _attribute_value(a) for a in node.attribute}
        has_activation = any(isinstance(v, Activation) for v in inputs)
        if domain == "" and not has_activation and node.op_type not in ("Constant",):
            try:
                folded = _fold(node, inputs, opset)  # type: ignore[arg-type]
            except Exception as error:
                raise UnsupportedOpError(
                    node.op_type,
                    b.current_source,
                    SUPPORTED_ONNX_OPS,
                    f"it computes on constants only, and folding it failed ({error})",
                ) from error
            for name, value in zip(node.output, folded, strict=False):
                b.values[name] = value
            continue
        converter = find_converter(domain, node.op_type, opset) if domain == "" else None
        if converter is None:
            op_name = f"{domain}.{node.op_type}" if domain else node.op_type
            raise UnsupportedOpError(
                op_name,
                b.current_source,
                SUPPORTED_ONNX_OPS,
                f"no converter for {op_name} at opset {opset}",
            )
        result = converter(b, node, inputs, **attrs)
        outputs: list[Value] = list(result) if isinstance(result, (list, tuple)) else [result]  # type: ignore[list-item]
        for name, produced in zip(node.output, outputs, strict=False):
            if name:
                b.values[name] = produced

    out_name = graph.output[0].name
    out = b.values.get(out_name)
    if not isinstance(out, Activation):
        raise UnsupportedOpError(
            "output", out_name, SUPPORTED_ONNX_OPS, "the output does not depend on the input"
        )
    b.current = graph.node[-1] if len(graph.node) else onnx.NodeProto(op_type="Output")
    b.current_source = f"output {out_name!r}"
    final = b.materialize(out, "output")
    imported = Graph(b.nodes, output=final.name).prune()
    imported.input.meta["layout"] = layout.value
    return imported


__all__ = [
    "ONNX_CONVERTERS",
    "SUPPORTED_ONNX_OPS",
    "Activation",
    "InputLayout",
    "OnnxOp",
    "find_converter",
    "import_onnx",
    "load_onnx",
    "max_opset",
    "supported_op_types",
]
