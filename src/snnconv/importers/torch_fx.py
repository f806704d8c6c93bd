"""Fallback importer: ``torch.fx`` symbolic tracing, for models ``torch.export`` cannot capture.

Converters are registered by module type (``nn.Conv2d``), by function
(``F.relu``, ``torch.flatten``) and by tensor method (``torch.Tensor.relu``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

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

ModuleConverter = Callable[[GraphBuilder, torch.fx.Node, Any, str], None]
FunctionConverter = Callable[..., None]

MODULE_CONVERTERS: ConverterRegistry[ModuleConverter] = ConverterRegistry("fx module importer")
FUNCTION_CONVERTERS: ConverterRegistry[FunctionConverter] = ConverterRegistry(
    "fx function importer"
)


@MODULE_CONVERTERS.register(nn.Conv2d)
def convert_conv2d_module(b: GraphBuilder, node: torch.fx.Node, m: nn.Conv2d, x: str) -> None:
    if m.padding_mode != "zeros":
        raise b.unsupported(node, f"Conv2d(padding_mode={m.padding_mode!r})", "only zero padding")
    op = common.conv2d_op(b, node, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
    b.emit(node, op, [x])


@MODULE_CONVERTERS.register(nn.Linear)
def convert_linear_module(b: GraphBuilder, node: torch.fx.Node, m: nn.Linear, x: str) -> None:
    weight = b.param(node, m.weight)
    if weight is None:  # pragma: no cover - nn.Linear always has a weight
        raise b.unsupported(node, "Linear", "missing weight")
    b.emit(node, Linear(weight, b.param(node, m.bias)), [x])


@MODULE_CONVERTERS.register(nn.BatchNorm1d, nn.BatchNorm2d)
def convert_batchnorm_module(
    b: GraphBuilder, node: torch.fx.Node, m: nn.BatchNorm2d, x: str
) -> None:
    op = common.batchnorm_op(b, node, m.weight, m.bias, m.running_mean, m.running_var, m.eps)
    b.emit(node, op, [x])


@MODULE_CONVERTERS.register(nn.ReLU)
def convert_relu_module(b: GraphBuilder, node: torch.fx.Node, m: nn.ReLU, x: str) -> None:
    b.emit(node, ReLU(), [x])


@MODULE_CONVERTERS.register(nn.AvgPool2d)
def convert_avgpool_module(b: GraphBuilder, node: torch.fx.Node, m: nn.AvgPool2d, x: str) -> None:
    op = common.avg_pool_op(
        m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override
    )
    b.emit(node, op, [x])


@MODULE_CONVERTERS.register(nn.AdaptiveAvgPool2d)
def convert_adaptive_avgpool_module(
    b: GraphBuilder, node: torch.fx.Node, m: nn.AdaptiveAvgPool2d, x: str
) -> None:
    size = b.out_shape(node)
    b.emit(node, AdaptiveAvgPool2d((size[2], size[3])), [x])


@MODULE_CONVERTERS.register(nn.Flatten)
def convert_flatten_module(b: GraphBuilder, node: torch.fx.Node, m: nn.Flatten, x: str) -> None:
    b.emit(node, Reshape(b.reshape_target(node, x)), [x])


@MODULE_CONVERTERS.register(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
def convert_dropout_module(b: GraphBuilder, node: torch.fx.Node, m: nn.Dropout, x: str) -> None:
    b.emit(node, Dropout(float(m.p)), [x])


@MODULE_CONVERTERS.register(nn.Identity)
def convert_identity_module(b: GraphBuilder, node: torch.fx.Node, m: nn.Identity, x: str) -> None:
    b.alias(node, x)


@FUNCTION_CONVERTERS.register(torch.ops.snnconv.qcfs.default)
def convert_qcfs_function(
    b: GraphBuilder, node: torch.fx.Node, *, x: Any, lam: Any, levels: int, **_: Any
) -> None:
    b.emit(node, common.qcfs_op(b, node, lam, levels), [b.tensor_input(node, x)])


@FUNCTION_CONVERTERS.register(F.relu, torch.relu, torch.relu_, torch.Tensor.relu)
def convert_relu_function(b: GraphBuilder, node: torch.fx.Node, *, input: Any, **_: Any) -> None:
    b.emit(node, ReLU(), [b.tensor_input(node, input)])


@FUNCTION_CONVERTERS.register(
    torch.flatten,
    torch.reshape,
    torch.Tensor.flatten,
    torch.Tensor.view,
    torch.Tensor.reshape,
)
def convert_reshape_function(b: GraphBuilder, node: torch.fx.Node, **kwargs: Any) -> None:
    x = b.tensor_input(node, kwargs.get("input", kwargs.get("self")))
    b.emit(node, Reshape(b.reshape_target(node, x)), [x])


@FUNCTION_CONVERTERS.register(F.avg_pool2d)
def convert_avg_pool_function(
    b: GraphBuilder,
    node: torch.fx.Node,
    *,
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> None:
    op = common.avg_pool_op(
        kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    b.emit(node, op, [b.tensor_input(node, input)])


@FUNCTION_CONVERTERS.register(F.adaptive_avg_pool2d)
def convert_adaptive_avg_pool_function(
    b: GraphBuilder, node: torch.fx.Node, *, input: Any, **_: Any
) -> None:
    size = b.out_shape(node)
    b.emit(node, AdaptiveAvgPool2d((size[2], size[3])), [b.tensor_input(node, input)])


@FUNCTION_CONVERTERS.register(F.dropout, torch.dropout)
def convert_dropout_function(
    b: GraphBuilder, node: torch.fx.Node, *, input: Any, p: float = 0.5, **_: Any
) -> None:
    b.emit(node, Dropout(float(p)), [b.tensor_input(node, input)])


@FUNCTION_CONVERTERS.register(torch.Tensor.contiguous, torch.Tensor.clone, torch.Tensor.detach)
def convert_passthrough_method(b: GraphBuilder, node: torch.fx.Node, **kwargs: Any) -> None:
    b.alias(node, b.tensor_input(node, kwargs.get("self", kwargs.get("input"))))


@MODULE_CONVERTERS.register(nn.MaxPool2d)
def convert_maxpool_module(b: GraphBuilder, node: torch.fx.Node, m: nn.MaxPool2d, x: str) -> None:
    if m.return_indices:
        raise b.unsupported(node, "MaxPool2d(return_indices=True)", "indices are not activations")
    b.emit(
        node, common.max_pool_op(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode), [x]
    )


@MODULE_CONVERTERS.register(nn.AdaptiveMaxPool2d)
def convert_adaptive_maxpool_module(
    b: GraphBuilder, node: torch.fx.Node, m: nn.AdaptiveMaxPool2d, x: str
) -> None:
    in_shape = b.shape_of(node.args[0]) or ()  # type: ignore[arg-type]
    b.emit(node, common.adaptive_max_pool_op(b, node, in_shape, m.output_size), [x])


@MODULE_CONVERTERS.register(nn.ReLU6)
def convert_relu6_module(b: GraphBuilder, node: torch.fx.Node, m: nn.ReLU6, x: str) -> None:
    b.emit(node, ReLU(max_value=6.0), [x])


@MODULE_CONVERTERS.register(nn.Hardtanh)
def convert_hardtanh_module(b: GraphBuilder, node: torch.fx.Node, m: nn.Hardtanh, x: str) -> None:
    b.emit(node, common.bounded_relu_op(b, node, m.min_val, m.max_val), [x])


@MODULE_CONVERTERS.register(nn.Softmax, nn.LogSoftmax)
def convert_softmax_module(b: GraphBuilder, node: torch.fx.Node, m: nn.Softmax, x: str) -> None:
    dim = -1 if m.dim is None else int(m.dim)
    b.emit(node, Softmax(dim, isinstance(m, nn.LogSoftmax)), [x])


@FUNCTION_CONVERTERS.register(F.max_pool2d)
def convert_max_pool_function(
    b: GraphBuilder,
    node: torch.fx.Node,
    *,
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> None:
    if return_indices:
        raise b.unsupported(node, "max_pool2d(return_indices=True)", "indices are not activations")
    op = common.max_pool_op(kernel_size, stride, padding, dilation, ceil_mode)
    b.emit(node, op, [b.tensor_input(node, input)])


@FUNCTION_CONVERTERS.register(F.relu6)
def convert_relu6_function(b: GraphBuilder, node: torch.fx.Node, *, input: Any, **_: Any) -> None:
    b.emit(node, ReLU(max_value=6.0), [b.tensor_input(node, input)])


@FUNCTION_CONVERTERS.register(F.hardtanh, torch.clamp, torch.Tensor.clamp)
def convert_clamp_function(b: GraphBuilder, node: torch.fx.Node, **kwargs: Any) -> None:
    x = kwargs.get("input", kwargs.get("self"))
    low = kwargs.get("min_val", kwargs.get("min"))
    high = kwargs.get("max_val", kwargs.get("max"))
    if "min_val" not in kwargs and "min" not in kwargs and len(node.args) > 1:
        low = b.arg(node.args[1])
        high = b.arg(node.args[2]) if len(node.args) > 2 else high
    b.emit(node, common.bounded_relu_op(b, node, low, high), [b.tensor_input(node, x)])


@FUNCTION_CONVERTERS.register(torch.cat)
def convert_cat_function(b: GraphBuilder, node: torch.fx.Node, **kwargs: Any) -> None:
    tensors = kwargs.get("tensors", kwargs.get("input"))
    dim = int(kwargs.get("dim", b.arg(node.args[1]) if len(node.args) > 1 else 0))
    rank = len(b.out_shape(node))
    if dim % rank == 0:
        raise b.unsupported(node, "cat", "concatenation along the batch axis (dim 0)")
    b.emit(node, Concat(dim % rank), [b.tensor_input(node, t) for t in tensors or ()])


@FUNCTION_CONVERTERS.register(operator.add, operator.iadd, torch.add, torch.Tensor.add)
def convert_add_function(b: GraphBuilder, node: torch.fx.Node, **_: Any) -> None:
    if len(node.args) != 2 or node.kwargs:
        raise b.unsupported(node, "add", "only a plain add of two tensors is supported")
    a, c = (b.tensor_input(node, b.arg(x)) for x in node.args)
    shapes = [b.shape_of(x) for x in node.args if isinstance(x, torch.fx.Node)]
    if len(shapes) != 2 or shapes[0] != shapes[1]:
        raise b.unsupported(node, "add", f"the inputs have different shapes {shapes}")
    b.emit(node, Add(), [a, c])


@FUNCTION_CONVERTERS.register(F.softmax, F.log_softmax, torch.softmax, torch.log_softmax)
def convert_softmax_function(b: GraphBuilder, node: torch.fx.Node, **kwargs: Any) -> None:
    x = kwargs.get("input", kwargs.get("self"))
    dim = kwargs.get("dim", b.arg(node.args[1]) if len(node.args) > 1 else -1)
    log = node.target in (F.log_softmax, torch.log_softmax)
    b.emit(node, Softmax(-1 if dim is None else int(dim), log), [b.tensor_input(node, x)])


@FUNCTION_CONVERTERS.register(torch.mean, torch.Tensor.mean, torch.amax, torch.Tensor.amax)
def convert_global_pool_function(b: GraphBuilder, node: torch.fx.Node, **kwargs: Any) -> None:
    x = b.tensor_input(node, kwargs.get("input", kwargs.get("self")))
    dims = kwargs.get("dim", b.arg(node.args[1]) if len(node.args) > 1 else None)
    keepdim = bool(kwargs.get("keepdim", False))
    in_shape = b.shape_of(node.args[0]) or ()  # type: ignore[arg-type]
    is_max = node.target in (torch.amax, torch.Tensor.amax)
    common.emit_global_pool(b, node, x, in_shape, dims, keepdim, is_max)


@FUNCTION_CONVERTERS.register(torch.sign, torch.Tensor.sign)
def convert_sign_function(b: GraphBuilder, node: torch.fx.Node, **kwargs: Any) -> None:
    x = b.tensor_input(node, kwargs.get("input", kwargs.get("self")))
    b.emit(node, BinaryActivation(BinaryKind.SIGN), [x])


@FUNCTION_CONVERTERS.register(operator.gt)
def convert_greater_function(b: GraphBuilder, node: torch.fx.Node, **_: Any) -> None:
    if len(node.args) != 2 or node.args[1] != 0:
        raise b.unsupported(node, "comparison", "only x > 0 (a Heaviside step) is supported")
    x = b.tensor_input(node, b.arg(node.args[0]))
    b.emit(node, BinaryActivation(BinaryKind.HEAVISIDE), [x])


@FUNCTION_CONVERTERS.register(torch.Tensor.float, torch.Tensor.to, torch.Tensor.type_as)
def convert_cast_method(b: GraphBuilder, node: torch.fx.Node, **_: Any) -> None:
    b.alias(node, b.tensor_input(node, b.arg(node.args[0])))


#: Methods that compute shapes, not tensors (their results only feed reshape arguments).
_SHAPE_METHODS = {"size", "dim"}
#: Tensor attributes that are shapes (``x.shape[0]`` traces as getattr + getitem).
_SHAPE_ATTRIBUTES = {"shape", "ndim"}


def _method_kwargs(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    from torch.fx.operator_schemas import normalize_function

    try:
        normalized = normalize_function(target, args, kwargs, normalize_to_only_use_kwargs=True)
    except (ValueError, TypeError):  # builtins without an introspectable signature
        normalized = None
    if normalized is not None:
        return dict(normalized.kwargs)
    # Methods and overloaded functions without a unique signature: positional first arg.
    out = dict(kwargs)
    if args:
        out.setdefault("input", args[0])
    return out


def _is_shape_access(b: GraphBuilder, node: torch.fx.Node) -> bool:
    """``x.shape`` / ``x.ndim``, or an item of such a shape (values that only feed reshapes)."""
    if node.target is getattr and len(node.args) == 2:
        return node.args[1] in _SHAPE_ATTRIBUTES
    if node.target is operator.getitem and isinstance(node.args[0], torch.fx.Node):
        source = node.args[0]
        return source.target is getattr and b.values.get(source, "") is None
    return False


#: The ATen name torch.export gives the node of each module type (its in-place variant
#: ends in ``_``), so that a net gets the same layer names whichever importer captured it.
_MODULE_NAMES: dict[type, str] = {
    nn.Conv2d: "conv2d",
    nn.Linear: "linear",
    nn.BatchNorm1d: "batch_norm",
    nn.BatchNorm2d: "batch_norm",
    nn.ReLU: "relu",
    nn.ReLU6: "hardtanh",
    nn.Hardtanh: "hardtanh",
    nn.MaxPool2d: "max_pool2d",
    nn.AvgPool2d: "avg_pool2d",
    nn.AdaptiveAvgPool2d: "adaptive_avg_pool2d",
    nn.AdaptiveMaxPool2d: "adaptive_max_pool2d",
    nn.Flatten: "flatten",
    nn.Dropout: "dropout",
    nn.Softmax: "softmax",
    nn.LogSoftmax: "log_softmax",
}


def export_names(gm: torch.fx.GraphModule) -> dict[torch.fx.Node, str]:
    """Names for the nodes of an fx trace as torch.export would give them: the ATen op's
    name (``conv2d``, ``relu``, ``relu_`` for an in-place one), numbered ``_1``, ``_2``,
    ... in graph order. Functions keep fx's own name, which is already the op's
    (``add``, ``cat``, ``flatten``); fx records ``x += y`` as ``add``, where torch.export
    writes ``add_``."""
    modules = dict(gm.named_modules())
    counts: dict[str, int] = {}
    names: dict[torch.fx.Node, str] = {}
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "get_attr", "output"):
            continue
        if node.op == "call_module":
            module = modules[str(node.target)]
            base = _MODULE_NAMES.get(type(module), type(module).__name__.lower())
            inplace = bool(getattr(module, "inplace", False))
        elif node.op == "call_method":
            base, inplace = str(node.target), False
        else:
            base = re.sub(r"_\d+$", "", node.name)
            inplace = bool(node.kwargs.get("inplace", False))
        if inplace and not base.endswith("_"):
            base += "_"
        k = counts.get(base, 0)
        counts[base] = k + 1
        names[node] = base if k == 0 else f"{base}_{k}"
    return names


class _ShapeRecorder(torch.fx.Interpreter):
    """Runs a traced module once and keeps each tensor-valued node's output shape.

    What ``torch.fx.passes.shape_prop.ShapeProp`` gives, without the import of
    sympy and torch's symbolic shapes that it brings (a third of a second).
    """

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.shapes: dict[torch.fx.Node, tuple[int, ...]] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self.shapes[n] = tuple(int(s) for s in result.shape)
        return result


def import_fx(model: nn.Module, example: torch.Tensor) -> Graph:
    """Trace ``model`` with ``torch.fx.symbolic_trace`` and convert it.

    Shapes come from running the traced module once on ``example``. Nodes are named
    as torch.export names them (:func:`export_names`).
    """
    gm = torch.fx.symbolic_trace(model)
    shapes = _ShapeRecorder(gm)
    with torch.no_grad():
        shapes.run(example.clone())  # the model may modify its input in place

    def shape_of(node: torch.fx.Node) -> tuple[int, ...] | None:
        return shapes.shapes.get(node)

    b = GraphBuilder(shape_of, export_names(gm))
    modules = dict(gm.named_modules())
    output: Any = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            b.add_input(node)
        elif node.op == "get_attr":
            value: Any = gm
            for part in str(node.target).split("."):
                value = getattr(value, part)
            b.alias(node, value)
        elif node.op == "call_module":
            module = modules[str(node.target)]
            module_converter = MODULE_CONVERTERS.get(type(module))
            if module_converter is None:
                raise b.unsupported(node, type(module).__name__)
            if len(node.args) != 1 or node.kwargs:
                raise b.unsupported(node, type(module).__name__, "called with extra arguments")
            module_converter(b, node, module, b.tensor_input(node, node.args[0]))
        elif node.op in ("call_function", "call_method"):
            if node.op == "call_method" and node.target in _SHAPE_METHODS:
                b.alias(node, None)
                continue
            if _is_shape_access(b, node):
                b.alias(node, None)
                continue
            target = (
                getattr(torch.Tensor, str(node.target), None)
                if node.op == "call_method"
                else node.target
            )
            function_converter = FUNCTION_CONVERTERS.get(target)
            if function_converter is None:
                name = getattr(target, "__name__", str(node.target))
                raise b.unsupported(node, f"{'Tensor.' if node.op == 'call_method' else ''}{name}")
            kwargs = _method_kwargs(target, b.arg(node.args), b.arg(node.kwargs))
            function_converter(b, node, **kwargs)
        elif node.op == "output":
            output = node.args[0]
    return b.finish(output, "output")
