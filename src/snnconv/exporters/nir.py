"""Export a converted network to NIR, the Neuromorphic Intermediate Representation.

Targets ``nir==1.0.8``. NIR describes continuous-time primitives; we write the
discrete-time network that snnconv simulates with dt = 1:

* ``Conv2d`` → ``nir.Conv2d``; ``Linear`` → ``nir.Affine`` (``nir.Linear`` without
  bias). Biases and normalization are already folded into the weights by the
  conversion; no scaling node is written.
* ``IFNeuron`` → ``nir.IF(r=1, v_threshold=θ, v_reset=0)``. NIR 1.0.8's IF
  integrates ``dv/dt = r·I``, fires on ``v > v_threshold`` and sets ``v ← v_reset``.
  snnconv fires on ``v ≥ θ`` and, by default, resets *by subtraction*
  (``v ← v − θ``). NIR cannot express that reset, so every IF node records our
  semantics in its metadata (``snnconv_reset``, ``snnconv_fire``, ``snnconv_dt``,
  ``snnconv_v_init``); a consumer that reads only the NIR fields resets to zero.
  See docs/interop.md for what each consumer does.
* ``AvgPool2d``/``AdaptiveAvgPool2d`` → ``nir.AvgPool2d``, or ``nir.SumPool2d`` with
  the 1/(kh·kw) folded into the next layer's weights (``pooling=NirPooling.SUM``,
  for hardware that only sums).
* ``Reshape`` to one axis → ``nir.Flatten(start_dim=0)`` (NIR shapes have no batch axis).
* The output layer (read out by its accumulated input current) → ``nir.Affine`` →
  ``nir.I(r=1)``, the integrator: its state after T steps is our readout.

Refused with :class:`~snnconv.errors.UnsupportedOpError` naming the layer: the
spiking max-pool gate (unless ``substitutes`` contains
:attr:`NirSubstitute.AVERAGE_POOL`), binary/sign neurons, the spiking softmax
readout, concatenation, residual adds and scalings, and the membrane hold of the
first steps or a non-zero initial membrane (unless
:attr:`NirSubstitute.DROP_INITIAL_STATE`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnconv.errors import ConfigError, ModelLoadError, UnsupportedOpError, require_extra
from snnconv.ir import (
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Graph,
    IFNeuron,
    Input,
    Linear,
    MaxPool2d,
    Node,
    Readout,
    ResetMode,
    Reshape,
    Scale,
)
from snnconv.ir.graph import fresh_name
from snnconv.modes import NirPooling, NirSubstitute
from snnconv.network import SpikingNetwork
from snnconv.outputs import atomic_write_bytes
from snnconv.saved import is_saved_network
from snnconv.saved import load as load_saved
from snnconv.version import __version__

#: The NIR version this exporter writes (pinned in pyproject.toml).
NIR_VERSION = "1.0.8"

#: What the NIR exporter writes, for error messages and docs.
SUPPORTED_NIR_OPS: tuple[str, ...] = (
    "Conv2d → nir.Conv2d",
    "Linear → nir.Affine / nir.Linear",
    "IFNeuron → nir.IF (reset recorded in metadata)",
    "AvgPool2d / AdaptiveAvgPool2d → nir.AvgPool2d or nir.SumPool2d",
    "Reshape to one axis → nir.Flatten",
    "potential readout → nir.I, spike-count readout → nir.IF",
    "MaxPool2d only as average pooling (substitute 'average-pool')",
)


def _substitutes(values: Collection[NirSubstitute | str]) -> set[NirSubstitute]:
    out = set()
    for v in values:
        try:
            out.add(v if isinstance(v, NirSubstitute) else NirSubstitute(str(v)))
        except ValueError:
            raise ConfigError(
                f"unknown NIR substitute {v!r}; choose from {[s.value for s in NirSubstitute]}"
            ) from None
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().copy()


def _unsupported(node: Node, op: str, reason: str) -> UnsupportedOpError:
    return UnsupportedOpError(op, node.source, SUPPORTED_NIR_OPS, reason)


class _Writer:
    """Walks the spiking graph in order and builds NIR nodes and edges."""

    def __init__(self, nir: Any, graph: Graph, pooling: NirPooling, subs: set[NirSubstitute]):
        self.nir = nir
        self.graph = graph
        self.pooling = pooling
        self.subs = subs
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []
        #: graph node name → (NIR node name carrying its value, pending weight factor)
        self.value: dict[str, tuple[str, float]] = {}
        self.names: set[str] = {"input", "output"}

    def name(self, node: Node) -> str:
        return fresh_name(node.name.replace("/", "_"), self.names)

    def shape(self, name: str) -> tuple[int, ...]:
        shape = self.graph.node(name).meta.get("shape")
        if shape is None:
            raise ConfigError(f"node {name!r} has no inferred shape; run infer_shapes first")
        return tuple(int(s) for s in shape)

    def add(self, node: Node, nir_node: Any, factor: float = 1.0) -> str:
        (src,) = node.inputs
        upstream, _ = self.value[src]
        key = self.name(node)
        self.nodes[key] = nir_node
        self.edges.append((upstream, key))
        self.value[node.name] = (key, factor)
        return key

    def pending(self, node: Node) -> float:
        return self.value[node.inputs[0]][1]

    def check_single_input(self, node: Node) -> None:
        if isinstance(node.op, Concat):
            raise _unsupported(node, "Concat", "NIR 1.0.8 has no concatenation node")
        if isinstance(node.op, (Add, Scale)) or len(node.inputs) != 1:
            raise _unsupported(
                node,
                f"{node.op.kind} (residual join)",
                "a residual add with its per-input normalization scales cannot be written "
                "without scaling nodes; export networks without residual connections",
            )

    # -- ops ----------------------------------------------------------------------
    def conv(self, node: Node, op: Conv2d) -> None:
        factor = self.pending(node)
        in_shape = self.shape(node.inputs[0])
        bias = op.bias if op.bias is not None else torch.zeros(op.weight.shape[0])
        self.add(
            node,
            self.nir.Conv2d(
                input_shape=(in_shape[1], in_shape[2]),
                weight=_np(op.weight * factor),
                stride=tuple(op.stride),
                padding=tuple(op.padding),
                dilation=tuple(op.dilation),
                groups=int(op.groups),
                bias=_np(bias),
            ),
        )

    def linear(self, node: Node, op: Linear) -> None:
        weight = _np(op.weight * self.pending(node))
        if op.bias is None:
            self.add(node, self.nir.Linear(weight=weight))
        else:
            self.add(node, self.nir.Affine(weight=weight, bias=_np(op.bias)))

    def _fold_bias_offset(self, node: Node, offset: torch.Tensor) -> None:
        """The bias calibration's extra current, folded into the bias of the Conv2d or
        Affine that feeds the IF layer directly (exact); refused otherwise."""
        upstream, _ = self.value[node.inputs[0]]
        written: Any = self.nodes.get(upstream)
        if getattr(written, "bias", None) is None or written.bias.size != offset.numel():
            raise _unsupported(
                node,
                "IFNeuron(bias_offset) (bias calibration)",
                "its extra current can be folded only into a Conv2d or Linear with a bias "
                "feeding it directly; convert without bias_calibration to export",
            )
        written.bias = (written.bias + _np(offset).reshape(written.bias.shape)).astype(np.float32)

    def neuron(self, node: Node, op: IFNeuron) -> None:
        if self.pending(node) != 1.0:
            raise _unsupported(
                node, "SumPool2d before IF", "sum pooling must feed a Conv2d or Linear"
            )
        if (op.hold_steps or op.v_init) and NirSubstitute.DROP_INITIAL_STATE not in self.subs:
            raise _unsupported(
                node,
                f"IFNeuron(hold_steps={op.hold_steps}, v_init={op.v_init})",
                "NIR has no initial membrane potential or membrane hold; convert with "
                "clamp_steps=0 and v_init=0, or export with the substitute "
                "'drop-initial-state'",
            )
        if op.v_offset is not None and NirSubstitute.DROP_INITIAL_STATE not in self.subs:
            raise _unsupported(
                node,
                "IFNeuron(v_offset) (potential calibration)",
                "NIR has no initial membrane potential; convert without "
                "potential_calibration, or export with the substitute 'drop-initial-state'",
            )
        if op.negative_spikes:
            raise _unsupported(
                node,
                "IFNeuron(negative_spikes=True)",
                "NIR's IF neuron fires only positive spikes; convert with "
                "negative_spikes=False to export",
            )
        if op.bias_offset is not None:
            self._fold_bias_offset(node, op.bias_offset)
        shape = self.shape(node.name)
        ones = np.ones(shape, dtype=np.float32)
        metadata = {
            "snnconv_reset": op.reset.value,
            "snnconv_fire": "v >= v_threshold",
            "snnconv_dt": 1.0,
            "snnconv_v_init": float(op.v_init),
            "snnconv_hold_steps": int(op.hold_steps),
        }
        if op.max_value is not None:
            metadata["snnconv_ann_max_value"] = float(op.max_value)
        self.add(
            node,
            self.nir.IF(
                r=ones,
                v_threshold=ones * float(op.threshold),
                v_reset=np.zeros(shape, dtype=np.float32),
                metadata=metadata,
            ),
        )

    def pool(
        self,
        node: Node,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
    ) -> None:
        factor = self.pending(node)
        args = {
            "kernel_size": np.array(kernel),
            "stride": np.array(stride),
            "padding": np.array(padding),
        }
        if self.pooling is NirPooling.SUM:
            self.add(node, self.nir.SumPool2d(**args), factor / (kernel[0] * kernel[1]))
        else:
            self.add(node, self.nir.AvgPool2d(**args), factor)

    def avg_pool(self, node: Node, op: AvgPool2d) -> None:
        if op.ceil_mode or op.divisor_override is not None:
            raise _unsupported(node, "AvgPool2d(ceil_mode/divisor_override)", "NIR pools floor")
        if any(op.padding) and not op.count_include_pad:
            raise _unsupported(
                node,
                "AvgPool2d(count_include_pad=False)",
                "NIR's padded average divides by the full window",
            )
        self.pool(node, op.kernel_size, op.stride, op.padding)

    def adaptive_pool(self, node: Node, op: AdaptiveAvgPool2d) -> None:
        h, w = self.shape(node.inputs[0])[1:]
        oh, ow = op.output_size
        if h % oh or w % ow:
            raise _unsupported(
                node, "AdaptiveAvgPool2d", f"input {h}x{w} is not divisible by {oh}x{ow}"
            )
        kernel = (h // oh, w // ow)
        self.pool(node, kernel, kernel, (0, 0))

    def max_pool(self, node: Node, op: MaxPool2d) -> None:
        if NirSubstitute.AVERAGE_POOL not in self.subs:
            raise _unsupported(
                node,
                "MaxPool2d (spiking max-pool gate)",
                "NIR cannot express the gate that passes only the most active input's "
                "spikes; convert with maxpool=average, or export with the substitute "
                "'average-pool' (documented: it changes the network)",
            )
        if op.dilation != (1, 1) or op.ceil_mode:
            raise _unsupported(node, "MaxPool2d(dilation/ceil_mode)", "no average equivalent")
        self.pool(node, op.kernel_size, op.stride, op.padding)
        key = self.value[node.name][0]
        self.nodes[key].metadata = {"snnconv_substitute": "average-pool for MaxPool2d"}

    def reshape(self, node: Node, op: Reshape) -> None:
        in_shape = self.shape(node.inputs[0])
        if len(op.shape) != 1:
            raise _unsupported(
                node, f"Reshape to {list(op.shape)}", "NIR only flattens (nir.Flatten)"
            )
        if len(in_shape) == 1:
            self.value[node.name] = self.value[node.inputs[0]]
            return
        self.add(
            node,
            self.nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1),
            self.pending(node),
        )


def to_nir(
    network: SpikingNetwork,
    *,
    pooling: NirPooling | str = NirPooling.AVERAGE,
    substitutes: Collection[NirSubstitute | str] = (),
) -> Any:
    """Build the ``nir.NIRGraph`` of a converted network (see the module docstring).

    Args:
        network: A converted network (``snnconv.convert`` or ``snnconv.load``).
        pooling: Write average pooling as ``nir.AvgPool2d`` or as ``nir.SumPool2d``
            with the average's 1/(kh·kw) folded into the next layer's weights.
        substitutes: Opt-in approximations (:class:`NirSubstitute`).

    Returns:
        The NIR graph.

    Raises:
        UnsupportedOpError: a layer NIR cannot express (named), without a chosen substitute.
    """
    nir = require_extra("nir", "nir", "NIR export")
    try:
        pool_mode = pooling if isinstance(pooling, NirPooling) else NirPooling(str(pooling))
    except ValueError:
        raise ConfigError(
            f"pooling must be one of {[p.value for p in NirPooling]}, got {pooling!r}"
        ) from None
    subs = _substitutes(substitutes)
    graph = network.graph
    graph.require_shapes("NIR export")
    readout = network.config.readout
    if readout is Readout.SOFTMAX:
        raise UnsupportedOpError(
            "spiking softmax readout",
            graph.output_node.source,
            SUPPORTED_NIR_OPS,
            "NIR has no stochastic softmax neuron; convert with readout=potential or spikes",
        )
    w = _Writer(nir, graph, pool_mode, subs)
    input_shape = tuple(int(s) for s in graph.input.op.shape)  # type: ignore[attr-defined]
    w.nodes["input"] = nir.Input(input_type={"input": np.array(input_shape)})
    w.value[graph.input.name] = ("input", 1.0)
    for node in graph.nodes[1:]:
        _write_layer(w, node)
    _write_readout(w, graph.output_node, readout)
    metadata = {
        "producer": f"snnconv {__version__}",
        "nir_version": NIR_VERSION,
        "time": "discrete steps, dt = 1: v += r * I each step",
        "input_encoding": network.config.input_encoding.value,
        "input": "analog: the (normalized) image is the input current at every step"
        if network.config.input_encoding.value == "analog"
        else "poisson: each pixel spikes with probability min(|x|, 1) per step",
        "readout": readout.value,
        "pooling": pool_mode.value,
        "substitutes": ",".join(sorted(s.value for s in subs)),
    }
    return nir.NIRGraph(nodes=w.nodes, edges=w.edges, metadata=metadata)


def _write_layer(w: _Writer, node: Node) -> None:
    """Write one node of the spiking graph (or refuse it, naming it)."""
    op = node.op
    w.check_single_input(node)
    if isinstance(op, Conv2d):
        w.conv(node, op)
    elif isinstance(op, Linear):
        w.linear(node, op)
    elif isinstance(op, IFNeuron):
        w.neuron(node, op)
    elif isinstance(op, AvgPool2d):
        w.avg_pool(node, op)
    elif isinstance(op, AdaptiveAvgPool2d):
        w.adaptive_pool(node, op)
    elif isinstance(op, MaxPool2d):
        w.max_pool(node, op)
    elif isinstance(op, Reshape):
        w.reshape(node, op)
    elif not isinstance(op, Input):
        raise _unsupported(node, op.kind, "NIR 1.0.8 has no equivalent primitive")


def _write_readout(w: _Writer, out: Node, readout: Readout) -> None:
    """The readout after the output layer: nir.I (accumulated current) or nir.IF (spikes)."""
    nir = w.nir
    if not isinstance(out.op, (Linear, Conv2d)):
        raise _unsupported(
            out, out.op.kind, "the output layer must be a Linear/Conv2d read out by its current"
        )
    classes = w.shape(out.name)
    last, factor = w.value[out.name]
    if factor != 1.0:  # pragma: no cover - the output is a weighted layer
        raise _unsupported(out, "SumPool2d at the output", "sum pooling must feed a layer")
    ones = np.ones(classes, dtype=np.float32)
    if readout is Readout.SPIKES:
        theta = float(out.meta.get("readout_scale", 1.0))
        w.nodes["readout"] = nir.IF(
            r=ones,
            v_threshold=ones * theta,
            v_reset=np.zeros(classes, dtype=np.float32),
            metadata={
                "snnconv_reset": ResetMode.SUBTRACT.value,
                "snnconv_fire": "v >= v_threshold",
                "snnconv_readout": "spike counts; ties broken by accumulated current",
            },
        )
    else:
        w.nodes["readout"] = nir.I(
            r=ones,
            metadata={"snnconv_readout": "accumulated input current; class = argmax of v"},
        )
    w.edges.append((last, "readout"))
    w.nodes["output"] = nir.Output(output_type={"output": np.array(classes)})
    w.edges.append(("readout", "output"))


def export_nir(
    network: SpikingNetwork | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    pooling: NirPooling | str = NirPooling.AVERAGE,
    substitutes: Collection[NirSubstitute | str] = (),
) -> Path:
    """Write a converted network as a NIR file (HDF5), atomically.

    Args:
        network: A :class:`SpikingNetwork`, or the directory of a saved network or of a
            ``snnconv run``/``convert`` output (which holds ``network.json``).
        out_path: The ``.nir`` file to write (its folder is created).
        pooling: ``average`` (nir.AvgPool2d) or ``sum`` (nir.SumPool2d, 1/k² folded
            into the next layer).
        substitutes: Opt-in approximations: ``average-pool`` (max-pool gate as average
            pooling), ``drop-initial-state`` (ignore membrane hold and v_init).

    Returns:
        The written path.

    Raises:
        ModelLoadError: ``network`` is a path without a saved network.
        UnsupportedOpError: a layer NIR cannot express, named, with the way out.
    """
    nir = require_extra("nir", "nir", "NIR export")
    if not isinstance(network, SpikingNetwork):
        path = Path(network)
        if not is_saved_network(path):
            raise ModelLoadError(
                f"{path} holds no saved network (network.json); give the directory written "
                "by `snnconv convert` or `snnconv run`, or a converted network"
            )
        network = load_saved(path)
    graph = to_nir(network, pooling=pooling, substitutes=substitutes)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def nir_summary(graph: Any) -> list[tuple[str, str]]:
    """(name, NIR type) of the nodes along the graph's single path from input to output."""
    successors: dict[str, list[str]] = {}
    for a, b in graph.edges:
        successors.setdefault(a, []).append(b)
    order, current, seen = [], "input", set()
    while current not in seen:
        seen.add(current)
        order.append((current, type(graph.nodes[current]).__name__))
        nxt = successors.get(current, [])
        if len(nxt) != 1:
            break
        current = nxt[0]
    return order


__all__ = [
    "NIR_VERSION",
    "SUPPORTED_NIR_OPS",
    "NirPooling",
    "NirSubstitute",
    "export_nir",
    "nir_summary",
    "to_nir",
]
