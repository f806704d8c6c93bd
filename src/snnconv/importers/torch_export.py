"""Import a PyTorch model captured with ``torch.export`` (an ATen-level graph).

Converters are registered by ATen overload (``torch.ops.aten.conv2d.default``,
...) and receive the op's schema arguments as keyword arguments.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.fx
from torch.fx.operator_schemas import normalize_function

import snnconv.nn.qcfs  # noqa: F401  (registers the snnconv::qcfs operator)
from snnconv.importers import torch_common as common
from snnconv.importers.registry import ConverterRegistry
from snnconv.importers.torch_common import GraphBuilder
from snnconv.ir import (
    AdaptiveAvgPool2d,
    Add,
    BinaryActivation,
    BinaryKind,
    Concat,
    Dropout,
    Graph,
    Linear,
    ReLU,
    Reshape,
    Softmax,
)

aten = torch.ops.aten

#: Signature: (builder, fx node, **schema arguments) -> None (the converter emits or aliases).
AtenConverter = Callable[..., None]
ATEN_CONVERTERS: ConverterRegistry[AtenConverter] = ConverterRegistry("ATen importer")


@ATEN_CONVERTERS.register(aten.conv2d.default, aten.conv2d.padding)
def convert_conv2d(
    b: GraphBuilder,
    node: torch.fx.Node,
    *,
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> None:
    op = common.conv2d_op(b, node, weight, bias, stride, padding, dilation, groups)
    b.emit(node, op, [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten.convolution.default)
def convert_convolution(
    b: GraphBuilder,
    node: torch.fx.Node,
    *,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: int,
) -> None:
    if transposed:
        raise b.unsupported(node, "conv_transpose2d", "transposed convolutions are not supported")
    op = common.conv2d_op(b, node, weight, bias, stride, padding, dilation, groups)
    b.emit(node, op, [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten.linear.default)
def convert_linear(
    b: GraphBuilder, node: torch.fx.Node, *, input: Any, weight: Any, bias: Any = None
) -> None:
    w = b.param(node, weight)
    if w is None:
        raise b.unsupported(node, "linear", "missing weight")
    b.emit(node, Linear(w, b.param(node, bias)), [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten.batch_norm.default)
def convert_batch_norm(
    b: GraphBuilder,
    node: torch.fx.Node,
    *,
    input: Any,
    weight: Any,
    bias: Any,
    running_mean: Any,
    running_var: Any,
    training: bool,
    momentum: float,
    eps: float,
    cudnn_enabled: bool,
) -> None:
    op = common.batchnorm_op(b, node, weight, bias, running_mean, running_var, eps)
    b.emit(node, op, [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten._native_batch_norm_legit_no_training.default)
def convert_native_batch_norm(
    b: GraphBuilder,
    node: torch.fx.Node,
    *,
    input: Any,
    weight: Any,
    bias: Any,
    running_mean: Any,
    running_var: Any,
    momentum: float,
    eps: float,
) -> None:
    op = common.batchnorm_op(b, node, weight, bias, running_mean, running_var, eps)
    name = b.emit(node, op, [b.tensor_input(node, input)])
    b.alias(node, (name,))  # the op returns (output, mean, invstd); getitem 0 picks it


@ATEN_CONVERTERS.register(aten.relu.default, aten.relu_.default)
def convert_relu(b: GraphBuilder, node: torch.fx.Node, *, input: Any) -> None:
    b.emit(node, ReLU(), [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(torch.ops.snnconv.qcfs.default)
def convert_qcfs(b: GraphBuilder, node: torch.fx.Node, *, x: Any, lam: Any, levels: int) -> None:
    b.emit(node, common.qcfs_op(b, node, lam, levels), [b.tensor_input(node, x)])


@ATEN_CONVERTERS.register(aten.avg_pool2d.default)
def convert_avg_pool2d(
    b: GraphBuilder,
    node: torch.fx.Node,
    *,
    input: Any,
    kernel_size: Any,
    stride: Any = (),
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> None:
    op = common.avg_pool_op(
        kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    b.emit(node, op, [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten.adaptive_avg_pool2d.default, aten._adaptive_avg_pool2d.default)
def convert_adaptive_avg_pool2d(
    b: GraphBuilder, node: torch.fx.Node, *, input: Any, output_size: Any
) -> None:
    b.emit(node, AdaptiveAvgPool2d(output_size), [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(
    aten.flatten.using_ints,
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
)
def convert_reshape(b: GraphBuilder, node: torch.fx.Node, *, input: Any, **_shape: Any) -> None:
    src = b.tensor_input(node, input)
    b.emit(node, Reshape(b.reshape_target(node, src)), [src])


@ATEN_CONVERTERS.register(aten.dropout.default, aten.feature_dropout.default)
def convert_dropout(
    b: GraphBuilder, node: torch.fx.Node, *, input: Any, p: float, train: bool
) -> None:
    b.emit(node, Dropout(float(p)), [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(
    aten.clone.default,
    aten.contiguous.default,
    aten.alias.default,
    aten.detach.default,
    aten.detach_.default,
)
def convert_passthrough(b: GraphBuilder, node: torch.fx.Node, *, input: Any, **_: Any) -> None:
    b.alias(node, b.tensor_input(node, input))


@ATEN_CONVERTERS.register(aten.hardtanh.default, aten.hardtanh_.default)
def convert_hardtanh(
    b: GraphBuilder, node: torch.fx.Node, *, input: Any, min_val: Any = -1.0, max_val: Any = 1.0
) -> None:
    b.emit(node, common.bounded_relu_op(b, node, min_val, max_val), [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten.clamp.default, aten.clamp_.default)
def convert_clamp(
    b: GraphBuilder, node: torch.fx.Node, *, input: Any, min: Any = None, max: Any = None
) -> None:
    b.emit(node, common.bounded_relu_op(b, node, min, max), [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten.relu6.default, aten.relu6_.default)
def convert_relu6(b: GraphBuilder, node: torch.fx.Node, *, input: Any) -> None:
    b.emit(node, ReLU(max_value=6.0), [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten.max_pool2d.default, aten.max_pool2d_with_indices.default)
def convert_max_pool2d(
    b: GraphBuilder,
    node: torch.fx.Node,
    *,
    input: Any,
    kernel_size: Any,
    stride: Any = (),
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> None:
    op = common.max_pool_op(kernel_size, stride, padding, dilation, ceil_mode)
    name = b.emit(node, op, [b.tensor_input(node, input)])
    if node.target is aten.max_pool2d_with_indices.default:
        b.alias(node, (name,))


@ATEN_CONVERTERS.register(aten.adaptive_max_pool2d.default)
def convert_adaptive_max_pool2d(
    b: GraphBuilder, node: torch.fx.Node, *, input: Any, output_size: Any
) -> None:
    src = b.tensor_input(node, input)
    in_shape = _shape_from_val(node.args[0]) or ()
    name = b.emit(node, common.adaptive_max_pool_op(b, node, in_shape, output_size), [src])
    b.alias(node, (name,))  # returns (values, indices)


@ATEN_CONVERTERS.register(aten.amax.default, aten.mean.dim)
def convert_global_pool(
    b: GraphBuilder,
    node: torch.fx.Node,
    *,
    input: Any,
    dim: Any = (),
    keepdim: bool = False,
    **_: Any,
) -> None:
    in_shape = _shape_from_val(node.args[0]) or ()
    is_max = node.target is aten.amax.default
    common.emit_global_pool(b, node, b.tensor_input(node, input), in_shape, dim, keepdim, is_max)


@ATEN_CONVERTERS.register(aten.cat.default)
def convert_cat(b: GraphBuilder, node: torch.fx.Node, *, tensors: Any, dim: int = 0) -> None:
    inputs = [b.tensor_input(node, t) for t in tensors]
    rank = len(b.out_shape(node))
    axis = int(dim) % rank
    if axis == 0:
        raise b.unsupported(node, "cat", "concatenation along the batch axis (dim 0)")
    b.emit(node, Concat(axis), inputs)


@ATEN_CONVERTERS.register(aten.add.Tensor, aten.add_.Tensor)
def convert_add(
    b: GraphBuilder,
    node: torch.fx.Node,
    *,
    input: Any = None,
    other: Any,
    alpha: Any = 1,
    **kwargs: Any,
) -> None:
    first = input if input is not None else kwargs.get("self")
    if alpha != 1:
        raise b.unsupported(node, "add(alpha != 1)", "only plain additions are supported")
    if not isinstance(first, str) or not isinstance(other, str):
        raise b.unsupported(
            node, "add", "adding a constant to an activation is not supported; fold it into a bias"
        )
    shapes = [_shape_from_val(a) for a in node.args[:2]]
    if shapes[0] != shapes[1]:
        raise b.unsupported(
            node, "add", f"the two inputs have different shapes {shapes} (broadcasting add)"
        )
    b.emit(node, Add(), [first, other])


@ATEN_CONVERTERS.register(
    aten.softmax.int, aten._softmax.default, aten.log_softmax.int, aten._log_softmax.default
)
def convert_softmax(
    b: GraphBuilder, node: torch.fx.Node, *, input: Any, dim: int, **_: Any
) -> None:
    log = node.target in (aten.log_softmax.int, aten._log_softmax.default)
    b.emit(node, Softmax(int(dim), log), [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten.sign.default)
def convert_sign(b: GraphBuilder, node: torch.fx.Node, *, input: Any) -> None:
    b.emit(node, BinaryActivation(BinaryKind.SIGN), [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten.gt.Scalar, aten.heaviside.default)
def convert_heaviside(
    b: GraphBuilder, node: torch.fx.Node, *, input: Any, other: Any = None, values: Any = None
) -> None:
    if node.target is aten.gt.Scalar and other != 0:
        raise b.unsupported(node, f"x > {other}", "only x > 0 (a Heaviside step) is supported")
    if node.target is aten.heaviside.default:
        value = b.param(node, values)
        if value is None or value.numel() != 1 or float(value) != 0.0:
            raise b.unsupported(node, "heaviside", "only heaviside(x, 0) is supported")
    b.emit(node, BinaryActivation(BinaryKind.HEAVISIDE), [b.tensor_input(node, input)])


@ATEN_CONVERTERS.register(aten._to_copy.default, aten.to.dtype, aten.to.dtype_layout)
def convert_cast(b: GraphBuilder, node: torch.fx.Node, *, input: Any, **kwargs: Any) -> None:
    dtype = kwargs.get("dtype")
    if dtype is not None and not dtype.is_floating_point:
        raise b.unsupported(node, f"cast to {dtype}", "activations must stay floating point")
    b.alias(node, b.tensor_input(node, input))


@ATEN_CONVERTERS.register(aten._assert_tensor_metadata.default)
def convert_metadata_assertion(b: GraphBuilder, node: torch.fx.Node, **_: Any) -> None:
    b.alias(node, None)  # a check torch.export inserts around casts; computes nothing


def _contains(value: Any, kind: type) -> bool:
    if isinstance(value, kind):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains(v, kind) for v in value)
    if isinstance(value, dict):
        return any(_contains(v, kind) for v in value.values())
    return False


def _shape_from_val(node: object) -> tuple[int, ...] | None:
    if not isinstance(node, torch.fx.Node):
        return None
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        try:
            return tuple(int(s) for s in val.shape)
        except TypeError:  # symbolic sizes
            return None
    return None


def import_exported_program(ep: torch.export.ExportedProgram) -> Graph:
    """Convert an ``ExportedProgram`` into the internal graph.

    Raises:
        UnsupportedOpError: for any op without a converter, naming the op, the
            module path of the node and what is supported.
    """
    signature = ep.graph_signature
    constants: dict[str, Any] = {}
    constants.update({k: ep.state_dict[v] for k, v in signature.inputs_to_parameters.items()})
    for k, v in signature.inputs_to_buffers.items():
        constants[k] = ep.state_dict[v] if v in ep.state_dict else ep.constants[v]
    for k, v in signature.inputs_to_lifted_tensor_constants.items():
        constants[k] = ep.constants[v]
    user_inputs = set(signature.user_inputs)

    b = GraphBuilder(_shape_from_val)
    output: Any = None
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            if node.name in constants:
                b.alias(node, constants[node.name])
            elif node.name in user_inputs:
                b.add_input(node)
            else:
                b.alias(node, None)
        elif node.op == "call_function":
            if node.target is operator.getitem:
                container = b.values[node.args[0]]
                b.alias(node, container[node.args[1]] if node.args[1] == 0 else None)
                continue
            args, kwargs = b.arg(node.args), b.arg(node.kwargs)
            if (
                _contains((args, kwargs), torch.Tensor)
                and not _contains((args, kwargs), str)
                and isinstance(node.target, torch._ops.OpOverload)
            ):
                # Only parameters feed it (e.g. sign(weight) in a binary layer): fold it.
                with torch.no_grad():
                    b.alias(node, node.target(*args, **kwargs))
                continue
            converter = ATEN_CONVERTERS.get(node.target)
            if converter is None:
                raise b.unsupported(node, str(node.target))
            normalized = normalize_function(
                node.target, args, kwargs, normalize_to_only_use_kwargs=True
            )
            if normalized is None:  # pragma: no cover - ATen ops always have schemas
                raise b.unsupported(node, str(node.target), "could not read its arguments")
            converter(b, node, **normalized.kwargs)
        elif node.op == "output":
            output = node.args[0]
        else:
            raise b.unsupported(node, f"{node.op} {node.target}")
    return b.finish(output, "output")
