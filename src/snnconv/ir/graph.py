"""The internal graph: a topologically ordered list of named nodes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from snnconv.ir.ops import Input, Op


@dataclass(eq=False)
class Node:
    """One operation applied to the outputs of earlier nodes.

    Attributes:
        name: Unique name within the graph.
        op: What the node computes.
        inputs: Names of the nodes whose outputs feed ``op``, in argument order.
        meta: Analysis results and provenance, separate from parameters:
            ``source`` (where the node came from in the user's model),
            ``shape`` (one sample's output shape), ``scale`` (normalization λ).
    """

    name: str
    op: Op
    inputs: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """Where the node came from in the user's model (falls back to its name)."""
        return str(self.meta.get("source", self.name))


def fresh_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``, ... : the first not in ``taken`` (then added)."""
    candidate, k = base, 1
    while candidate in taken:
        k += 1
        candidate = f"{base}_{k}"
    taken.add(candidate)
    return candidate


class GraphError(ValueError):
    """The graph is malformed (a bug in an importer or pass, or a corrupt file)."""


@dataclass(eq=False)
class Graph:
    """A single-input, single-output dataflow graph in topological order."""

    nodes: list[Node]
    output: str

    def __post_init__(self) -> None:
        self.validate()

    # -- queries ---------------------------------------------------------
    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def input(self) -> Node:
        """The input node."""
        return self.nodes[0]

    @property
    def output_node(self) -> Node:
        """The node whose value is the network's output."""
        return self.node(self.output)

    def users(self, name: str) -> list[Node]:
        """Nodes that take ``name``'s output as an input."""
        return [n for n in self.nodes if name in n.inputs]

    def producers(self, node: Node) -> list[Node]:
        """The nodes feeding ``node``."""
        return [self.node(i) for i in node.inputs]

    # -- construction ----------------------------------------------------
    def validate(self) -> None:
        """Check names, ordering and arity; raise :class:`GraphError` if malformed."""
        if not self.nodes or not isinstance(self.nodes[0].op, Input):
            raise GraphError("the first node of a graph must be its Input")
        seen: set[str] = set()
        for n in self.nodes:
            if n.name in seen:
                raise GraphError(f"duplicate node name {n.name!r}")
            if isinstance(n.op, Input) and n is not self.nodes[0]:
                raise GraphError(f"only one Input node is supported, found another: {n.name!r}")
            for i in n.inputs:
                if i not in seen:
                    raise GraphError(f"node {n.name!r} uses {i!r} before it is defined")
            seen.add(n.name)
        if self.output not in seen:
            raise GraphError(f"output {self.output!r} is not a node of the graph")

    def replace_nodes(self, nodes: list[Node], output: str | None = None) -> Graph:
        """A new graph with ``nodes`` (same output unless given)."""
        return Graph(nodes=nodes, output=self.output if output is None else output)

    def with_op(self, name: str, op: Op, **meta: Any) -> Graph:
        """A new graph in which node ``name`` computes ``op`` (meta updated)."""
        nodes = [
            dataclasses.replace(n, op=op, meta={**n.meta, **meta}) if n.name == name else n
            for n in self.nodes
        ]
        return self.replace_nodes(nodes)

    def bypass(self, name: str) -> Graph:
        """A new graph without single-input node ``name``: its users read its input."""
        node = self.node(name)
        if len(node.inputs) != 1:
            raise GraphError(f"cannot bypass {name!r}: it has {len(node.inputs)} inputs")
        src = node.inputs[0]
        nodes = [
            dataclasses.replace(n, inputs=tuple(src if i == name else i for i in n.inputs))
            for n in self.nodes
            if n.name != name
        ]
        return self.replace_nodes(nodes, output=src if self.output == name else self.output)

    def prune(self) -> Graph:
        """A new graph without nodes that do not contribute to the output."""
        live = {self.output}
        for n in reversed(self.nodes):
            if n.name in live:
                live.update(n.inputs)
        live.add(self.nodes[0].name)
        return self.replace_nodes([n for n in self.nodes if n.name in live])

    def require_shapes(self, needed_by: str) -> None:
        """Raise :class:`GraphError` if a node has no ``meta['shape']`` (``infer_shapes``
        records them): a pass that needs shapes says so instead of recomputing them."""
        missing = [n.name for n in self.nodes if "shape" not in n.meta]
        if missing:
            raise GraphError(
                f"{needed_by} needs every node's shape, and {missing[0]!r} "
                f"({len(missing)} node(s) in all) has none: run infer_shapes first"
            )

    def to(self, device: Any, dtype: Any = None) -> Graph:
        """A copy whose parameters live on ``device`` (as ``dtype``: float32 by default)."""
        import torch

        dtype = torch.float32 if dtype is None else dtype
        nodes = []
        for n in self.nodes:
            tensors = n.op.tensors()
            if tensors:
                moved = {k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}
                n = dataclasses.replace(n, op=dataclasses.replace(n.op, **moved))
            nodes.append(n)
        return self.replace_nodes(nodes)

    def summary(self) -> str:
        """A one-line-per-node description, for messages and debugging."""
        lines = []
        for n in self.nodes:
            shape = n.meta.get("shape")
            shape_s = f" -> {list(shape)}" if shape is not None else ""
            lines.append(f"{n.name}: {n.op.kind}({', '.join(n.inputs)}){shape_s}")
        return "\n".join(lines)
