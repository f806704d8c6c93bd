"""QCFS: the quantization-clip-floor-shift activation (Bu et al., ICLR 2022).

"Optimal ANN-SNN conversion for high-accuracy and ultra-low-latency spiking
neural networks" trains the ANN with the activation an IF neuron produces:

    QCFS(x; λ, L) = λ/L · clip(⌊x·L/λ + ½⌋, 0, L)

with a trainable clip λ per layer and L quantization levels. An IF neuron with
threshold λ, reset by subtraction and V(0) = λ/2 fed a constant input x fires
exactly clip(⌊x·L/λ + ½⌋, 0, L) spikes in L steps, so after conversion the
first layers' rates equal the ANN's activations at T = L, and the error of the
deeper layers (whose inputs are not constant) has zero mean (the paper's
Theorem 2): the converted net is accurate in a handful of steps.

The gradient is the straight-through estimate of the floor: ∂y/∂x = 1 inside
(0, λ) and 0 outside; ∂y/∂λ = 1 above λ and y/λ − x/λ (the quantization
residual) inside. The activation is the custom operator ``snnconv::qcfs``, so
``torch.export`` keeps it as one node that the importers recognise.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["QCFS", "qcfs", "qcfs_reference"]


def qcfs_reference(x: Tensor, lam: Tensor | float, levels: int) -> Tensor:
    """The closed form λ/L · clip(⌊x·L/λ + ½⌋, 0, L) (what the operator computes)."""
    lam = torch.as_tensor(lam, dtype=x.dtype, device=x.device)
    return torch.clamp(torch.floor(x * (levels / lam) + 0.5), 0, levels) * (lam / levels)


@torch.library.custom_op("snnconv::qcfs", mutates_args=())
def qcfs(x: Tensor, lam: Tensor, levels: int) -> Tensor:
    """QCFS(x; λ, L) (module docstring); ``lam`` is a 0-d tensor."""
    return qcfs_reference(x, lam, levels)


@qcfs.register_fake
def _(x: Tensor, lam: Tensor, levels: int) -> Tensor:
    return torch.empty_like(x)


def _setup(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: Tensor) -> None:
    x, lam, _ = inputs
    ctx.save_for_backward(x, lam, output)  # type: ignore[attr-defined]


def _backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple:
    x, lam, y = ctx.saved_tensors  # type: ignore[attr-defined]
    inside = (x > 0) & (x < lam)
    grad_x = grad * inside
    residual = torch.where(inside, (y - x) / lam, (x >= lam).to(x.dtype))
    grad_lam = (grad * residual).sum().reshape(lam.shape)
    return grad_x, grad_lam, None


qcfs.register_autograd(_backward, setup_context=_setup)


class QCFS(nn.Module):
    """The QCFS activation with a trainable clip λ (module docstring).

    Args:
        levels: L, the quantization levels (the time steps the SNN is trained for).
        lam: The initial λ (:func:`snnconv.nn.replace_relu` sets it from the
            calibration data's percentile).
    """

    def __init__(self, levels: int = 4, lam: float = 1.0):
        super().__init__()
        if not isinstance(levels, int) or isinstance(levels, bool) or levels < 1:
            raise ValueError(f"QCFS needs a positive integer number of levels, got {levels!r}")
        if not (math.isfinite(lam) and lam > 0):
            raise ValueError(f"QCFS needs a positive finite λ, got {lam!r}")
        self.levels = levels
        self.lam = nn.Parameter(torch.tensor(float(lam)))

    def forward(self, x: Tensor) -> Tensor:
        return qcfs(x, self.lam, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, lam={float(self.lam.detach()):.4g}"
