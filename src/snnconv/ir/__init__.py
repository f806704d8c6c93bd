"""Internal representation: typed ops and the graph that connects them."""

from snnconv.ir.graph import Graph, GraphError, Node
from snnconv.ir.ops import (
    OP_TYPES,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dropout,
    Identity,
    IFNeuron,
    Input,
    InputEncoding,
    Linear,
    Op,
    ReLU,
    ResetMode,
    Reshape,
)

__all__ = [
    "OP_TYPES",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Dropout",
    "Graph",
    "GraphError",
    "IFNeuron",
    "Identity",
    "Input",
    "InputEncoding",
    "Linear",
    "Node",
    "Op",
    "ReLU",
    "ResetMode",
    "Reshape",
]
