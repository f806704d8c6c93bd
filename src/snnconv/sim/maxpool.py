"""The spiking max-pool gate (Rueckauer et al. 2017, section 2.2.3).

Max-pooling spikes directly is wrong: the max of spike trains is not the
spike train of the input with the highest rate. Instead each pooling window
passes on only the spikes of the input whose *estimated* firing rate is
highest. The rules, exactly:

1. At step t, each input neuron's rate estimate ``e`` is first updated with
   its spike ``s(t)`` of this step (the current step counts):
   ``COUNT``: e ← e + s (spikes so far; ranking by e equals ranking by e/t);
   ``MOVING_AVERAGE``: e ← e + s(t) − s(t − window) (spikes in the last
   ``window`` steps); ``EXPONENTIAL``: e ← decay·e + s.
2. Each window selects the input with the largest e. Ties go to the input
   that comes first in the window in row-major order (top-left first), so
   before any input has spiked the window's first (non-padding) input is
   selected. Padding positions are never selected.
3. The window's output at step t is the selected input's spike s(t) (0 if it
   did not spike). Overlapping windows (stride < kernel) are gated
   independently.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from snnconv.ir import MaxPool2d, RateEstimator


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
        self.position = 0
        window = op.window if op.estimator is RateEstimator.MOVING_AVERAGE else 0
        self.history = torch.zeros((window, *input_shape), device=device)

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
        self._update(s)
        op = self.op
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
