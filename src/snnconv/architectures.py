"""Standard ImageNet and CIFAR architectures, built without torchvision.

This module keeps the former import path ``snnconv.architectures`` working.
The code lives in :mod:`snnconv.models` (whose docstring says why torchvision
is re-implemented): VGG in :mod:`snnconv.models.vgg`, ResNet-18 and the CIFAR
ResNet-20 in :mod:`snnconv.models.resnet`, GoogLeNet in
:mod:`snnconv.models.googlenet`, Inception-v3 in
:mod:`snnconv.models.inception_v3`, batch-norm recalibration in
:mod:`snnconv.models.training`, and Fashion-MNIST as 3-channel images in
:mod:`snnconv.models.datasets`.
"""

from __future__ import annotations

from snnconv.models import reexport

__all__, __getattr__ = reexport(
    __name__,
    (
        "snnconv.models.vgg",
        "snnconv.models.resnet",
        "snnconv.models.googlenet",
        "snnconv.models.inception_v3",
        "snnconv.models.training",
        "snnconv.models.datasets",
    ),
)
