"""``target_timesteps``: choose and tune the low-latency techniques for accuracy at T steps.

The techniques (each also a :class:`~snnconv.config.Config` option of its own):

- **V(0) = θ/2** (``v_init = 0.5``): a constant input a then gives ⌊T·a + ½⌋
  spikes in T steps, the rounded rather than the floored quantization.
- **Negative spikes** with h = 0 (``negative_spikes``, ``negative_threshold = 0``):
  every count stays the exact T-step quantized ReLU of the layer's integrated
  input, so the spiking network computes the quantized ANN step for step, its
  transient spikes taken back.
- **Threshold search** (:mod:`~snnconv.passes.threshold_search`): each
  layer's λ minimizes its T-step quantization error.
- **Bias or potential calibration**
  (:mod:`~snnconv.passes.current_calibration`): each layer's mean rate error at
  T steps, corrected layer by layer.

:func:`tune` converts the network with each combination in :data:`CANDIDATES`
that the options the user fixed allow, fits the calibrations on one half of
the calibration samples, and keeps the combination whose SNN agrees best, at
step T, with the ANN's prediction on the other half (ties: the one with fewer
events). Labels are not used: the calibration data may be unlabelled, and the
evaluation data is never seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from snnconv.config import Config
from snnconv.errors import ConfigError
from snnconv.ir import Graph
from snnconv.passes.calibrate import iterate_batches
from snnconv.passes.current_calibration import CalibrateCurrents, CurrentCalibration
from snnconv.passes.threshold_search import SearchThresholds
from snnconv.sim.reference import run_graph

__all__ = ["CANDIDATES", "TECHNIQUES", "Candidate", "TuneLowLatency", "candidates", "tune"]

#: The options a low-latency choice sets.
TECHNIQUES: tuple[str, ...] = (
    "v_init",
    "negative_spikes",
    "negative_threshold",
    "threshold_search",
    "bias_calibration",
    "potential_calibration",
)

_ROUNDED = {"v_init": 0.5}
_SIGNED = {"negative_spikes": True, "negative_threshold": 0.0}

#: Combinations tried, by name.
CANDIDATES: dict[str, dict[str, Any]] = {
    "percentile": {**_ROUNDED},
    "percentile + negative spikes": {**_ROUNDED, **_SIGNED},
    "percentile + negative spikes + bias calibration": {
        **_ROUNDED,
        **_SIGNED,
        "bias_calibration": True,
    },
    "threshold search + negative spikes": {**_ROUNDED, **_SIGNED, "threshold_search": True},
    "threshold search + negative spikes + bias calibration": {
        **_ROUNDED,
        **_SIGNED,
        "threshold_search": True,
        "bias_calibration": True,
    },
    "threshold search + negative spikes + potential calibration": {
        **_ROUNDED,
        **_SIGNED,
        "threshold_search": True,
        "potential_calibration": True,
    },
}

#: Calibration samples used by the tuner (half to fit, half to choose).
TUNING_SAMPLES = 1000


@dataclass
class Candidate:
    """One combination tried: its options, and how its SNN did on the held-out half."""

    name: str
    config: Config
    agreement: float = 0.0
    events_per_sample: float = 0.0
    graph: Graph | None = None

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "agreement": self.agreement,
            "events_per_sample": self.events_per_sample,
        }


def _resolved(config: Config, settings: dict[str, Any]) -> Config | None:
    """``config`` with ``settings`` where the user did not fix the option, the techniques
    left open switched off; None if that is not a valid configuration."""
    fixed = set(config.keep)
    changes = {k: v for k, v in settings.items() if k not in fixed}
    for name in ("threshold_search", "bias_calibration", "potential_calibration"):
        if getattr(config, name) is not None:
            changes.pop(name, None)  # given explicitly
        elif name not in changes:
            changes[name] = False
    if config.negative_threshold is not None:
        changes.pop("negative_threshold", None)
    try:
        return config.replace(**changes)
    except ValueError:  # e.g. negative spikes with a fixed reset to zero
        return None


def label(config: Config) -> str:
    """A combination's name: "percentile" or "threshold search", then the techniques on,
    and V(0) where it is not θ/2."""
    parts = ["threshold search" if config.threshold_search else "percentile"]
    if config.negative_spikes:
        parts.append("negative spikes")
    if config.bias_calibration:
        parts.append("bias calibration")
    if config.potential_calibration:
        parts.append("potential calibration")
    if config.v_init != 0.5:
        parts.append(f"V(0) = {config.v_init:g}θ")
    return " + ".join(parts)


def candidates(config: Config) -> dict[str, Config]:
    """The combinations of :data:`CANDIDATES` that the options fixed in ``config`` allow,
    each once, by :func:`label` (one when the options fix every technique)."""
    found: dict[str, Config] = {}
    for settings in CANDIDATES.values():
        resolved = _resolved(config, settings)
        if resolved is not None and resolved not in found.values():
            found[label(resolved)] = resolved
    if not found:  # pragma: no cover - the plain percentile candidate is always valid
        raise ConfigError(
            "the options given leave no low-latency combination to try with "
            f"--target-timesteps {config.target_timesteps}; fix fewer of them"
        )
    return found


def _inputs(calibration: object, batch_size: int, limit: int) -> Tensor:
    parts, count = [], 0
    for batch in iterate_batches(calibration, batch_size):
        parts.append(batch.float())
        count += batch.shape[0]
        if count >= limit:
            break
    return torch.cat(parts)[:limit]


@dataclass
class _Tuning:
    """The shared part of every candidate: the graph with its statistics, the split."""

    graph: Graph
    fit: Tensor
    held_out: Tensor
    ann_prediction: Tensor
    timesteps: int
    device: Any
    searched: Graph | None = None

    def convert(self, config: Config, finish: Callable[[Graph, Config], Graph]) -> Graph:
        graph = self.graph
        if config.threshold_search:
            if self.searched is None:
                self.searched = SearchThresholds(self.fit, self.timesteps, device=self.device)(
                    graph
                )
            graph = self.searched
        graph = finish(graph, config)
        mode = _calibration_mode(config)
        if mode is not None:
            graph = CalibrateCurrents(
                self.fit, self.timesteps, mode, samples=len(self.fit), device=self.device
            )(graph)
        return graph

    @torch.no_grad()
    def score(self, graph: Graph) -> tuple[float, float]:
        """(agreement with the ANN at step T, events per sample) on the held-out half."""
        from snnconv.sim.simulator import Simulator

        sim = Simulator(graph, device=self.device)
        res = sim.run(self.held_out, self.ann_prediction, self.timesteps, record_spikes=True)
        n = self.held_out.shape[0]
        events = sum(float(c.sum()) for c in res.spikes.values())
        return float(res.correct_top1[-1]) / n, events / n


def _calibration_mode(config: Config) -> CurrentCalibration | None:
    if config.bias_calibration:
        return CurrentCalibration.BIAS
    if config.potential_calibration:
        return CurrentCalibration.POTENTIAL
    return None


def tune(
    graph: Graph,
    calibration: object,
    config: Config,
    finish: Callable[[Graph, Config], Graph],
    *,
    device: Any = "cpu",
) -> tuple[Graph, Config, dict[str, Any]]:
    """Convert ``graph`` (statistics collected) with every candidate; keep the best.

    Args:
        graph: The ANN graph after the structural passes and the statistics.
        calibration: The calibration inputs.
        config: The options, with ``target_timesteps`` set.
        finish: Normalization and the spiking layers (the flow's next passes).
        device: Where the tuning runs.

    Returns:
        The chosen spiking graph, its options, and the record of the choice.
    """
    start = time.perf_counter()
    timesteps = int(config.target_timesteps or 1)
    x = _inputs(calibration, config.batch_size, TUNING_SAMPLES)
    fit, held_out = (x[0::2], x[1::2]) if x.shape[0] > 1 else (x, x)
    out, _ = run_graph(graph.to(device), held_out.to(device))
    shared = _Tuning(graph, fit, held_out, out.argmax(-1).cpu(), timesteps, device)
    tried: list[Candidate] = []
    for name, resolved in candidates(config).items():
        candidate = Candidate(name, resolved)
        candidate.graph = shared.convert(resolved, finish)
        candidate.agreement, candidate.events_per_sample = shared.score(candidate.graph)
        tried.append(candidate)
    best = max(tried, key=lambda c: (round(c.agreement, 3), -c.events_per_sample))
    record = {
        "target_timesteps": timesteps,
        "chosen": best.name,
        "techniques": {name: _plain(getattr(best.config, name)) for name in TECHNIQUES},
        "candidates": [c.record() for c in tried],
        "calibration_samples": {"fit": int(fit.shape[0]), "choose": int(held_out.shape[0])},
        "seconds": time.perf_counter() - start,
    }
    if best.graph is None:  # pragma: no cover - every candidate tried has its graph
        raise RuntimeError("no low-latency candidate could be converted")
    return best.graph, best.config, record


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


@dataclass(frozen=True)
class TuneLowLatency:
    """The flow's step for ``target_timesteps`` (listed by ``--dry-run``): the candidates'
    conversions, see :func:`tune`."""

    timesteps: int
    names: tuple[str, ...] = tuple(CANDIDATES)

    @classmethod
    def of(cls, config: Config) -> TuneLowLatency:
        """The step for ``config``: its target and the candidates its options allow."""
        return cls(int(config.target_timesteps or 1), tuple(candidates(config)))

    def describe(self) -> str:
        return f"tune_low_latency(timesteps={self.timesteps}, candidates: {' | '.join(self.names)})"

    def __call__(self, graph: Graph) -> Graph:  # pragma: no cover - run through tune()
        raise TypeError("TuneLowLatency runs through snnconv.passes.low_latency.tune")
