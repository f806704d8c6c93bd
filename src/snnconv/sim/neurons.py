"""Integrate-and-fire dynamics as small step functions.

State is the membrane potential tensor ``v``, owned by the simulator and
updated in place (the simulator's hot loop allocates nothing per step).
For one step with input current ``z`` and threshold θ:

    V ← V + z;   s = [V ≥ θ];   V ← V − θ·s   (reset by subtraction)
                                V ← V·(1 − s) (reset to zero)

With constant z ∈ [0, θ] and V(0) = 0, reset by subtraction emits exactly
⌊T·z/θ⌋ spikes in T steps (up to the float rounding of the running sum).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from snnconv.ir import ResetMode

#: (v, z, threshold, spikes_out) -> None; writes 0/1 spikes into ``spikes_out``.
StepFn = Callable[[Tensor, Tensor, float, Tensor], None]


def if_step_subtract(v: Tensor, z: Tensor, threshold: float, spikes: Tensor) -> None:
    """One IF step with reset by subtraction: V ← V + z; s = [V ≥ θ]; V ← V − θ·s."""
    v.add_(z)
    torch.ge(v, threshold, out=spikes)
    v.sub_(spikes, alpha=threshold)


def if_step_signed(v: Tensor, z: Tensor, threshold: float, spikes: Tensor, count: Tensor) -> None:
    """One IF step with negative spikes (reset by subtraction).

    V ← V + z; s = [V ≥ θ] − [V ≤ −θ and c > 0]; V ← V − θ·s; c ← c + s, where
    c is the neuron's net spike count so far (updated in place).
    """
    v.add_(z)
    torch.ge(v, threshold, out=spikes)
    spikes.sub_(torch.le(v, -threshold).logical_and_(count > 0).to(spikes.dtype))
    v.sub_(spikes, alpha=threshold)
    count.add_(spikes)


def if_step_zero(v: Tensor, z: Tensor, threshold: float, spikes: Tensor) -> None:
    """One IF step with reset to zero: V ← V + z; s = [V ≥ θ]; V ← V·(1 − s)."""
    v.add_(z)
    torch.ge(v, threshold, out=spikes)
    v.mul_(1.0 - spikes)


def sign_step_subtract(v: Tensor, z: Tensor, threshold: float, spikes: Tensor) -> None:
    """Two-sided IF step: V ← V + z; s = [V ≥ θ] − [V ≤ −θ]; V ← V − θ·s."""
    v.add_(z)
    torch.ge(v, threshold, out=spikes)
    spikes.sub_((v <= -threshold).to(spikes.dtype))
    v.sub_(spikes, alpha=threshold)


def sign_step_zero(v: Tensor, z: Tensor, threshold: float, spikes: Tensor) -> None:
    """Two-sided IF step with reset to zero: V ← 0 wherever a (±) spike was emitted."""
    v.add_(z)
    torch.ge(v, threshold, out=spikes)
    spikes.sub_((v <= -threshold).to(spikes.dtype))
    v.mul_(1.0 - spikes.abs())


SIGN_STEP_FUNCTIONS: dict[ResetMode, StepFn] = {
    ResetMode.SUBTRACT: sign_step_subtract,
    ResetMode.ZERO: sign_step_zero,
}

STEP_FUNCTIONS: dict[ResetMode, StepFn] = {
    ResetMode.SUBTRACT: if_step_subtract,
    ResetMode.ZERO: if_step_zero,
}


def if_scan(
    v: Tensor,
    z: Tensor,
    threshold: float,
    reset: ResetMode,
    steps: int,
    constant: bool,
    held: int = 0,
    two_sided: bool = False,
    count: Tensor | None = None,
) -> Tensor:
    """Run ``steps`` IF steps; return the spikes as a ``[steps, *v.shape]`` tensor.

    Args:
        v: Membrane potential ``[B, ...]``, updated in place.
        z: Input current: ``[steps, B, ...]``, or ``[B, ...]`` if ``constant``.
        threshold: θ.
        reset: Reset rule.
        steps: Number of steps.
        constant: Whether ``z`` is the same at every step.
        held: How many of the first steps are held: the membrane keeps its
            value (no integration) and no spike is emitted.
        two_sided: Sign units: emit −1 spikes at V ≤ −θ too.
        count: Net spike count per neuron (updated in place) of IF neurons with
            negative spikes (see :func:`if_step_signed`); None for plain IF.
    """
    if count is not None:
        step: StepFn = partial(if_step_signed, count=count)
    else:
        step = (SIGN_STEP_FUNCTIONS if two_sided else STEP_FUNCTIONS)[reset]
    spikes = torch.empty((steps, *v.shape), dtype=v.dtype, device=v.device)
    held = min(max(held, 0), steps)
    spikes[:held].zero_()
    for k in range(held, steps):
        step(v, z if constant else z[k], threshold, spikes[k])
    return spikes
