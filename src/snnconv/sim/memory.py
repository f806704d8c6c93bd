"""What an evaluation will hold in memory, estimated before it starts.

Two parts: what grows with the number of time steps T (the per-step
accuracies, spike and operation counts per spike source, as tensors, Python
lists and ``results.json`` text: a few hundred bytes per step), and the
simulator's working set for one batch (each node's values for a chunk of K
steps, the membrane state, the ANN pass's activations), which does not grow
with T. :func:`check_memory` refuses a run whose estimate exceeds the memory
available, naming the figures and the options that reduce them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from snnconv.errors import ConfigError
from snnconv.ir import SPIKING_OPS, Graph

__all__ = [
    "MemoryEstimate",
    "available_memory",
    "check_memory",
    "estimate_memory",
    "largest_batch",
    "probe_batch_size",
]

#: Bytes per time step and per-step series: a float64 accumulator and a batch's copy (16),
#: a Python float in a list (32), its text in results.json or its bytes in the arrays (24).
_BYTES_PER_SERIES_STEP = 16 + 32 + 24

#: Share of the available memory a run may plan to use.
_USABLE = 0.9


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory of an evaluation, in bytes.

    Attributes:
        per_step: Bytes per time step (the per-step series).
        timesteps: T.
        batch: Bytes of the simulator's working set for one batch.
    """

    per_step: int
    timesteps: int
    batch: int

    @property
    def series(self) -> int:
        """Bytes of the per-step series over T steps."""
        return self.per_step * self.timesteps

    @property
    def total(self) -> int:
        """Both parts."""
        return self.series + self.batch


def estimate_memory(
    graph: Graph, timesteps: int, batch_size: int, chunk: int, sources: int
) -> MemoryEstimate:
    """Estimate an evaluation's memory.

    Args:
        graph: The spiking graph (with shapes).
        timesteps: T.
        batch_size: Samples per batch.
        chunk: Time steps per layer call (K).
        sources: Spike sources whose spikes and operations are counted per step.
    """
    series = 2 + 2 * sources + 2  # top-1, top-5, spikes and SOPs per source, cumulative SOPs
    values = 0
    state = 0
    for node in graph.nodes:
        numel = math.prod(int(d) for d in node.meta.get("shape", ()))
        values += numel
        if isinstance(node.op, SPIKING_OPS):
            state += 3 * numel  # membrane, spike count, rates for the diagnostics
    per_sample = 4 * (values * (chunk + 1) + state)
    return MemoryEstimate(series * _BYTES_PER_SERIES_STEP, timesteps, per_sample * batch_size)


def available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux ``MemAvailable``), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(value: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value / 1e3:,.0f} kB"


def check_memory(estimate: MemoryEstimate, available: int | None = None) -> None:
    """Refuse a run that would not fit in memory.

    Args:
        estimate: From :func:`estimate_memory`.
        available: Bytes available (default: :func:`available_memory`).

    Raises:
        ConfigError: The estimate exceeds 90 % of the memory available.
    """
    available = available_memory() if available is None else available
    if available is None or estimate.total <= _USABLE * available:
        return
    raise ConfigError(
        f"this evaluation would hold about {_size(estimate.total)} in memory, more than the "
        f"{_size(available)} available: {_size(estimate.series)} for the results of its "
        f"{estimate.timesteps:,} time steps (about {estimate.per_step} bytes per step, which "
        f"grow with --timesteps) and {_size(estimate.batch)} to simulate one batch. Lower "
        "--timesteps, or --batch-size and --chunk for the simulation's part."
    )


#: The largest batch ``--batch-size auto`` considers.
MAX_AUTO_BATCH = 4096


def largest_batch(
    graph: Graph,
    timesteps: int,
    chunk: int,
    sources: int,
    available: int,
    limit: int | None = None,
    share: float = 0.5,
) -> int:
    """``--batch-size auto`` from the estimate: the largest power of two (at most
    ``limit`` samples, and :data:`MAX_AUTO_BATCH`) whose estimated footprint takes at
    most ``share`` of the ``available`` bytes (the rest is left for the data, the model
    and the allocator); 1 when even that does not fit (then :func:`check_memory` says so).
    """
    cap = min(MAX_AUTO_BATCH, limit or MAX_AUTO_BATCH)
    batch = 1
    while batch * 2 <= cap:
        if estimate_memory(graph, timesteps, batch * 2, chunk, sources).total > share * available:
            break
        batch *= 2
    fits = estimate_memory(graph, timesteps, cap, chunk, sources).total <= share * available
    if batch < cap < batch * 2 and fits:  # the data's own size, when it fits
        batch = cap
    return batch


def probe_batch_size(
    trial: Callable[[int], object], start: int, log: Callable[[str], object] = print
) -> int:
    """The largest batch, from ``start`` down by halving, whose ``trial`` run does not run
    out of memory (CUDA: the estimate cannot see the allocator's fragmentation and the
    libraries' workspaces, so the first batch is tried for real).

    Raises:
        ConfigError: Even one sample runs out of memory.
    """
    import torch

    batch = max(1, start)
    while True:
        try:
            trial(batch)
            return batch
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if batch == 1:
                raise ConfigError(
                    "one sample runs out of device memory: lower --chunk, or run on the CPU "
                    "(--device cpu)"
                ) from None
            log(f"out of memory at batch size {batch:,}: trying {batch // 2:,}")
            batch //= 2
