"""The graph builder: accumulates internal nodes while the importer walks an ONNX graph."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from snnconv.errors import UnsupportedOpError
from snnconv.importers.onnx.registry import SUPPORTED_ONNX_OPS
from snnconv.importers.onnx.values import CLIP_FLOOR_PATTERN, Activation, ClipFloor, Value
from snnconv.ir import Conv2d, Input, Linear, Node, Op, Reshape
from snnconv.ir.graph import fresh_name


class OnnxGraphBuilder:
    """Accumulates internal nodes while walking an ONNX graph in topological order.

    Attributes:
        opset: The model's default-domain opset.
        uses: How many node inputs (and graph outputs) read each ONNX value.
        nodes: The internal nodes emitted so far.
        examples: An example (batch 1) output of each internal node, for shapes.
        values: What each ONNX value name stands for.
        current: The ONNX node being converted.
        current_source: Its readable name, for error messages.
    """

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

    def refuse_pending_pad(self, act: Activation) -> None:
        """Refuse ``act`` if it carries a Pad that only a Conv or AveragePool can fold."""
        if act.pad is not None:
            raise self.unsupported(
                "Pad",
                f"the zero padding of {act.pad_node} can only be folded into a following Conv "
                f"or AveragePool, but it feeds {self.current.op_type}; pad inside the "
                "convolution/pooling instead",
            )

    # -- values -----------------------------------------------------------
    def constant(self, value: Value, what: str) -> torch.Tensor:
        """``value`` as a constant tensor; refuses activations."""
        if isinstance(value, torch.Tensor):
            return value
        raise self.unsupported(
            self.current.op_type,
            f"its {what} must be a constant (an initializer), not computed from the input",
        )

    def optional_constant(
        self, inputs: Sequence[Value], index: int, what: str
    ) -> torch.Tensor | None:
        """Optional input ``index`` as a constant tensor, or None where the node omits it."""
        if len(inputs) > index and inputs[index] is not None:
            return self.constant(inputs[index], what)
        return None

    def axes(self, inputs: Sequence[Value], attribute: Sequence[int] | None) -> list[int]:
        """The current node's ``axes``: its attribute (older opsets) or its input 1, else []."""
        if attribute is not None:
            return [int(a) for a in attribute]
        given = self.optional_constant(inputs, 1, "axes")
        return [] if given is None else [int(a) for a in given.reshape(-1).tolist()]

    def activation(self, value: Value, what: str = "input") -> Activation:
        """``value`` as an activation; refuses constants."""
        if isinstance(value, Activation):
            return value
        if isinstance(value, ClipFloor):
            raise self.unsupported(
                self.current.op_type,
                f"its {what} is a clip-floor activation begun at {value.start} and left "
                f"unfinished ({value.stage}): only the whole pattern {CLIP_FLOOR_PATTERN} "
                "is a spiking layer, and nothing else may read its steps",
            )
        raise self.unsupported(
            self.current.op_type,
            f"its {what} must be computed from the network input; an op on constants only "
            "is folded, so this usually means a weight is fed where data was expected",
        )

    def output_used(self, index: int) -> bool:
        """Whether the current node has an output ``index`` that another node reads."""
        outputs = self.current.output
        return (
            len(outputs) > index and bool(outputs[index]) and bool(self.uses.get(outputs[index], 0))
        )

    # -- internal nodes -------------------------------------------------------
    def _unique(self, base: str) -> str:
        return fresh_name(re.sub(r"[^0-9A-Za-z_.]", "_", base) or "node", self._names)

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

    # -- layouts --------------------------------------------------------------
    def materialize(self, value: Value, what: str = "input") -> Activation:
        """An activation whose internal tensor has exactly its ONNX shape and order (NCHW)."""
        act = self.activation(value, what)
        self.refuse_pending_pad(act)
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

    def relabel(self, act: Activation, shape: tuple[int, ...]) -> Activation:
        """The same elements under a new ONNX shape (reshape keeps the flattened order)."""
        self.refuse_pending_pad(act)
        if shape[0] != act.shape[0]:
            raise self.unsupported(
                self.current.op_type,
                f"it changes the batch axis ({list(act.shape)} -> {list(shape)}); snnconv needs "
                "every reshape to keep axis 0 as the batch",
            )
        if math.prod(shape) != math.prod(act.shape):
            raise self.unsupported(
                self.current.op_type, f"cannot reshape {list(act.shape)} into {list(shape)}"
            )
        if act.layout is None and self.internal_shape(act.name) != shape:
            return self.emit(Reshape(shape[1:]), [act.name])
        return replace(act, shape=shape)

    def features(self, value: Value) -> tuple[str, torch.Tensor | None]:
        """A 2-D activation for a dense layer: (internal node name, element permutation)."""
        act = self.activation(value)
        self.refuse_pending_pad(act)
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
