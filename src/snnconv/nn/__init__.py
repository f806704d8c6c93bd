"""Trainable building blocks for networks meant to be converted: :class:`QCFS` and
:func:`replace_relu` (fine-tuning for few time steps, :func:`snnconv.finetune`)."""

from snnconv.nn.qcfs import QCFS, qcfs, qcfs_reference
from snnconv.nn.replace import qcfs_modules, relu_nodes, replace_relu, to_graph_module

__all__ = [
    "QCFS",
    "qcfs",
    "qcfs_modules",
    "qcfs_reference",
    "relu_nodes",
    "replace_relu",
    "to_graph_module",
]
