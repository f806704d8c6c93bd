"""The values flowing between ONNX nodes while a graph is imported."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class Activation:
    """A tensor computed from the input image.

    Attributes:
        name: The internal graph node that holds its elements.
        shape: Its ONNX shape, batch axis first (the batch axis is 1 here).
        layout: ``None`` if the internal tensor has exactly this shape and order;
            else a permutation ``p`` of the per-sample elements with
            ``onnx_value.flatten(1)[:, j] == internal.flatten(1)[:, p[j]]``.
        pad: A pending zero padding ``(top, left, bottom, right)`` of a ``Pad`` node,
            folded into the next Conv or AveragePool.
        pad_node: Where that padding came from (for messages).
    """

    name: str
    shape: tuple[int, ...]
    layout: torch.Tensor | None = None
    pad: tuple[int, int, int, int] | None = None
    pad_node: str = ""


#: A constant (initializers and everything folded from them), an activation, or
#: ``None`` for an omitted optional input or an output nothing computes.
Value = Activation | torch.Tensor | None


def channels_last_order(c: int, h: int, w: int) -> torch.Tensor:
    """The layout of the NHWC view of an NCHW ``[c, h, w]`` sample (see :class:`Activation`)."""
    return torch.arange(c * h * w).reshape(c, h, w).permute(1, 2, 0).reshape(-1)
