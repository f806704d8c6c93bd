"""Evaluation results and ``results.json``."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snnconv import __version__
from snnconv.exporters.saved import atomic_write_bytes

#: Time steps shown in summary tables.
TABLE_STEPS: tuple[int, ...] = (8, 16, 32, 64, 128, 256)


@dataclass
class EvaluationResult:
    """ANN and per-step SNN accuracy of one evaluation run.

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
        calibration: {dataset, num_samples, seed} of the normalization data.
        layers: Per spiking layer: name, op, neurons, scale, mean_rate.
        warnings: Anything the user should know (e.g. calibration fallback).
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
    layers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def top1_stderr(self) -> float:
        """Standard error of the ANN top-1 accuracy, sqrt(p(1 − p)/n)."""
        p, n = self.ann_top1, max(self.num_samples, 1)
        return math.sqrt(p * (1 - p) / n)

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` document (stable keys)."""
        return {
            "version": __version__,
            "model": self.model,
            "dataset": self.dataset,
            "num_samples": self.num_samples,
            "config": self.config,
            "calibration": self.calibration,
            "ann": {"top1": self.ann_top1, "top5": self.ann_top5, "top1_stderr": self.top1_stderr},
            "snn": {"timesteps": self.timesteps, "top1": self.snn_top1, "top5": self.snn_top5},
            "timing": {
                "seconds": self.seconds,
                "device": self.device,
                "samples_per_second": self.num_samples / self.seconds if self.seconds else 0.0,
            },
            "layers": self.layers,
            "warnings": self.warnings,
        }

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write ``results.json`` atomically (temporary file, then rename)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, json.dumps(self.to_dict(), indent=1).encode())
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
