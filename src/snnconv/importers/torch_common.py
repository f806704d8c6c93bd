"""Graph building shared by the PyTorch importers (torch.export and torch.fx)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx

from snnconv.errors import UnsupportedOpError
from snnconv.ir import Graph, Input, Node, Op

#: What the PyTorch importers accept, in the words users know (for error messages).
SUPPORTED_TORCH_OPS: tuple[str, ...] = (
    "nn.Conv2d (any stride/padding/dilation/groups)",
    "nn.Linear",
    "nn.BatchNorm1d/2d",
    "ReLU (nn.ReLU, F.relu, torch.relu, Tensor.relu)",
    "bounded ReLU (nn.ReLU6, clamp(0, c), nn.Hardtanh(0, c))",
    "QCFS (snnconv.nn.QCFS: the quantization-clip-floor-shift activation)",
    "nn.AvgPool2d / F.avg_pool2d",
    "nn.AdaptiveAvgPool2d, mean over H and W",
    "nn.MaxPool2d / F.max_pool2d, nn.AdaptiveMaxPool2d (divisible sizes), amax over H and W",
    "torch.cat along channels (or another non-batch axis)",
    "residual add (+, +=, torch.add) of equal shapes",
    "Softmax / LogSoftmax over the classes (output only)",
    "binary activations: torch.sign, (x > 0).float(), heaviside(x, 0)",
    "flatten / view / reshape keeping the batch axis",
    "nn.Dropout",
    "nn.Identity",
)

Value = str | torch.Tensor | None


class GraphBuilder:
    """Accumulates nodes while an importer walks a torch.fx graph.

    ``values`` maps each fx node to what it stands for: the name of a graph
    node (a tensor computed from the input), a constant tensor (a parameter or
    buffer), or a Python value (shapes, flags).
    """

    def __init__(
        self,
        shape_of: Callable[[torch.fx.Node], tuple[int, ...] | None],
        names: dict[torch.fx.Node, str] | None = None,
    ):
        self.nodes: list[Node] = []
        self.values: dict[torch.fx.Node, Any] = {}
        self.shape_of = shape_of
        self.names = names or {}
        self.batch: int | None = None

    def name_of(self, node: torch.fx.Node) -> str:
        """The graph name of fx node ``node`` (the importer's own names where it gave some)."""
        return self.names.get(node, node.name)

    # -- sources ----------------------------------------------------------
    def source(self, node: torch.fx.Node) -> str:
        """A readable path of ``node`` in the user's model, e.g. ``features.3 (relu_2)``."""
        stack = node.meta.get("nn_module_stack")
        path = ""
        if stack:
            path = str(list(stack.values())[-1][0])
        elif node.op == "call_module":
            path = str(node.target)
        name = self.name_of(node)
        return f"{path} ({name})" if path else name

    def unsupported(self, node: torch.fx.Node, op: str, reason: str = "") -> UnsupportedOpError:
        """The error for an op we cannot convert."""
        return UnsupportedOpError(op, self.source(node), SUPPORTED_TORCH_OPS, reason)

    # -- values -----------------------------------------------------------
    def add_input(self, node: torch.fx.Node) -> None:
        """Register the user input placeholder."""
        if self.nodes:
            raise UnsupportedOpError(
                "multiple inputs",
                self.source(node),
                SUPPORTED_TORCH_OPS,
                "snnconv converts networks with exactly one image input",
            )
        shape = self.shape_of(node)
        if shape is None or len(shape) < 2:
            raise UnsupportedOpError(
                "input", self.source(node), SUPPORTED_TORCH_OPS, "the input must be a batch tensor"
            )
        self.batch = shape[0]
        self.nodes.append(Node("input", Input(tuple(shape[1:])), (), {"source": "input"}))
        self.values[node] = "input"

    def arg(self, value: Any) -> Any:
        """Map an fx argument (possibly nested) to its value."""
        return torch.fx.node.map_arg(value, lambda n: self.values[n])

    def tensor_input(self, node: torch.fx.Node, value: Any) -> str:
        """The graph-node name of an argument that must be a computed tensor."""
        if isinstance(value, torch.fx.Node):
            value = self.values[value]
        if not isinstance(value, str):
            raise self.unsupported(
                node, str(node.target), "expected a tensor computed from the input here"
            )
        return value

    def param(self, node: torch.fx.Node, value: Any) -> torch.Tensor | None:
        """A constant tensor argument (parameter/buffer), or None."""
        if isinstance(value, torch.fx.Node):
            value = self.values[value]
        if value is None or isinstance(value, torch.Tensor):
            return None if value is None else value.detach().clone().float()
        raise self.unsupported(
            node,
            str(node.target),
            "weights computed from the input are not supported; weights must be parameters",
        )

    def emit(self, node: torch.fx.Node, op: Op, inputs: Sequence[str], suffix: str = "") -> str:
        """Append a graph node computing ``op`` for fx node ``node``.

        An fx node that becomes several graph nodes names the earlier ones with a ``suffix``;
        the last one emitted stands for the fx node's value.
        """
        name = self.name_of(node) + suffix
        self.nodes.append(Node(name, op, tuple(inputs), {"source": self.source(node)}))
        self.values[node] = name
        return name

    def alias(self, node: torch.fx.Node, value: Any) -> None:
        """Make ``node`` stand for an existing value (no-op in inference)."""
        self.values[node] = value

    def out_shape(self, node: torch.fx.Node) -> tuple[int, ...]:
        """The output shape of ``node`` (with batch axis)."""
        shape = self.shape_of(node)
        if shape is None:
            raise self.unsupported(node, str(node.target), "its output shape is unknown")
        return shape

    def reshape_target(self, node: torch.fx.Node, source: str) -> tuple[int, ...]:
        """Per-sample output shape of a flatten/view/reshape; refuses batch mixing."""
        shape = self.out_shape(node)
        if not shape or shape[0] != self.batch:
            raise self.unsupported(
                node,
                "reshape",
                f"it changes the batch axis (output shape {list(shape)}); snnconv needs "
                "every reshape to keep axis 0 as the batch (use x.flatten(1) or "
                "x.view(x.size(0), -1))",
            )
        return tuple(shape[1:])

    def finish(self, output: Any, where: str) -> Graph:
        """The graph whose output is ``output`` (an fx node's value)."""
        if isinstance(output, (tuple, list)):
            if len(output) != 1:
                raise UnsupportedOpError(
                    "multiple outputs",
                    where,
                    SUPPORTED_TORCH_OPS,
                    "snnconv converts networks with a single output tensor",
                )
            output = output[0]
        value = self.values[output] if isinstance(output, torch.fx.Node) else output
        if not isinstance(value, str):
            raise UnsupportedOpError(
                "output", where, SUPPORTED_TORCH_OPS, "the output does not depend on the input"
            )
        return Graph(self.nodes, output=value).prune()


class eval_mode:
    """Put a module (and all submodules) in eval mode; restore each flag on exit."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.flags: list[tuple[torch.nn.Module, bool]] = []

    def __enter__(self) -> torch.nn.Module:
        self.flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        for module, flag in self.flags:
            module.training = flag


# -- op builders shared by both importers -----------------------------------
def conv2d_op(
    b: GraphBuilder,
    node: torch.fx.Node,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
) -> Op:
    """A :class:`~snnconv.ir.Conv2d` from PyTorch's conv2d arguments."""
    from snnconv.ir import Conv2d

    w = b.param(node, weight)
    if w is None or w.dim() != 4:
        raise b.unsupported(node, "conv", "only 2-D convolutions (4-D weights) are supported")
    if isinstance(padding, str):
        padding = _explicit_padding(b, node, padding, w.shape[2:], dilation)
    return Conv2d(w, b.param(node, bias), stride, padding, dilation, int(groups))


def _explicit_padding(
    b: GraphBuilder, node: torch.fx.Node, mode: str, kernel: Sequence[int], dilation: Any
) -> tuple[int, int]:
    if mode == "valid":
        return (0, 0)
    dil = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
    pads = []
    for k, d in zip(kernel, dil, strict=True):
        total = d * (k - 1)
        if total % 2:
            raise b.unsupported(
                node,
                "conv2d(padding='same')",
                "'same' padding with an even kernel pads asymmetrically; pad explicitly",
            )
        pads.append(total // 2)
    return (pads[0], pads[1])


def batchnorm_op(
    b: GraphBuilder,
    node: torch.fx.Node,
    weight: Any,
    bias: Any,
    mean: Any,
    var: Any,
    eps: float,
) -> Op:
    """A :class:`~snnconv.ir.BatchNorm` from running statistics."""
    from snnconv.ir import BatchNorm

    m, v = b.param(node, mean), b.param(node, var)
    if m is None or v is None:
        raise b.unsupported(
            node,
            "batch_norm",
            "batch-norm without running statistics (track_running_stats=False) normalizes "
            "with batch statistics, which a spiking network cannot do",
        )
    return BatchNorm(m, v, b.param(node, weight), b.param(node, bias), float(eps))


def avg_pool_op(
    kernel_size: Any,
    stride: Any,
    padding: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> Op:
    """An :class:`~snnconv.ir.AvgPool2d`; an empty stride means stride = kernel."""
    from snnconv.ir import AvgPool2d

    if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0):
        stride = kernel_size
    return AvgPool2d(
        kernel_size, stride, padding, bool(ceil_mode), bool(count_include_pad), divisor_override
    )


def max_pool_op(kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool) -> Op:
    """A :class:`~snnconv.ir.MaxPool2d`; an empty stride means stride = kernel."""
    from snnconv.ir import MaxPool2d

    if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0):
        stride = kernel_size
    return MaxPool2d(kernel_size, stride, padding, dilation, bool(ceil_mode))


def adaptive_max_pool_op(
    b: GraphBuilder, node: torch.fx.Node, in_shape: tuple[int, ...], output_size: Any
) -> Op:
    """Adaptive max pooling as a fixed MaxPool2d (input size divisible by the output size)."""
    from snnconv.ir import MaxPool2d

    out = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    h, w = in_shape[-2:]
    oh = h if out[0] is None else int(out[0])
    ow = w if out[1] is None else int(out[1])
    if h % oh or w % ow:
        raise b.unsupported(
            node,
            "adaptive_max_pool2d",
            f"input {h}x{w} is not divisible by the output {oh}x{ow}, so the windows differ "
            "in size; resize the input or use a fixed nn.MaxPool2d",
        )
    kernel = (h // oh, w // ow)
    return MaxPool2d(kernel, kernel)


def emit_global_pool(
    b: GraphBuilder,
    node: torch.fx.Node,
    src: str,
    in_shape: tuple[int, ...],
    dims: Any,
    keepdim: bool,
    is_max: bool,
) -> None:
    """``mean``/``amax`` over both spatial axes as global pooling (+ a reshape unless keepdim)."""
    from snnconv.ir import AdaptiveAvgPool2d, MaxPool2d, Reshape

    ndim = len(in_shape)
    axes = dims if isinstance(dims, (list, tuple)) else [dims]
    if ndim != 4 or dims is None or sorted(int(d) % ndim for d in axes) != [2, 3]:
        raise b.unsupported(
            node,
            "amax" if is_max else "mean",
            "only a reduction over both spatial axes (global pooling) is supported",
        )
    h, w = in_shape[2:]
    op = MaxPool2d((h, w), (h, w)) if is_max else AdaptiveAvgPool2d((1, 1))
    pooled = b.emit(node, op, [src], suffix="" if keepdim else "_pool")
    if not keepdim:
        b.emit(node, Reshape((in_shape[1],)), [pooled])


def qcfs_op(b: GraphBuilder, node: torch.fx.Node, lam: Any, levels: Any) -> Op:
    """``snnconv::qcfs``: a ReLU bounded by its trained λ and quantized to L levels."""
    from snnconv.ir import ReLU

    value = b.param(node, lam)
    if value is None or value.numel() != 1 or not bool(value.reshape(()) > 0):
        raise b.unsupported(node, "qcfs", f"its λ must be one positive constant, got {value}")
    return ReLU(max_value=float(value.reshape(())), levels=int(levels))


def bounded_relu_op(b: GraphBuilder, node: torch.fx.Node, low: Any, high: Any) -> Op:
    """ReLU, ReLU6, clamp(0, c) and hardtanh(0, c) as a (bounded) ReLU; refuses other ranges."""
    from snnconv.ir import ReLU

    if low is None or float(low) != 0.0:
        raise b.unsupported(
            node,
            f"clamp/hardtanh(min={low})",
            "only a lower bound of 0 maps onto an IF neuron (a ReLU-like unit)",
        )
    if high is None:
        return ReLU()
    if float(high) <= 0:
        raise b.unsupported(node, f"clamp(0, {high})", "the upper bound must be positive")
    return ReLU(max_value=float(high))
