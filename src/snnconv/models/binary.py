"""Binary weights and activations with straight-through gradients (BinaryNet).

The activations :class:`SignSTE` (±1) and :class:`HeavisideSTE` (0/1) and the
layers :class:`BinaryConv2d` and :class:`BinaryLinear` (weights ``sign(w)``)
of Courbariaux et al. (2016) train with the "hard tanh" straight-through
estimator. :func:`binarize_weights` turns a trained model's binary layers
into plain ``nn.Conv2d`` / ``nn.Linear`` layers with ±1 weights, which is
what conversion needs. :func:`snnconv.models.zoo.binarynet` builds a small
BinaryNet from them.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

__all__ = [
    "BinaryConv2d",
    "BinaryLinear",
    "HeavisideSTE",
    "SignSTE",
    "binarize_weights",
]

_ModelT = TypeVar("_ModelT", bound=nn.Module)


def _straight_through(x: torch.Tensor, binary: torch.Tensor) -> torch.Tensor:
    """``binary`` in the forward pass; the gradient of ``clamp(x, -1, 1)`` backwards.

    The clamp makes the estimator the "hard tanh" straight-through estimator
    of Courbariaux et al. (2016): the gradient passes where |x| <= 1 and is
    cancelled elsewhere.
    """
    clipped = x.clamp(-1.0, 1.0)
    return clipped + (binary - clipped).detach()


class SignSTE(nn.Module):
    """Binary activation ``sign(x)`` with a straight-through gradient in training.

    Forward: ``torch.sign(x)`` (±1; exactly 0 only where x is exactly 0).
    Backward in training mode: the gradient of ``clamp(x, -1, 1)``. In eval
    mode the module is just ``torch.sign(x)``, which is what a converter sees.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """sign(x), with the straight-through gradient in training mode."""
        if self.training:
            return _straight_through(x, torch.sign(x))
        return torch.sign(x)


class HeavisideSTE(nn.Module):
    """Binary activation ``H(x) = 1 if x > 0 else 0`` with a straight-through gradient.

    Forward: ``(x > 0).float()``, a float32 tensor of 0s and 1s (spikes, in
    effect). Backward in training mode: the gradient of ``clamp(x, -1, 1)``.
    In eval mode the module is just ``(x > 0).float()``, which is what a
    converter sees.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """H(x), with the straight-through gradient in training mode."""
        step = (x > 0).float()
        if self.training:
            return _straight_through(x, step)
        return step


class BinaryConv2d(nn.Conv2d):
    """2-D convolution whose effective weights are ``sign(weight)``.

    The real-valued ``weight`` is the latent weight that training updates;
    the forward pass uses its sign (±1), with the straight-through gradient
    of :class:`SignSTE` in training mode. The bias stays real-valued.
    :func:`binarize_weights` turns it into a plain ``nn.Conv2d`` with ±1
    weights for conversion.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Convolution with ``sign(weight)``."""
        weight = self.weight
        binary = torch.sign(weight)
        if self.training:
            binary = _straight_through(weight, binary)
        return self._conv_forward(input, binary, self.bias)


class BinaryLinear(nn.Linear):
    """Linear layer whose effective weights are ``sign(weight)``.

    See :class:`BinaryConv2d`; :func:`binarize_weights` turns it into a plain
    ``nn.Linear`` with ±1 weights.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Affine map with ``sign(weight)``."""
        binary = torch.sign(self.weight)
        if self.training:
            binary = _straight_through(self.weight, binary)
        return nn.functional.linear(input, binary, self.bias)


@torch.no_grad()
def binarize_weights(model: _ModelT) -> _ModelT:
    """Replace every binary layer by a plain layer holding ``sign`` of its latent weights.

    Each :class:`BinaryConv2d` / :class:`BinaryLinear` submodule becomes an
    ``nn.Conv2d`` / ``nn.Linear`` with the same hyper-parameters, weights
    ``sign(weight)`` (±1) and the same bias, so the model computes the same
    function in eval mode with ordinary layers, which is what conversion
    needs. The model is changed in place; training it further afterwards
    trains real-valued weights.

    Args:
        model: A model containing binary layers (others are left alone).

    Returns:
        The same model, in the training mode it had.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            plain: nn.Module
            if isinstance(child, BinaryConv2d):
                plain = nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,  # type: ignore[arg-type]
                    stride=child.stride,  # type: ignore[arg-type]
                    padding=child.padding,  # type: ignore[arg-type]
                    dilation=child.dilation,  # type: ignore[arg-type]
                    groups=child.groups,
                    bias=child.bias is not None,
                    padding_mode=child.padding_mode,
                )
            elif isinstance(child, BinaryLinear):
                plain = nn.Linear(
                    child.in_features, child.out_features, bias=child.bias is not None
                )
            else:
                continue
            plain = plain.to(device=child.weight.device, dtype=child.weight.dtype)
            plain.weight.copy_(torch.sign(child.weight))
            if child.bias is not None and plain.bias is not None:
                plain.bias.copy_(child.bias)
            plain.train(child.training)
            setattr(parent, name, plain)
    return model
