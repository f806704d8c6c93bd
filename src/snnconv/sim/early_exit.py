"""Per-sample early exit: each sample stops as soon as its class is settled.

A sample exits after step t when its top-1 class has been the same for the
last ``patience`` steps and its readout margin, top-1 score − top-2 score (of
the accumulated readout: the margin grows with the evidence), is at least
``margin``; at step T every remaining sample exits. Exited samples
are dropped from the batch (every state tensor is compacted), so the saving is
wall time and synaptic operations, not only a count. Because the samples that
stay are simulated exactly as before, each sample's prediction is the full
simulation's prediction at the step it exited.

:func:`tune_exit_rule` picks the rule on calibration data: among patiences
1…8 and margins at quantiles of the observed margins, the one with the fewest
mean steps whose predictions differ from the full run's (at step T) on no
more than ``tolerance`` of the samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from snnconv.sim.simulator import Simulator

__all__ = ["EarlyExitBatch", "ExitRule", "run_early_exit", "trace", "tune_exit_rule"]


@dataclass(frozen=True)
class ExitRule:
    """When a sample exits: top-1 unchanged for ``patience`` steps, margin ≥ ``margin``.

    Attributes:
        patience: Steps the top-1 class must have held (1: the current step only).
        margin: Least top-1 − top-2 score of the accumulated readout.
    """

    patience: int
    margin: float

    def done(self, streak: Tensor, margin: Tensor) -> Tensor:
        """Which samples exit, given their streaks and margins after a step."""
        return (streak >= self.patience) & (margin >= self.margin)


@dataclass
class EarlyExitBatch:
    """One batch simulated with early exit.

    Attributes:
        steps: ``[B]`` the step each sample exited after.
        predictions: ``[B]`` its top-1 class then.
        correct_top1, correct_top5: Samples right at their exit.
        events, sops: Events and synaptic operations of the whole batch (exited
            samples cost nothing after their exit), per source.
    """

    steps: Tensor
    predictions: Tensor
    correct_top1: int
    correct_top5: int
    events: dict[str, float] = field(default_factory=dict)
    sops: dict[str, float] = field(default_factory=dict)


def _margin(scores: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Top-1 class, top-5 classes and margin of the readout's ``scores`` ``[B, C]``."""
    top = scores.topk(min(5, scores.shape[-1]), dim=-1)
    second = top.values[:, 1] if scores.shape[-1] > 1 else torch.zeros_like(top.values[:, 0])
    return top.indices[:, 0], top.indices, top.values[:, 0] - second


@torch.no_grad()
def trace(sim: Simulator, x: Tensor, timesteps: int) -> tuple[Tensor, Tensor]:
    """Top-1 class and margin of every sample after every step: two ``[T, B]`` tensors."""
    state = sim.start_batch(x.to(sim.device, torch.float32), timesteps, False, False)
    classes, margins = [], []
    for t in range(timesteps):
        scores = sim.scores(state, 1, t)[0]
        top1, _, margin = _margin(scores)
        classes.append(top1)
        margins.append(margin)
    return torch.stack(classes).cpu(), torch.stack(margins).cpu()


def exit_steps(classes: Tensor, margins: Tensor, rule: ExitRule) -> Tensor:
    """The step (1…T) each sample of a :func:`trace` exits after under ``rule``."""
    timesteps = classes.shape[0]
    streak = torch.ones_like(classes[0])
    steps = torch.full((classes.shape[1],), timesteps, dtype=torch.long)
    active = torch.ones(classes.shape[1], dtype=torch.bool)
    for t in range(timesteps):
        if t > 0:
            streak = torch.where(classes[t] == classes[t - 1], streak + 1, torch.ones_like(streak))
        done = active & rule.done(streak, margins[t])
        steps[done] = t + 1
        active &= ~done
    return steps


def tune_exit_rule(classes: Tensor, margins: Tensor, tolerance: float = 0.001) -> ExitRule:
    """The rule with the fewest mean steps that changes at most ``tolerance`` of the
    full run's predictions (at step T) on the traced samples."""
    final = classes[-1]
    n = classes.shape[1]
    candidates = [0.0, *torch.quantile(margins.flatten().float(), torch.linspace(0.05, 0.95, 19))]
    best = ExitRule(classes.shape[0], 0.0)
    best_steps = float(classes.shape[0])
    for patience in range(1, 9):
        for m in candidates:
            rule = ExitRule(patience, float(m))
            steps = exit_steps(classes, margins, rule)
            predicted = classes[steps - 1, torch.arange(n)]
            changed = float((predicted != final).double().mean())
            mean_steps = float(steps.double().mean())
            if changed <= tolerance and mean_steps < best_steps:
                best, best_steps = rule, mean_steps
    return best


@torch.no_grad()
def run_early_exit(
    sim: Simulator, x: Tensor, y: Tensor, timesteps: int, rule: ExitRule, batch_index: int = 0
) -> EarlyExitBatch:
    """Simulate ``x`` for at most ``timesteps`` steps, each sample until it exits."""
    x, y = x.to(sim.device, torch.float32), y.to(sim.device)
    sim.generator.manual_seed(hash((sim.seed, batch_index)) & 0xFFFF_FFFF_FFFF)
    state = sim.start_batch(x, timesteps, True, False)
    n = x.shape[0]
    index = torch.arange(n, device=sim.device)  # the batch position of each active sample
    steps = torch.full((n,), timesteps, dtype=torch.long, device=sim.device)
    predictions = torch.zeros(n, dtype=torch.long, device=sim.device)
    hits1 = torch.zeros(n, dtype=torch.bool, device=sim.device)
    hits5 = torch.zeros(n, dtype=torch.bool, device=sim.device)
    previous = torch.full((n,), -1, dtype=torch.long, device=sim.device)
    streak = torch.zeros(n, dtype=torch.long, device=sim.device)
    for t in range(timesteps):
        top1, top5, margin = _margin(sim.scores(state, 1, t)[0])
        streak = torch.where(top1 == previous, streak + 1, torch.ones_like(streak))
        done = rule.done(streak, margin) | (t == timesteps - 1)
        if bool(done.any()):
            leaving = index[done]
            steps[leaving] = t + 1
            predictions[leaving] = top1[done]
            hits1[leaving] = top1[done] == y[leaving]
            hits5[leaving] = (top5[done] == y[leaving, None]).any(-1)
            keep = torch.nonzero(~done).reshape(-1)
            if keep.numel() == 0:
                break
            state.select(keep)
            index, top1, streak = index[keep], top1[keep], streak[keep]
        previous = top1
    tally = state.tally
    return EarlyExitBatch(
        steps.cpu(),
        predictions.cpu(),
        int(hits1.sum()),
        int(hits5.sum()),
        {name: float(c.sum()) for name, c in {**tally.spikes, **tally.events}.items()},
        {name: float(c.sum()) for name, c in tally.sops.items()},
    )
