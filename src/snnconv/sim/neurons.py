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
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor

from snnconv.ir import BinaryKind, BinaryNeuron, IFNeuron, ResetMode

#: (v, z, threshold, spikes_out) -> None; writes 0/1 spikes into ``spikes_out``.
StepFn = Callable[[Tensor, Tensor, float, Tensor], None]


def if_step_subtract(v: Tensor, z: Tensor, threshold: float, spikes: Tensor) -> None:
    """One IF step with reset by subtraction: V ← V + z; s = [V ≥ θ]; V ← V − θ·s."""
    v.add_(z)
    torch.ge(v, threshold, out=spikes)
    v.sub_(spikes, alpha=threshold)


def if_step_signed(
    v: Tensor, z: Tensor, threshold: float, spikes: Tensor, count: Tensor, margin: float = 1.0
) -> None:
    """One IF step with negative spikes (reset by subtraction).

    V ← V + z; s = [V ≥ θ] − [V < 0 and V ≤ −h·θ and c > 0]; V ← V − θ·s;
    c ← c + s, where c is the neuron's net spike count so far (updated in
    place) and h = ``margin`` in [0, 1].
    """
    v.add_(z)
    torch.ge(v, threshold, out=spikes)
    below = torch.le(v, -margin * threshold) if margin > 0 else torch.lt(v, 0)
    spikes.sub_(below.logical_and_(count > 0).to(spikes.dtype))
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


class IFParams(NamedTuple):
    """What a layer of IF units does with its input current.

    Attributes:
        threshold: θ.
        reset: Reset rule after a spike.
        two_sided: Sign units: also a −1 spike at V ≤ −θ (see :func:`sign_step_subtract`).
        signed: IF neurons with negative spikes: a −1 spike at V ≤ −h·θ only while the
            net count is positive (see :func:`if_step_signed`).
        margin: h of the negative spikes, in [0, 1].
        held: How many of the first steps the membrane is held (no integration, no
            spike): the membrane clamp.
    """

    threshold: float
    reset: ResetMode = ResetMode.SUBTRACT
    two_sided: bool = False
    signed: bool = False
    held: int = 0
    margin: float = 1.0

    @classmethod
    def of(cls, op: IFNeuron | BinaryNeuron) -> IFParams:
        """The parameters of a spiking op."""
        if isinstance(op, BinaryNeuron):
            sign = op.function is BinaryKind.SIGN
            return cls(op.threshold, op.reset, two_sided=sign, held=op.hold_steps)
        return cls(
            op.threshold,
            op.reset,
            signed=op.negative_spikes,
            held=op.hold_steps,
            margin=op.negative_threshold,
        )

    @property
    def bipolar(self) -> bool:
        """Whether spikes can be −1."""
        return self.two_sided or self.signed


@dataclass
class IFState:
    """The state of a layer of IF units: the membrane, and the net spike counts of units
    with negative spikes (None for the others). Updated in place."""

    v: Tensor
    count: Tensor | None = None
    #: An extra input current per channel at every step (the bias calibration), shaped
    #: to broadcast over ``v``; None for none.
    offset: Tensor | None = None

    def select(self, keep: Tensor) -> None:
        """Keep only the samples ``keep`` (indices into the batch)."""
        self.v = self.v[keep]
        if self.count is not None:
            self.count = self.count[keep]

    @classmethod
    def initial(cls, op: IFNeuron | BinaryNeuron, shape: tuple[int, ...], device: Any) -> IFState:
        """V(0) = (v_init + v_offset)·θ (the offset per channel, where calibrated); net counts
        zero where the units have negative spikes."""
        v = torch.full(shape, op.v_init * op.threshold, device=device)
        offset = op.v_offset if isinstance(op, IFNeuron) else None
        if offset is not None:
            view = (1, -1) + (1,) * (len(shape) - 2)
            v += (offset.to(v.device) * op.threshold).reshape(view)
        signed = isinstance(op, IFNeuron) and op.negative_spikes
        current = op.bias_offset if isinstance(op, IFNeuron) else None
        if current is not None:
            current = current.to(v.device).reshape((1, -1) + (1,) * (len(shape) - 2))
        return cls(v, torch.zeros_like(v) if signed else None, current)


def if_scan(
    state: IFState,
    params: IFParams,
    z: Tensor,
    steps: int,
    *,
    constant: bool,
    start: int = 0,
) -> Tensor:
    """Run ``steps`` IF steps; return the spikes as a ``[steps, *v.shape]`` tensor.

    The one loop over time of every kind of IF unit (plain, sign, negative spikes).

    Args:
        state: Membrane (and net counts), updated in place.
        params: θ, reset rule, kind of spikes, held steps.
        z: Input current: ``[steps, B, ...]``, or ``[B, ...]`` if ``constant``.
        steps: Number of steps.
        constant: Whether ``z`` is the same at every step.
        start: The step the scan starts at (the held steps are counted from 0).
    """
    v = state.v
    if state.offset is not None:
        z = z + state.offset
    if params.signed:
        if state.count is None:
            raise ValueError("IF units with negative spikes need their net counts (IFState.count)")
        step: StepFn = partial(if_step_signed, count=state.count, margin=params.margin)
    else:
        step = (SIGN_STEP_FUNCTIONS if params.two_sided else STEP_FUNCTIONS)[params.reset]
    spikes = torch.empty((steps, *v.shape), dtype=v.dtype, device=v.device)
    held = min(max(params.held - start, 0), steps)
    spikes[:held].zero_()
    for k in range(held, steps):
        step(v, z if constant else z[k], params.threshold, spikes[k])
    return spikes
