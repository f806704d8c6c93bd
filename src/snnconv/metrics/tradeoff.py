"""What the conversion costs and gains: error against operations, and an energy estimate.

The SNN's operations after t steps are the synaptic operations of steps 1..t
plus the one-off MACs of the analog input pass; the ANN's are its MACs. Both
per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from snnconv.config import Config

#: Gaps to the ANN (in percentage points of error) that milestones look for.
WITHIN_POINTS: tuple[float, ...] = (1.0, 0.5, 0.1)
#: Budgets, as multiples of the ANN's MACs, at which milestones report the best error.
ANN_OPS_FRACTIONS: tuple[float, ...] = (0.5, 1.0)


#: The options' defaults (the energies are ``Config.energy_ac_pj`` and ``energy_mac_pj``).
_DEFAULTS = Config()


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation, in picojoules.

    The defaults are the 45 nm CMOS figures of Horowitz (ISSCC 2014), as used
    by the SNN literature: a 32-bit floating-point add (one synaptic
    accumulate) costs 0.9 pJ, a 32-bit floating-point multiply-accumulate
    4.6 pJ (3.7 pJ multiply + 0.9 pJ add). Memory access, which often
    dominates on real hardware, is not modelled.

    Attributes:
        ac_pj: Energy of one accumulate (one SOP).
        mac_pj: Energy of one multiply-accumulate.
    """

    ac_pj: float = _DEFAULTS.energy_ac_pj
    mac_pj: float = _DEFAULTS.energy_mac_pj
    reference: str = "45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014)"

    def estimate(
        self,
        ann_macs: dict[str, float],
        snn_sops: dict[str, float],
        input_macs: dict[str, float],
    ) -> dict[str, Any]:
        """Energy per sample of the ANN (MACs × E_MAC) and of the SNN (SOPs × E_AC +
        input MACs × E_MAC), per layer and in total, in pJ.

        Args:
            ann_macs: ``{layer: MACs per sample}`` of the ANN.
            snn_sops: ``{spike source: SOPs per sample over the whole run}``.
            input_macs: ``{layer: MACs per sample}`` of the one-off analog input pass.
        """
        ann_layers = {name: m * self.mac_pj for name, m in ann_macs.items()}
        snn_layers = {name: s * self.ac_pj for name, s in snn_sops.items()}
        input_layers = {name: m * self.mac_pj for name, m in input_macs.items()}
        ann_total = sum(ann_layers.values())
        snn_total = sum(snn_layers.values()) + sum(input_layers.values())
        return {
            "e_ac_pj": self.ac_pj,
            "e_mac_pj": self.mac_pj,
            "reference": self.reference,
            "ann_pj_per_sample": ann_total,
            "snn_pj_per_sample": snn_total,
            "snn_to_ann": snn_total / ann_total if ann_total else None,
            "ann_pj_per_layer": ann_layers,
            "snn_pj_per_layer": snn_layers,
            "snn_input_pj_per_layer": input_layers,
        }


def error_vs_operations(
    snn_top1: Sequence[float], sops_cumulative: Sequence[float], input_macs: float
) -> tuple[list[float], list[float]]:
    """The SNN's curve: (operations per sample after step t, error after step t), t = 1..T."""
    ops = [input_macs + s for s in sops_cumulative]
    errors = [1.0 - a for a in snn_top1]
    return ops, errors


def milestones(
    ann_top1: float,
    ann_macs: float,
    snn_top1: Sequence[float],
    sops_cumulative: Sequence[float],
    input_macs: float,
    within_points: Sequence[float] = WITHIN_POINTS,
    fractions: Sequence[float] = ANN_OPS_FRACTIONS,
) -> dict[str, Any]:
    """Where the SNN meets the ANN on the error-vs-operations curve.

    Returns:
        ``{"within": {"1.0": point | None, ...}, "best_at_ann_ops": {"0.5": point | None,
        ...}}``: for each gap δ (points), the first step t at which the SNN's
        error is at most the ANN's + δ; for each fraction f, the lowest SNN
        error among the steps whose operations are at most f × the ANN's MACs
        (the earliest such step on ties). A point is ``{"step", "ops", "ops_ratio",
        "error"}`` (``ops_ratio`` = SNN ops / ANN MACs); ``None`` when no step
        qualifies.
    """
    ops, errors = error_vs_operations(snn_top1, sops_cumulative, input_macs)
    ann_error = 1.0 - ann_top1

    def point(t: int) -> dict[str, Any]:
        return {
            "step": t + 1,
            "ops": ops[t],
            "ops_ratio": ops[t] / ann_macs if ann_macs else None,
            "error": errors[t],
        }

    within: dict[str, Any] = {}
    for delta in within_points:
        # a small tolerance absorbs float rounding of accuracies that are k/n fractions
        hit = next((t for t, e in enumerate(errors) if e <= ann_error + delta / 100 + 1e-12), None)
        within[f"{delta:g}"] = None if hit is None else point(hit)
    best: dict[str, Any] = {}
    for fraction in fractions:
        budget = fraction * ann_macs
        candidates = [t for t, o in enumerate(ops) if o <= budget]
        if candidates:
            t_best = min(candidates, key=lambda t: (errors[t], t))
            best[f"{fraction:g}"] = point(t_best)
        else:
            best[f"{fraction:g}"] = None
    return {
        "ann_error": ann_error,
        "ann_ops": ann_macs,
        "within": within,
        "best_at_ann_ops": best,
    }


__all__ = [
    "ANN_OPS_FRACTIONS",
    "WITHIN_POINTS",
    "EnergyModel",
    "error_vs_operations",
    "milestones",
]
