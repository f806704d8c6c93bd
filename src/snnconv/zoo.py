"""Small reference CNNs, a deterministic training loop, and weight files.

This module keeps the former import path ``snnconv.zoo`` working (for
example ``snnconv run snnconv.zoo:lenet --weights ...``). The code lives in
:mod:`snnconv.models`: the networks in :mod:`snnconv.models.zoo`, the binary
layers in :mod:`snnconv.models.binary`, training and weight files in
:mod:`snnconv.models.training`, and the shipped checkpoint in
``snnconv/models/weights/``.
"""

from __future__ import annotations

from snnconv.models.binary import (
    BinaryConv2d,
    BinaryLinear,
    HeavisideSTE,
    SignSTE,
    binarize_weights,
)
from snnconv.models.training import accuracy, load_weights, save_weights, train
from snnconv.models.zoo import (
    PRETRAINED_LENET_FILE,
    InceptionSmall,
    binarynet,
    cifar_convnet,
    inception_small,
    lenet,
    load_pretrained_lenet,
    resnet_small,
    vgg_small,
)

__all__ = [
    "PRETRAINED_LENET_FILE",
    "BinaryConv2d",
    "BinaryLinear",
    "HeavisideSTE",
    "InceptionSmall",
    "SignSTE",
    "accuracy",
    "binarize_weights",
    "binarynet",
    "cifar_convnet",
    "inception_small",
    "lenet",
    "load_pretrained_lenet",
    "load_weights",
    "resnet_small",
    "save_weights",
    "train",
    "vgg_small",
]
