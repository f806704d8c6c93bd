"""The reference nets as ``snnconv run`` is given them: ``MODULE:FACTORY`` and weights.

Kept apart from ``common.py`` so that the benchmarks that time ``snnconv`` as
separate processes do not import torch themselves.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"

#: ``{net: (MODULE:FACTORY, weights file in WEIGHTS)}``.
CLI_MODELS: dict[str, tuple[str, str]] = {
    "lenet_avg": ("snnconv.models.zoo:lenet", "lenet_avg.safetensors"),
    "vgg_bn": ("snnconv.models.zoo:vgg_small", "vgg_bn.safetensors"),
    "resnet_small": ("snnconv.models.zoo:resnet_small", "resnet_small.safetensors"),
    "inception_small": ("snnconv.models.zoo:inception_small", "inception_small.safetensors"),
}


def model_args(name: str, models: dict[str, tuple[str, str]] = CLI_MODELS) -> list[str]:
    """``MODULE:FACTORY --weights FILE`` of a reference net, for ``snnconv run``."""
    factory, weights = models[name]
    return [factory, "--weights", str(WEIGHTS / weights)]
