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

Modules: :mod:`.registry` (keys and lookup), :mod:`.values`, :mod:`.builder`,
:mod:`.loading` (files, opsets, attributes), :mod:`.importer` (the entry point),
and the converters by operator family, imported below so that they register.
"""

from __future__ import annotations

from snnconv.importers.onnx import (
    activation,
    clipfloor,
    convolution,
    core,
    normalization,
    pooling,
    shape,
)
from snnconv.importers.onnx.importer import InputLayout, import_onnx, parse_input_layout
from snnconv.importers.onnx.loading import MIN_OPSET, load_onnx, max_opset
from snnconv.importers.onnx.registry import (
    ONNX_CONVERTERS,
    SUPPORTED_ONNX_OPS,
    OnnxOp,
    find_converter,
    supported_op_types,
)
from snnconv.importers.onnx.values import Activation

#: The converter modules, one per operator family; importing them registers their converters.
CONVERTER_FAMILIES = (activation, clipfloor, convolution, core, normalization, pooling, shape)

__all__ = [
    "MIN_OPSET",
    "ONNX_CONVERTERS",
    "SUPPORTED_ONNX_OPS",
    "Activation",
    "InputLayout",
    "OnnxOp",
    "find_converter",
    "import_onnx",
    "load_onnx",
    "max_opset",
    "parse_input_layout",
    "supported_op_types",
]
