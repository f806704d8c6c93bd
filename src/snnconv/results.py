"""Evaluation results: ``results.json`` and the arrays saved beside it.

``results.json`` holds the summary (accuracy per step, operation counts,
energy, milestones, per-layer diagnostics, timing); ``arrays.safetensors``
holds what plots need at full resolution (spikes and synaptic operations per
step and layer, per-sample predictions, rate-vs-activation samples,
calibration histograms). ``snnconv report DIR`` rebuilds ``report.html`` from
the two.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from snnconv.errors import SnnconvError
from snnconv.metrics.tradeoff import EnergyModel, milestones
from snnconv.outputs import atomic_write, atomic_write_bytes
from snnconv.version import __version__

#: Time steps shown in summary tables.
TABLE_STEPS: tuple[int, ...] = (8, 16, 32, 64, 128, 256)

RESULTS_FILE = "results.json"
ARRAYS_FILE = "arrays.safetensors"


class ResultsError(SnnconvError):
    """A results directory is missing files or holds unreadable ones."""


@dataclass
class EvaluationResult:
    """ANN and per-step SNN accuracy, operations and diagnostics of one evaluation run.

    Attributes:
        ann_top1, ann_top5: Accuracy (fraction) of the ANN (the normalized
            network run as an ANN, equal to the original model).
        snn_top1, snn_top5: SNN accuracy after step 1..T (``snn_top1[t-1]``).
        num_samples: Samples evaluated.
        timesteps: T.
        seconds: Wall time of the evaluation.
        device: Where it ran.
        config: Every option used.
        model, dataset: Names, for the record.
        calibration: {dataset, split, num_samples, seed, source} of the
            normalization data.
        early_exit: The simulation with per-sample early exit (criterion, mean
            steps, steps histogram, top-1, top-5, operations per sample, seconds),
            or None.
        ann_original: For a model written by ``snnconv finetune``: the network before
            fine-tuning (its top-1 and top-5 on the same data, the fine-tuning's levels,
            epochs and validation top-1 before and after), or None.
        low_latency: What ``target_timesteps`` chose (each technique and its
            parameters, the candidates tried, the calibration time), or None.
        model_weights: The weights file of a ``MODULE:FACTORY`` model,
            ``"random"`` when it ran untrained on purpose (``--random-weights``),
            None where the model file holds them.
        data_source: Where the evaluation data was read from: ``"embedded"``
            (the sample shipped in the package), a directory or file, or None
            where unknown (data the caller built).
        layers: Per spiking layer: name, op, neurons, scale (λ), mean_rate,
            synaptic operations per sample, mean fan-out; with diagnostics also
            silent and saturated fractions and the rate-activation correlation.
        warnings: Anything the user should know (e.g. calibration fallback).
        ann_macs: ``{layer: MACs per sample}`` of the ANN's conv and linear layers.
        ann_other_ops: ``{layer: other operations per sample}`` (pooling, adds).
        input_macs: ``{layer: MACs per sample}`` of the one-off analog input pass.
        sops: Cumulative synaptic operations per sample after step 1..T
            (``sops[t-1]``; input MACs not included).
        sops_per_source: ``{spike source: [T] SOPs per sample at each step}``.
        spikes_per_step: ``{spike source: [T] events per sample at each step}``.
        neuron_updates: Neuron updates per sample over T steps, by kind
            (membrane, bias, readout).
        arrays: Tensors saved in ``arrays.safetensors`` (predictions, labels,
            rate/activation samples, calibration histograms).
    """

    ann_top1: float
    ann_top5: float
    snn_top1: list[float]
    snn_top5: list[float]
    num_samples: int
    timesteps: int
    seconds: float
    device: str
    config: dict[str, Any]
    model: str = ""
    dataset: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)
    data_source: str | None = None
    model_weights: str | None = None
    low_latency: dict[str, Any] | None = None
    ann_original: dict[str, Any] | None = None
    early_exit: dict[str, Any] | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ann_macs: dict[str, float] = field(default_factory=dict)
    ann_other_ops: dict[str, float] = field(default_factory=dict)
    input_macs: dict[str, float] = field(default_factory=dict)
    sops: list[float] = field(default_factory=list)
    sops_per_source: dict[str, list[float]] = field(default_factory=dict)
    spikes_per_step: dict[str, list[float]] = field(default_factory=dict)
    neuron_updates: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, Tensor] = field(default_factory=dict)

    @property
    def top1_stderr(self) -> float:
        """Standard error of the ANN top-1 accuracy, sqrt(p(1 − p)/n)."""
        p, n = self.ann_top1, max(self.num_samples, 1)
        return math.sqrt(p * (1 - p) / n)

    @property
    def ann_macs_per_sample(self) -> float:
        """The ANN's MACs per sample."""
        return float(sum(self.ann_macs.values()))

    @property
    def input_macs_per_sample(self) -> float:
        """MACs per sample of the SNN's one-off analog input pass."""
        return float(sum(self.input_macs.values()))

    @property
    def energy_model(self) -> EnergyModel:
        """The per-operation energies of the configuration."""
        return EnergyModel(
            ac_pj=float(self.config.get("energy_ac_pj", EnergyModel.ac_pj)),
            mac_pj=float(self.config.get("energy_mac_pj", EnergyModel.mac_pj)),
        )

    def energy(self) -> dict[str, Any]:
        """Energy estimate per sample (pJ) of the ANN and of the SNN run for T steps."""
        totals = {name: float(sum(s)) for name, s in self.sops_per_source.items()}
        return self.energy_model.estimate(self.ann_macs, totals, self.input_macs)

    def milestones(self) -> dict[str, Any] | None:
        """Where the SNN meets the ANN on the error-vs-operations curve (None without counts)."""
        if not self.sops or not self.ann_macs:
            return None
        return milestones(
            self.ann_top1,
            self.ann_macs_per_sample,
            self.snn_top1,
            self.sops,
            self.input_macs_per_sample,
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` document (stable keys)."""
        ann: dict[str, Any] = {
            "top1": self.ann_top1,
            "top5": self.ann_top5,
            "top1_stderr": self.top1_stderr,
        }
        snn: dict[str, Any] = {
            "timesteps": self.timesteps,
            "top1": self.snn_top1,
            "top5": self.snn_top5,
        }
        document: dict[str, Any] = {
            "version": __version__,
            "model": self.model,
            "model_weights": self.model_weights,
            "dataset": self.dataset,
            "data_source": self.data_source,
            "num_samples": self.num_samples,
            "config": self.config,
            "calibration": self.calibration,
            "conversion": {"low_latency": self.low_latency},
            "ann": ann,
            "snn": snn,
            "timing": {
                "seconds": self.seconds,
                "device": self.device,
                "samples_per_second": self.num_samples / self.seconds if self.seconds else 0.0,
            },
            "layers": self.layers,
            "warnings": self.warnings,
            "early_exit": self.early_exit,
        }
        if self.ann_original is not None:
            document["ann_original"] = self.ann_original
        if self.ann_macs:
            ann.update(
                macs_per_sample=self.ann_macs_per_sample,
                other_ops_per_sample=float(sum(self.ann_other_ops.values())),
                macs_per_layer=self.ann_macs,
                other_ops_per_layer=self.ann_other_ops,
            )
        if self.sops:
            snn.update(
                sops_per_sample=self.sops,
                input_macs_per_sample=self.input_macs_per_sample,
                input_macs_per_layer=self.input_macs,
                sops_per_source={n: float(sum(s)) for n, s in self.sops_per_source.items()},
                neuron_updates_per_sample=self.neuron_updates,
            )
            document["energy"] = self.energy()
            document["milestones"] = self.milestones()
        return document

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write ``results.json`` atomically (temporary file, then rename)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        document = json.dumps(_finite(self.to_dict()), indent=1, allow_nan=False)
        atomic_write_bytes(out, document.encode())
        return out

    def array_dict(self) -> dict[str, Tensor]:
        """Every tensor of ``arrays.safetensors``: ``spikes/<source>`` and ``sops/<source>``
        ([T] per sample at each step) and :attr:`arrays`."""
        import torch

        tensors: dict[str, Tensor] = {}
        for name, values in self.spikes_per_step.items():
            tensors[f"spikes/{name}"] = torch.tensor(values, dtype=torch.float64)
        for name, values in self.sops_per_source.items():
            tensors[f"sops/{name}"] = torch.tensor(values, dtype=torch.float64)
        tensors.update(self.arrays)
        return tensors

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``results.json`` and ``arrays.safetensors`` into ``directory`` (atomically;
        the arrays first, so a results.json always has its arrays beside it)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_arrays(out / ARRAYS_FILE, self.array_dict())
        self.to_json(out / RESULTS_FILE)
        return out

    def table(self, steps: Sequence[int] = TABLE_STEPS) -> str:
        """A text table of ANN vs SNN top-1 at the given steps (those ≤ T)."""
        rows = [f"{'T':>6}  {'ANN top-1':>9}  {'SNN top-1':>9}  {'gap (pts)':>9}"]
        for t in [s for s in steps if s <= self.timesteps] or [self.timesteps]:
            snn = self.snn_top1[t - 1]
            rows.append(
                f"{t:>6}  {100 * self.ann_top1:>8.2f}%  {100 * snn:>8.2f}%  "
                f"{100 * (self.ann_top1 - snn):>9.2f}"
            )
        return "\n".join(rows)

    def operations_summary(self) -> str:
        """A few lines on operations, energy and milestones (empty without counts)."""
        marks = self.milestones()
        if marks is None:
            return ""
        lines = [
            f"ANN: {self.ann_macs_per_sample:,.0f} MACs per sample; SNN: "
            f"{self.input_macs_per_sample:,.0f} input MACs + {self.sops[-1]:,.0f} SOPs per "
            f"sample over T={self.timesteps}"
        ]
        point = marks["within"].get("1")
        if point is not None:
            lines.append(
                f"within 1 point of the ANN at t={point['step']}: {point['ops']:,.0f} ops "
                f"({point['ops_ratio']:.2f}× the ANN's MACs)"
            )
        else:
            lines.append("the SNN did not come within 1 point of the ANN")
        energy = self.energy()
        lines.append(
            f"energy per sample: ANN {energy['ann_pj_per_sample'] / 1e6:.3f} µJ, SNN "
            f"{energy['snn_pj_per_sample'] / 1e6:.3f} µJ ({energy['e_ac_pj']} pJ/SOP, "
            f"{energy['e_mac_pj']} pJ/MAC)"
        )
        return "\n".join(lines)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (``null`` in JSON), so
    that strict JSON parsers read ``results.json``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def save_arrays(path: str | os.PathLike[str], tensors: dict[str, Tensor]) -> Path:
    """Write ``tensors`` to a safetensors file atomically (temporary file, then rename)."""
    from safetensors.torch import save_file

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return atomic_write(out, lambda tmp: save_file(arrays, tmp))


def load_results(directory: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read ``results.json`` and (if present) ``arrays.safetensors`` from a run directory.

    Raises:
        ResultsError: ``results.json`` is missing or unreadable, or the arrays are corrupt.
    """
    root = Path(directory)
    path = root / RESULTS_FILE
    if not path.is_file():
        raise ResultsError(
            f"{path} is missing: {root} is not the output directory of a run. Run "
            f"`snnconv run MODEL --dataset DATASET --timesteps T --out {root}` (or "
            "`snnconv evaluate`) first, or pass the directory that holds results.json."
        )
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(
            f"{path} is not valid JSON ({error}); run the evaluation again"
        ) from error
    if not isinstance(document, dict) or "snn" not in document or "ann" not in document:
        raise ResultsError(f"{path} is not an snnconv results file (no 'ann'/'snn' sections)")
    arrays: dict[str, Tensor] = {}
    array_path = root / ARRAYS_FILE
    if array_path.is_file():
        from safetensors.torch import load_file

        try:
            arrays = load_file(array_path)
        except Exception as error:
            raise ResultsError(
                f"cannot read {array_path} ({error}); run the evaluation again"
            ) from error
    return document, arrays


__all__ = [
    "ARRAYS_FILE",
    "RESULTS_FILE",
    "TABLE_STEPS",
    "EvaluationResult",
    "ResultsError",
    "load_results",
    "save_arrays",
]
