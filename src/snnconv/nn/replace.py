""":func:`replace_relu`: every ReLU of a model becomes a :class:`~snnconv.nn.QCFS`.

The model is captured as a ``torch.fx`` graph (symbolic tracing, or
``torch.export`` where tracing fails; an ``ExportedProgram`` is unlifted), so
that every spelling the importers accept is found: ``nn.ReLU``, ``F.relu``,
``torch.relu``, ``Tensor.relu``, and the bounded ReLUs (``nn.ReLU6``,
``clamp(0, c)``, ``nn.Hardtanh(0, c)``, and their ATen forms). Each becomes a
QCFS module ``qcfs_<k>`` whose λ starts at the p-th percentile of the
activation's positive values on the calibration data (no larger than a
bounded ReLU's bound), the λ the conversion would have chosen.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.fx import GraphModule, Node

from snnconv.nn.qcfs import QCFS

__all__ = ["qcfs_modules", "relu_nodes", "replace_relu", "to_graph_module"]

aten = torch.ops.aten

_PLAIN = {F.relu, torch.relu, torch.relu_, aten.relu.default, aten.relu_.default}
_SIX = {F.relu6, aten.relu6.default, aten.relu6_.default}
_CLAMP = {torch.clamp, torch.clip, aten.clamp.default, aten.clamp_.default}
_HARDTANH = {F.hardtanh, aten.hardtanh.default, aten.hardtanh_.default}

#: Samples of positive activations kept per batch and layer for the percentile.
_SAMPLE = 1 << 16


def to_graph_module(
    model: nn.Module | torch.export.ExportedProgram, example: Tensor
) -> GraphModule:
    """``model`` as a trainable ``torch.fx.GraphModule`` (see the module docstring)."""
    if isinstance(model, torch.export.ExportedProgram):
        return _trainable(model)
    if isinstance(model, GraphModule):
        return model
    try:
        return torch.fx.symbolic_trace(model)
    except Exception:  # data-dependent control flow: capture one path with torch.export
        training = model.training
        program = torch.export.export(model.eval(), (example,), strict=False)
        model.train(training)
        return _trainable(program)


def _trainable(program: torch.export.ExportedProgram) -> GraphModule:
    """The program's graph as a plain ``GraphModule``: ``train()``/``eval()`` work and a
    batch of any size runs (the export's shape guards are dropped; the ops keep the mode
    they were exported in: batch-norm with running statistics if exported in eval mode)."""
    unlifted = program.module()
    gm = GraphModule(unlifted, unlifted.graph)
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and str(node.target) == "_guards_fn":
            gm.graph.erase_node(node)
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _arg(node: Node, index: int, names: Iterable[str], default: Any) -> Any:
    for name in names:
        if name in node.kwargs:
            return node.kwargs[name]
    return node.args[index] if len(node.args) > index else default


def _bound(node: Node, modules: dict[str, nn.Module]) -> tuple[bool, float | None]:
    """(is a ReLU, its upper bound or None) of an fx node."""
    if node.op == "call_module":
        m = modules[str(node.target)]
        if type(m) is nn.ReLU:
            return True, None
        if type(m) is nn.ReLU6:
            return True, 6.0
        if type(m) is nn.Hardtanh and m.min_val == 0:
            return True, float(m.max_val)
        return False, None
    if node.op == "call_method":
        if node.target in ("relu", "relu_"):
            return True, None
        low, high = _arg(node, 1, ("min",), None), _arg(node, 2, ("max",), None)
        if node.target in ("clamp", "clamp_", "clip") and _is_zero(low):
            return True, None if high is None else float(high)
        return False, None
    if node.op != "call_function":
        return False, None
    if node.target in _PLAIN:
        return True, None
    if node.target in _SIX:
        return True, 6.0
    if node.target in _CLAMP:
        low, high = _arg(node, 1, ("min",), None), _arg(node, 2, ("max",), None)
        return (True, None if high is None else float(high)) if _is_zero(low) else (False, None)
    if node.target in _HARDTANH:
        low, high = _arg(node, 1, ("min_val",), -1.0), _arg(node, 2, ("max_val",), 1.0)
        return (True, float(high)) if _is_zero(low) else (False, None)
    return False, None


def _is_zero(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def relu_nodes(gm: GraphModule) -> list[tuple[Node, float | None]]:
    """The ReLU spellings of ``gm``'s graph, in order, with their bounds."""
    modules = dict(gm.named_modules())
    found = []
    for node in gm.graph.nodes:
        is_relu, bound = _bound(node, modules)
        if is_relu:
            found.append((node, bound))
    return found


