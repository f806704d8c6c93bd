"""The spiking max-pool gate (Rueckauer et al. 2017, section 2.2.3).

Max-pooling spikes directly is wrong: the max of spike trains is not the
spike train of the input with the highest rate. Instead each pooling window
passes on only the spikes of the input whose online-estimated firing rate is
highest. The rules, exactly, per window and step t:

``COUNT`` (the default; estimate = spikes so far, whose ranking is that of
the running rates): a spike passes exactly when the largest cumulative count
among the window's inputs rises, i.e. when an input that holds or ties the
lead spikes. So the window's cumulative output count equals its inputs'
largest cumulative count at every step, and its rate converges to the
largest input rate, never exceeding it. Ties pass no extra spikes. (For sign
units, whose spikes are ±1, a fall of the lead passes a −1 spike.)

``MOVING_AVERAGE`` (e ← spikes in the last ``window`` steps) and
``EXPONENTIAL`` (e ← ``decay``·e + s): each input's estimate is first updated
with its spike of this step; the window selects the input with the largest
estimate (ties: the first in the window in row-major order, top-left first;
so before any input has spiked the first non-padding input is selected) and
passes that input's spike of this step.

Padding positions are never selected; overlapping windows (stride < kernel)
are gated independently. Why the count rule is not "pass the leader's
spike": with regular spike trains of near-equal rates the leader is whoever
spiked last, so passing the current leader's spike fires on every step where
any close competitor fires (two inputs at rate 1/2 firing alternately would
give rate 1), and selecting on past spikes only fires on none of them (rate
0); either error compounds through the many pooling layers of deep networks.
The windowed estimators keep the selection rule and can show that bias for
near-equal inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from snnconv.ir import MaxPool2d, RateEstimator
from snnconv.ir.ops import window_max


class MaxPoolGate:
    """The gate's state for one pooling layer and batch.

    Args:
        op: The pooling layer.
        input_shape: ``[B, C, H, W]`` of its spiking input.
        device: Where the state lives.
    """

    def __init__(self, op: MaxPool2d, input_shape: tuple[int, ...], device: torch.device):
        self.op = op
        self.estimate = torch.zeros(input_shape, device=device)
        #: Largest count per window so far (COUNT only).
        self.lead: Tensor | None = None
        self.position = 0
        window = op.window if op.estimator is RateEstimator.MOVING_AVERAGE else 0
        self.history = torch.zeros((window, *input_shape), device=device)

    def select(self, keep: Tensor) -> None:
        """Keep only the samples ``keep`` (indices into the batch)."""
        self.estimate = self.estimate[keep]
        self.history = self.history[:, keep]
        if self.lead is not None:
            self.lead = self.lead[keep]

    def _update(self, s: Tensor) -> None:
        op = self.op
        if op.estimator is RateEstimator.COUNT:
            self.estimate.add_(s)
        elif op.estimator is RateEstimator.EXPONENTIAL:
            self.estimate.mul_(op.decay).add_(s)
        else:
            old = self.history[self.position]
            self.estimate.add_(s).sub_(old)
            old.copy_(s)
            self.position = (self.position + 1) % op.window

    def step(self, s: Tensor) -> Tensor:
        """Gate one step of spikes ``s`` ``[B, C, H, W]``; returns the pooled spikes."""
        op = self.op
        self._update(s)
        if op.estimator is RateEstimator.COUNT:
            lead = window_max(
                self.estimate, op.kernel_size, op.stride, op.padding, op.dilation, op.ceil_mode
            )
            previous = self.lead if self.lead is not None else torch.zeros_like(lead)
            self.lead = lead
            return lead - previous
        _, index = F.max_pool2d(
            self.estimate,
            op.kernel_size,
            op.stride,
            op.padding,
            op.dilation,
            op.ceil_mode,
            return_indices=True,
        )
        return s.flatten(2).gather(2, index.flatten(2)).view(index.shape)

    def scan(self, block: Tensor) -> Tensor:
        """Gate ``k`` steps: ``block`` is ``[k, B, C, H, W]``; returns ``[k, B, C, H', W']``."""
        return torch.stack([self.step(block[j]) for j in range(block.shape[0])])
