"""Converter registries keyed by objects (ATen overloads, module types, functions)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

C = TypeVar("C", bound=Callable[..., Any])


def key_name(key: object) -> str:
    """A readable name for a registry key (a module type, function or ATen overload)."""
    if isinstance(key, type):
        return f"{key.__module__}.{key.__qualname__}".replace("torch.nn.modules.", "nn.")
    name = getattr(key, "__qualname__", None) or getattr(key, "__name__", None)
    module = getattr(key, "__module__", None)
    if name and module and not str(key).startswith("aten."):
        return f"{module}.{name}"
    return str(key)


class ConverterRegistry(Generic[C]):
    """Maps keys (objects, never strings) to converter functions.

    Registering the same key twice is an error, so two converters can never
    silently compete for one op.
    """

    def __init__(self, description: str):
        self.description = description
        self._converters: dict[object, C] = {}

    def register(self, *keys: object) -> Callable[[C], C]:
        """Decorator registering a converter for each of ``keys``."""

        def decorate(fn: C) -> C:
            for key in keys:
                if key in self._converters:
                    raise ValueError(
                        f"{self.description}: {key_name(key)} already has converter "
                        f"{self._converters[key].__name__}"
                    )
                self._converters[key] = fn
            return fn

        return decorate

    def get(self, key: object) -> C | None:
        """The converter for ``key``, or None."""
        try:
            return self._converters.get(key)
        except TypeError:  # unhashable key
            return None

    def supported(self) -> list[str]:
        """Readable names of all registered keys, sorted."""
        return sorted({key_name(k) for k in self._converters})

    def keys(self) -> Iterable[object]:
        """The registered keys."""
        return self._converters.keys()
