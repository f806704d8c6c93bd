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


#: What a clip-floor (QCFS) activation looks like in ONNX nodes, for messages.
CLIP_FLOOR_PATTERN = "Mul(L/λ) → Add(0.5) → Floor → Clip(0, L) → Mul(λ/L)"


@dataclass(frozen=True, eq=False)
class ClipFloor:
    """A clip-floor (QCFS) activation matched so far (:mod:`.clipfloor`): ``source``
    times ``scale`` (scalar ``Mul``/``Div``), then at stage ``shifted`` plus ``shift``,
    ``floored``, ``clipped`` to ``[0, levels]``, and times ``scale_out``.

    Attributes:
        source: The activation the chain reads.
        scale: The product of the scalars before the shift.
        stage: ``scaled``, ``shifted``, ``floored`` or ``clipped``.
        start: The ONNX node that began the chain (for messages).
        shift: The constant added.
        levels: L, the clip's upper bound.
        scale_out: The product of the scalars after the clip.
    """

    source: Activation
    scale: float
    stage: str
    start: str
    shift: float = 0.0
    levels: int | None = None
    scale_out: float = 1.0


#: A constant (initializers and everything folded from them), an activation, a
#: clip-floor chain being matched, or ``None`` for an omitted optional input or an
#: output nothing computes.
Value = Activation | ClipFloor | torch.Tensor | None


def channels_last_order(c: int, h: int, w: int) -> torch.Tensor:
    """The layout of the NHWC view of an NCHW ``[c, h, w]`` sample (see :class:`Activation`)."""
    return torch.arange(c * h * w).reshape(c, h, w).permute(1, 2, 0).reshape(-1)
