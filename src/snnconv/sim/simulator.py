"""Time-chunked, layer-major simulator of converted networks.

For each chunk of K time steps, every stateless layer (conv, linear, pooling)
runs once on the whole ``[K·B, ...]`` block of its input, and every IF layer
scans its K steps, carrying membrane state across chunks. Memory is bounded
by K, not by the number of steps T. Nodes whose value does not change over
time (the analog input and the layers computed from it before the first
spiking layer) are computed once per batch.

The readout is the output layer's accumulated input current (its membrane
potential without threshold or reset); the class ranking after every step
gives the accuracy at every t in one run.

With a reduced ``precision`` (bfloat16, float16) the time-varying conv and
linear layers run in that format: their inputs (spikes, or averages of spikes)
are converted to it, the weights are rounded once, and their outputs are
converted back to float32. Everything else (IF updates, pooling, adds, the
static layers, the layers feeding the readout, every count) stays float32:
on CPUs, elementwise work in bfloat16 or mixed dtypes is several times slower.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import sys
from dataclasses import dataclass, field

import torch
from torch import Tensor

from snnconv.config import Precision
from snnconv.errors import ConfigError
from snnconv.ir import (
    SPIKING_OPS,
    BinaryNeuron,
    Conv2d,
    Graph,
    IFNeuron,
    Input,
    InputEncoding,
    Linear,
    MaxPool2d,
    Node,
    Readout,
)
from snnconv.sim.maxpool import MaxPoolGate
from snnconv.sim.neurons import IFParams, IFState, if_scan
from snnconv.sim.readout import ReadoutScan
from snnconv.sim.reference import check_input, last_uses
from snnconv.sim.state import BatchState, Tally

#: Default steps per chunk by device type, chosen by ``benchmarks/bench_sim.py``.
DEFAULT_CHUNK: dict[str, int] = {"cpu": 1, "cuda": 16}


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Let glibc reuse freed tensors' memory instead of unmapping it (once per process).

    PyTorch's CPU tensors come straight from ``malloc``. With glibc's defaults a
    multi-megabyte tensor is often mapped fresh (or the heap trimmed and grown
    again), so every step of a simulation writes into new pages and takes a page
    fault per 4 KiB: on the VGG-style net at batch 256 about 6,300 faults per
    step, which cost a quarter of the step (and made the times vary between
    runs). Setting ``M_MMAP_THRESHOLD`` to its maximum (32 MiB) and
    ``M_TRIM_THRESHOLD`` to 1 GiB keeps freed blocks for reuse: no faults after
    the first steps. The process's resident memory then stays near its peak
    instead of shrinking after large frees.

    Called by :class:`Simulator` on CPU; does nothing where glibc is absent
    (macOS, Windows, musl) or ``SNNCONV_MALLOC_DEFAULTS=1`` is set. Returns
    whether the thresholds are set.
    """
    global _malloc_tuned
    if _malloc_tuned is None:
        _malloc_tuned = False
        if sys.platform.startswith("linux") and os.environ.get("SNNCONV_MALLOC_DEFAULTS") != "1":
            try:
                mallopt = ctypes.CDLL("libc.so.6").mallopt
            except (OSError, AttributeError):
                return False
            _malloc_tuned = bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(
                mallopt(_M_TRIM_THRESHOLD, 1 << 30)
            )
    return _malloc_tuned


def default_chunk(device: torch.device) -> int:
    """The measured default chunk size K for ``device``."""
    return DEFAULT_CHUNK.get(device.type, 8)


@dataclass
class BatchResult:
    """Per-step results of simulating one batch.

    Attributes:
        correct_top1: ``[T]`` count of samples whose top-1 class is right after each step.
        correct_top5: ``[T]`` the same for top-5.
        spikes: ``{IF node name: [T] total spikes in that layer at each step}``.
        sops: ``{spike source: [T] synaptic operations its events triggered at each
            step}`` (float64; only for sources given a fan-out map).
        events: ``{gate or Poisson input: [T] events at each step}`` (the spike
            sources that are not spiking layers; only with a fan-out map).
        predictions: ``[B]`` top-1 class after the last step.
        totals: ``{IF node name: [B, ...] spikes of each neuron over all steps}``
            (signed for sign units; only with ``record_rates``).
        output: ``[B, C]`` accumulated output potential after the last step.
    """

    correct_top1: Tensor
    correct_top5: Tensor
    spikes: dict[str, Tensor] = field(default_factory=dict)
    output: Tensor | None = None
    totals: dict[str, Tensor] = field(default_factory=dict)
    sops: dict[str, Tensor] = field(default_factory=dict)
    events: dict[str, Tensor] = field(default_factory=dict)
    predictions: Tensor | None = None