class _Observer(nn.Module):
    """A ReLU (bounded by ``bound``) that keeps a sample of its positive outputs."""

    def __init__(self, bound: float | None):
        super().__init__()
        self.bound = bound
        self.samples: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(x) if self.bound is None else torch.clamp(x, 0, self.bound)
        positive = y.detach().reshape(-1)
        positive = positive[positive > 0]
        if positive.numel() > _SAMPLE:
            pick = torch.randperm(positive.numel(), device=positive.device)[:_SAMPLE]
            positive = positive[pick]
        self.samples.append(positive.cpu())
        return y

    def percentile(self, p: float) -> float:
        values = torch.cat(self.samples) if self.samples else torch.zeros(0)
        if values.numel() == 0:
            return self.bound if self.bound is not None else 1.0
        lam = float(torch.quantile(values.double(), p / 100.0))
        return lam if lam > 0 else float(values.max())


def replace_relu(
    model: nn.Module | torch.export.ExportedProgram,
    levels: int,
    calibration: object,
    *,
    percentile: float = 99.9,
    batch_size: int = 256,
    seed: int = 0,
) -> GraphModule:
    """A copy of ``model`` in which every ReLU is a :class:`QCFS` with ``levels`` levels
    (``model`` itself is not modified).

    Args:
        model: An ``nn.Module`` (not modified) or an ``ExportedProgram``.
        levels: L of every QCFS layer.
        calibration: Inputs (tensor, Dataset or DataLoader) whose activations give
            each λ its initial value, the ``percentile``-th percentile of the layer's
            positive activations (at most a bounded ReLU's bound).
        percentile: p of that percentile.
        batch_size: Samples per forward pass on the calibration data.
        seed: Seeds the sampling of the activations.

    Raises:
        ValueError: The model has no ReLU, or ``levels`` is not a positive integer.
    """
    from snnconv.passes.calibrate import iterate_batches

    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 1:
        raise ValueError(f"levels must be a positive integer, got {levels!r}")
    first = next(iter(iterate_batches(calibration, batch_size)))
    source = copy.deepcopy(model) if isinstance(model, nn.Module) else model
    gm = to_graph_module(source, first.float())
    found = relu_nodes(gm)
    if not found:
        raise ValueError(
            "the model has no ReLU to replace (nn.ReLU, F.relu, torch.relu, Tensor.relu, "
            "ReLU6, clamp(0, c), Hardtanh(0, c))"
        )
    observers = []
    for k, (node, bound) in enumerate(found):
        name = f"qcfs_{k}"
        observer = _Observer(bound)
        gm.add_submodule(name, observer)
        with gm.graph.inserting_after(node):
            call = gm.graph.call_module(
                name, (node.args[0] if node.args else node.kwargs["input"],)
            )
        node.replace_all_uses_with(call)
        gm.graph.erase_node(node)
        observers.append((name, observer))
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    training = gm.training
    gm.eval()
    with torch.no_grad():
        for batch in iterate_batches(calibration, batch_size):
            gm(batch.float())
    gm.train(training)
    torch.random.set_rng_state(generator_state)
    for name, observer in observers:
        setattr(gm, name, QCFS(levels, observer.percentile(percentile)))
    gm.recompile()
    return gm


def qcfs_modules(gm: nn.Module) -> dict[str, QCFS]:
    """The QCFS modules of ``gm`` by name."""
    return {name: m for name, m in gm.named_modules() if isinstance(m, QCFS)}
