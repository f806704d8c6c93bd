"""The entry point: checks an ONNX model, sets up its image input and walks its nodes."""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from snnconv.errors import ConfigError, ModelLoadError, ShapeError, UnsupportedOpError
from snnconv.importers.onnx.builder import OnnxGraphBuilder
from snnconv.importers.onnx.loading import (
    attribute_value,
    load_onnx,
    model_opset,
    require_onnx,
    tensor_from_proto,
)
from snnconv.importers.onnx.registry import SUPPORTED_ONNX_OPS, find_converter
from snnconv.importers.onnx.values import Activation, ClipFloor, Value, channels_last_order
from snnconv.ir import Graph


class InputLayout(enum.Enum):
    """How the ONNX model's image input is laid out."""

    AUTO = "auto"
    """NHWC if every consumer of a 4-D input is a Transpose(perm=[0, 3, 1, 2]), else NCHW."""
    NCHW = "nchw"
    """Channels first (PyTorch, and Keras models converted with ``--inputs-as-nchw``)."""
    NHWC = "nhwc"
    """Channels last (Keras/TensorFlow models converted by tf2onnx without ``--inputs-as-nchw``)."""


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


def _source(node: Any, index: int) -> str:
    return f"{node.name or f'#{index}'} ({node.op_type})"


def _dims(value_info: Any) -> list[int | None]:
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return []
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in tensor_type.shape.dim
    ]


# -- the model as a whole ---------------------------------------------------------------
def _refuse_control_flow(graph: Any) -> None:
    for node in graph.node:
        if node.op_type in ("If", "Loop", "Scan"):
            raise UnsupportedOpError(
                node.op_type, _source(node, 0), SUPPORTED_ONNX_OPS, "control flow"
            )


def _image_input(graph: Any, constants: dict[str, torch.Tensor]) -> Any:
    """The graph's one input that is not an initializer; refuses several inputs or outputs."""
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
    return real_inputs[0]


def _count_uses(graph: Any) -> dict[str, int]:
    """How many node inputs, plus the graph output, read each value name."""
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    uses[graph.output[0].name] = uses.get(graph.output[0].name, 0) + 1
    return uses


def _resolve_layout(
    layout: InputLayout, graph: Any, inp: Any, dims: list[int | None]
) -> InputLayout:
    """NCHW or NHWC: ``layout``, or for AUTO what the input's consumers show."""
    if layout is InputLayout.AUTO:
        consumers = [n for n in graph.node if inp.name in n.input]
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
    return layout


def _input_shape(
    inp: Any, dims: list[int | None], layout: InputLayout, input_shape: Sequence[int] | None
) -> tuple[int, ...]:
    """The ONNX shape of a batch of one: the model's dimensions, completed by ``input_shape``."""
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
    return (1, *(int(d) for d in per_sample))  # type: ignore[arg-type]


def _add_image_input(
    b: OnnxGraphBuilder, name: str, onnx_shape: tuple[int, ...], layout: InputLayout
) -> None:
    """The internal (NCHW) Input node, and the activation ONNX value ``name`` stands for."""
    if layout is InputLayout.NHWC:
        h, w, c = onnx_shape[1:]
        b.add_input((c, h, w))
        b.values[name] = Activation("input", onnx_shape, channels_last_order(c, h, w).clone())
    else:
        b.add_input(onnx_shape[1:])
        b.values[name] = Activation("input", onnx_shape)


# -- node by node ---------------------------------------------------------------------
def _node_inputs(b: OnnxGraphBuilder, node: Any) -> list[Value]:
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
    return inputs


def _fold(node: Any, inputs: Sequence[Value], opset: int) -> list[torch.Tensor]:
    """Evaluate ``node`` on constant inputs with ONNX's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    feeds = {
        name: value.numpy()
        for name, value in zip(node.input, inputs, strict=True)
        if name and isinstance(value, torch.Tensor)
    }
    results = ReferenceEvaluator(node, opsets={"": opset}).run(None, feeds)
    return [torch.from_numpy(np.array(r).copy()) for r in results]


def _fold_node(b: OnnxGraphBuilder, node: Any, inputs: list[Value]) -> None:
    """Store the outputs of a default-domain node that computes on constants only."""
    try:
        folded = _fold(node, inputs, b.opset)
    except Exception as error:
        raise UnsupportedOpError(
            node.op_type,
            b.current_source,
            SUPPORTED_ONNX_OPS,
            f"it computes on constants only, and folding it failed ({error})",
        ) from error
    for name, value in zip(node.output, folded, strict=False):
        b.values[name] = value


def _convert_node(
    b: OnnxGraphBuilder, node: Any, domain: str, inputs: list[Value], attrs: dict[str, Any]
) -> None:
    """Run the registered converter of ``node`` and store its outputs."""
    converter = find_converter(domain, node.op_type, b.opset) if domain == "" else None
    if converter is None:
        op_name = f"{domain}.{node.op_type}" if domain else node.op_type
        raise UnsupportedOpError(
            op_name,
            b.current_source,
            SUPPORTED_ONNX_OPS,
            f"no converter for {op_name} at opset {b.opset}",
        )
    result = converter(b, node, inputs, **attrs)
    outputs: list[Value] = list(result) if isinstance(result, (list, tuple)) else [result]  # type: ignore[list-item]
    for name, produced in zip(node.output, outputs, strict=False):
        if name:
            b.values[name] = produced


def _import_node(b: OnnxGraphBuilder, node: Any, index: int) -> None:
    """Fold ``node`` if it computes on constants only, else convert it."""
    b.current, b.current_source = node, _source(node, index)
    inputs = _node_inputs(b, node)
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    attrs = {a.name: attribute_value(a) for a in node.attribute}
    has_activation = any(isinstance(v, (Activation, ClipFloor)) for v in inputs)
    if domain == "" and not has_activation and node.op_type not in ("Constant",):
        _fold_node(b, node, inputs)
    else:
        _convert_node(b, node, domain, inputs, attrs)


def _finish(b: OnnxGraphBuilder, graph: Any, layout: InputLayout) -> Graph:
    """The internal graph computing the ONNX graph's output, in NCHW, pruned."""
    out_name = graph.output[0].name
    out = b.values.get(out_name)
    if not isinstance(out, Activation):
        raise UnsupportedOpError(
            "output", out_name, SUPPORTED_ONNX_OPS, "the output does not depend on the input"
        )
    b.current = graph.node[-1] if len(graph.node) else require_onnx().NodeProto(op_type="Output")
    b.current_source = f"output {out_name!r}"
    final = b.materialize(out, "output")
    imported = Graph(b.nodes, output=final.name).prune()
    imported.input.meta["layout"] = layout.value
    return imported


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
    onnx = require_onnx()
    layout = parse_input_layout(input_layout)
    proto = load_onnx(model) if isinstance(model, (str, os.PathLike)) else model
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"expected a path or onnx.ModelProto, got {type(proto)!r}")
    opset = model_opset(proto)
    graph = proto.graph
    _refuse_control_flow(graph)
    constants = {t.name: tensor_from_proto(t) for t in graph.initializer}
    inp = _image_input(graph, constants)
    dims = _dims(inp)
    layout = _resolve_layout(layout, graph, inp, dims)
    onnx_shape = _input_shape(inp, dims, layout, input_shape)

    b = OnnxGraphBuilder(opset, _count_uses(graph))
    _add_image_input(b, inp.name, onnx_shape, layout)
    b.values.update(constants)
    for index, node in enumerate(graph.node):
        _import_node(b, node, index)
    return _finish(b, graph, layout)