class Simulator:
    """Simulates a spiking graph (IF layers from :func:`~snnconv.passes.to_spiking`).

    Args:
        graph: The spiking graph.
        device: Where to simulate.
        chunk: Steps per layer call (K); None for the device's default.
        input_encoding: Analog (constant current) or Poisson input.
        seed: Seed of the Poisson generator.
        readout: How the output layer ranks the classes.
        fan_out: ``{spike source: [*shape] fan-out of each neuron}`` (see
            :mod:`snnconv.metrics.operations`): the synaptic operations of each
            source's events are counted per step (events weighted by fan-out,
            inside the spike-count reduction).
        precision: Number format of the time-varying conv and linear layers
            (see :class:`~snnconv.config.Precision`; float32 by default).
    """

    def __init__(
        self,
        graph: Graph,
        *,
        device: torch.device | str = "cpu",
        chunk: int | None = None,
        input_encoding: InputEncoding = InputEncoding.ANALOG,
        seed: int = 0,
        readout: Readout = Readout.POTENTIAL,
        fan_out: dict[str, Tensor] | None = None,
        precision: Precision | str = Precision.FLOAT32,
    ):
        self.device = torch.device(device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.graph = graph.to(self.device)
        self.chunk = int(chunk) if chunk is not None else default_chunk(self.device)
        if self.chunk < 1:
            raise ConfigError(f"chunk must be a positive integer, got {chunk}")
        self.encoding = InputEncoding(input_encoding)
        self.readout = Readout(readout)
        self.seed = seed
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.last_use = last_uses(self.graph)
        analog = self.encoding is InputEncoding.ANALOG
        self.static: set[str] = set()
        for node in self.graph.nodes:
            if isinstance(node.op, Input):
                if analog:
                    self.static.add(node.name)
            elif not isinstance(node.op, SPIKING_OPS) and all(
                i in self.static for i in node.inputs
            ):
                self.static.add(node.name)
        #: Max-pool layers with spiking input: gated, with state.
        self.gated = [
            n for n in self.graph.nodes if isinstance(n.op, MaxPool2d) and n.name not in self.static
        ]
        self.neurons = [n for n in self.graph.nodes if isinstance(n.op, SPIKING_OPS)]
        self.params = {n.name: IFParams.of(n.op) for n in self.neurons}  # type: ignore[arg-type]
        self.fan_out = {
            name: f.reshape(-1).to(self.device, torch.float64)
            for name, f in (fan_out or {}).items()
        }
        try:
            self.precision = Precision(precision)
        except ValueError:
            raise ConfigError(
                f"precision must be one of {[p.value for p in Precision]}, got {precision!r}"
            ) from None
        #: ``{node: op with weights in the reduced format}`` of the time-varying conv and
        #: linear layers that run in it: all of them, except those whose output reaches
        #: the readout without an IF layer. Empty in float32 (every layer runs as is).
        self.reduced: dict[str, Conv2d | Linear] = {}
        dtype = self.precision.dtype
        if dtype != torch.float32:
            readout_path = self._readout_path()
            for node in self.graph.nodes:
                op = node.op
                if (
                    isinstance(op, (Conv2d, Linear))
                    and node.name not in self.static
                    and node.name not in readout_path
                ):
                    self.reduced[node.name] = dataclasses.replace(
                        op,
                        weight=op.weight.to(dtype),
                        bias=None if op.bias is None else op.bias.to(dtype),
                    )

    def _readout_path(self) -> set[str]:
        """The nodes from which the output is reached without passing a spiking layer."""
        path = {self.graph.output}
        for node in reversed(self.graph.nodes):
            if node.name in path and not isinstance(node.op, SPIKING_OPS):
                path.update(node.inputs)
        return path

    @torch.no_grad()
    def run(
        self,
        x: Tensor,
        y: Tensor,
        timesteps: int,
        record_spikes: bool = True,
        batch_index: int = 0,
        record_rates: bool = False,
    ) -> BatchResult:
        """Simulate ``timesteps`` steps on batch ``x`` with labels ``y``.

        Args:
            x: Input batch ``[B, *input_shape]``.
            y: Labels ``[B]``.
            timesteps: T.
            record_spikes: Count spikes per IF layer and step (and synaptic operations
                per source and step, for the sources with a fan-out map).
            record_rates: Also sum each neuron's spikes over all steps.
            batch_index: Position of the batch in its dataset; Poisson input
                for it is drawn from a generator seeded with (seed, batch_index),
                so results do not depend on which batches ran before.
        """
        if timesteps < 1:
            raise ConfigError(f"timesteps must be a positive integer, got {timesteps}")
        check_input(self.graph, x)
        x = x.to(self.device, torch.float32)
        y = y.to(self.device)
        self.generator.manual_seed(hash((self.seed, batch_index)) & 0xFFFF_FFFF_FFFF)
        state = self.start_batch(x, timesteps, record_spikes, record_rates)
        tally = state.tally
        ranks = torch.zeros((1, x.shape[0], 1), dtype=torch.int64, device=self.device)
        for start in range(0, timesteps, self.chunk):
            k = min(self.chunk, timesteps - start)
            scores = self.scores(state, k, start)
            ranks = scores.topk(min(5, scores.shape[-1]), dim=-1).indices
            hits = ranks == y.view(1, -1, 1)
            tally.correct1[start : start + k] += hits[..., 0].sum(1)
            tally.correct5[start : start + k] += hits.any(-1).sum(1)
        return BatchResult(
            tally.correct1,
            tally.correct5,
            tally.spikes,
            state.readout.potential,
            tally.totals,
            tally.sops,
            tally.events,
            ranks[-1, :, 0],
        )

    def scores(self, state: BatchState, k: int, start: int) -> Tensor:
        """Advance the batch by ``k`` steps; the readout's class scores ``[k, B, C]``."""
        values = self.advance(state, k, start)
        current = self._block(self.graph.output, values, state.static, k)
        return state.readout.scan(current.reshape(k, state.x.shape[0], -1))

    def start_batch(self, x: Tensor, timesteps: int, spikes: bool, rates: bool) -> BatchState:
        """The state of a batch at t = 0: membranes at V(0), gates and readout empty."""
        batch = x.shape[0]
        neurons = {
            n.name: IFState.initial(n.op, (batch, *n.meta["shape"]), self.device)  # type: ignore[arg-type]
            for n in self.neurons
        }
        gates = {
            n.name: MaxPoolGate(
                n.op,  # type: ignore[arg-type]
                (batch, *self.graph.node(n.inputs[0]).meta["shape"]),
                self.device,
            )
            for n in self.gated
        }
        out = self.graph.output_node
        readout = ReadoutScan(
            self.readout,
            batch,
            int(out.meta["shape"][-1]),
            float(out.meta.get("readout_scale", 1.0)),
            self.generator,
            self.device,
        )
        layers = [n.name for n in self.neurons]
        counted = list(self.fan_out) if spikes else []
        tally = Tally.zeros(
            timesteps,
            layers if spikes else [],
            [name for name in counted if name not in layers],
            counted,
            {name: neurons[name].v for name in layers} if rates else {},
            self.device,
        )
        return BatchState(x, self._static_values(x), neurons, gates, readout, tally)

    def _static_values(self, x: Tensor) -> dict[str, Tensor]:
        """Values of the time-invariant nodes for input ``x`` (computed once per batch)."""
        static: dict[str, Tensor] = {}
        for node in self.graph.nodes:
            if node.name in self.static:
                if isinstance(node.op, Input):
                    static[node.name] = x
                else:
                    static[node.name] = node.op.apply(*(static[n] for n in node.inputs))
        return static

    @staticmethod
    def _block(name: str, values: dict[str, Tensor], static: dict[str, Tensor], k: int) -> Tensor:
        """Node ``name``'s value over a chunk of ``k`` steps, as a ``[k·B, ...]`` block."""
        if name in values:
            return values[name]
        s = static[name]
        return s.unsqueeze(0).expand(k, *s.shape).reshape(k * s.shape[0], *s.shape[1:])

    def advance(self, state: BatchState, k: int, start: int) -> dict[str, Tensor]:
        """Advance every layer by the ``k`` steps from ``start``; count each IF layer's
        spikes and each spike source's events and synaptic operations into the tally.
        Returns the blocks still live (the output's)."""
        values: dict[str, Tensor] = {}
        tally = state.tally
        for i, node in enumerate(self.graph.nodes):
            if node.name in self.static:
                continue
            op = node.op
            if isinstance(op, Input):
                values[node.name] = self._poisson(state.x, k)
                self._count(tally, node.name, values[node.name].abs(), k, start)
            elif isinstance(op, (IFNeuron, BinaryNeuron)):
                values[node.name] = self._spiking(state, node, values, k, start)
            elif node.name in state.gates:
                spikes_in = values[node.inputs[0]]
                pooled = state.gates[node.name].scan(spikes_in.reshape(k, -1, *spikes_in.shape[1:]))
                values[node.name] = pooled.reshape(-1, *pooled.shape[2:])
                self._count(tally, node.name, pooled.abs(), k, start)
            elif node.name in self.reduced:
                # Spikes and their averages are float32 everywhere else: convert at the
                # layer's boundaries only (elementwise work in bf16 is slow on CPUs).
                x = self._block(node.inputs[0], values, state.static, k)
                reduced = self.reduced[node.name]
                values[node.name] = reduced.apply(x.to(reduced.weight.dtype)).float()
            else:
                values[node.name] = op.apply(
                    *(self._block(n, values, state.static, k) for n in node.inputs)
                )
            for name in node.inputs:
                if self.last_use[name] == i:
                    values.pop(name, None)
        return values

    def _spiking(
        self, state: BatchState, node: Node, values: dict[str, Tensor], k: int, start: int
    ) -> Tensor:
        """Scan one spiking layer over the chunk; returns its spikes as a ``[k·B, ...]`` block."""
        neurons = state.neurons[node.name]
        params = self.params[node.name]
        src = node.inputs[0]
        constant = src not in values
        v = neurons.v
        z = state.static[src] if constant else values[src].reshape(k, *v.shape)
        spikes = if_scan(neurons, params, z, k, constant=constant, start=start)
        if node.name in state.tally.spikes:
            self._count(
                state.tally, node.name, spikes.abs() if params.bipolar else spikes, k, start
            )
        if node.name in state.tally.totals:
            state.tally.totals[node.name] += spikes.sum(0)
        return spikes.reshape(k * v.shape[0], *v.shape[1:])

    def _count(self, tally: Tally, name: str, events: Tensor, k: int, start: int) -> None:
        """Add ``events`` (``k`` steps of one source, batch-major within a step) to the
        step's event count and, weighted by each neuron's fan-out, to its SOP count.

        The events are first summed over the batch (exact in float32: at most B per
        neuron); the weighting is then one small float64 matrix-vector product per chunk.
        """
        counts = tally.spikes.get(name, tally.events.get(name))
        if counts is None:
            return
        window = counts[start : start + k]
        if name not in tally.sops:
            window += events.reshape(k, -1).sum(1)
            return
        fan_out = self.fan_out[name]
        per_neuron = events.reshape(k, -1, fan_out.numel()).sum(1)
        window += per_neuron.sum(1)
        tally.sops[name][start : start + k] += per_neuron.double() @ fan_out

    def _poisson(self, x: Tensor, steps: int) -> Tensor:
        """Poisson-encoded input spikes for ``steps`` steps: ±1 with probability min(|x|, 1)."""
        p = x.abs().clamp_(max=1.0)
        u = torch.rand((steps, *x.shape), generator=self.generator, device=self.device)
        spikes = (u < p).to(x.dtype).mul_(torch.sign(x))
        return spikes.reshape(steps * x.shape[0], *x.shape[1:])
