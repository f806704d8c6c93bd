"""Helpers shared by the architecture builders: argument checks, named stages in order."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from snnconv.errors import ConfigError


def check_num_classes(num_classes: int) -> None:
    """Require an integer number of classes >= 1.

    Args:
        num_classes: The value to check.

    Raises:
        ConfigError: If ``num_classes`` is not an integer >= 1.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be an integer >= 1, got {num_classes!r}.")


def chain(module: nn.Module, names: Sequence[str], x: Tensor) -> Tensor:
    """Apply ``module``'s sub-modules ``names`` in order (the forward of a sequence of
    named stages, written once)."""
    for name in names:
        x = getattr(module, name)(x)
    return x
