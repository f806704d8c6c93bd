"""Argument checks shared by the architecture builders."""

from __future__ import annotations

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
