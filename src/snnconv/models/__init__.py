"""Model definitions: reference networks, torchvision architectures, training helpers.

- :mod:`~snnconv.models.zoo`: small reference CNNs (LeNet-, VGG-, ResNet- and
  Inception-style nets at Fashion-MNIST size, the CIFAR-10 convnet of
  Rueckauer et al. (2017), a small BinaryNet) and the shipped LeNet
  checkpoint, which lives in ``snnconv/models/weights/``.
- :mod:`~snnconv.models.binary`: binary weights and activations with
  straight-through gradients, and :func:`binarize_weights`.
- :mod:`~snnconv.models.training`: a deterministic training loop, accuracy,
  batch-norm recalibration, and safetensors weight files.
- :mod:`~snnconv.models.vgg`, :mod:`~snnconv.models.resnet`,
  :mod:`~snnconv.models.googlenet`, :mod:`~snnconv.models.inception_v3`:
  torchvision's VGG-16/11 (with batch norm), ResNet-18, GoogLeNet and
  Inception-v3, and the CIFAR ResNet-20 of He et al. (2016).
- :mod:`~snnconv.models.datasets`: Fashion-MNIST as 3-channel images of any
  size (real data for the large networks).

The torchvision architectures are re-implemented here rather than imported
because the registry's torchvision (0.28) fails to import beside the CPU
build of torch 2.13 ("operator torchvision::nms does not exist"), and the
matching pair (torch 2.14.1 + torchvision 0.29.1) is a 5.5 GB CUDA build.
They mirror ``torchvision.models`` (0.2x releases) module for module: the
same attribute names, layer order, hyper-parameters, weight initialisation
and operations in ``forward``, including the functional calls and the
in-place residual add that users' models contain. A torchvision ``state_dict``
therefore loads into them with ``strict=True``, and a converter that handles
these networks handles the torchvision originals. ``tests/test_architectures.py``
compares them against torchvision itself wherever it imports (the same
state-dict keys and shapes; torchvision's weights load and give the same
outputs).

:mod:`snnconv.zoo` and :mod:`snnconv.architectures` re-export these names
under their former module names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from snnconv.models.binary import (
    BinaryConv2d,
    BinaryLinear,
    HeavisideSTE,
    SignSTE,
    binarize_weights,
)
from snnconv.models.datasets import fashion_mnist_rgb
from snnconv.models.googlenet import (
    BasicConv2d,
    GoogLeNet,
    GoogLeNetOutputs,
    Inception,
    InceptionAux,
    googlenet,
)
from snnconv.models.inception_v3 import (
    Inception3,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    InceptionOutputs,
    InceptionV3Aux,
    inception_v3,
)
from snnconv.models.resnet import BasicBlock, CifarResNet, ResNet, resnet18, resnet20_cifar
from snnconv.models.training import (
    accuracy,
    load_weights,
    recalibrate_batchnorm,
    save_weights,
    train,
)
from snnconv.models.vgg import VGG, vgg11_bn, vgg16_bn
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
    "VGG",
    "BasicBlock",
    "BasicConv2d",
    "BinaryConv2d",
    "BinaryLinear",
    "CifarResNet",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "HeavisideSTE",
    "Inception",
    "Inception3",
    "InceptionA",
    "InceptionAux",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionOutputs",
    "InceptionSmall",
    "InceptionV3Aux",
    "ResNet",
    "SignSTE",
    "accuracy",
    "binarize_weights",
    "binarynet",
    "cifar_convnet",
    "fashion_mnist_rgb",
    "googlenet",
    "inception_small",
    "inception_v3",
    "lenet",
    "load_pretrained_lenet",
    "load_weights",
    "recalibrate_batchnorm",
    "resnet18",
    "resnet20_cifar",
    "resnet_small",
    "save_weights",
    "train",
    "vgg11_bn",
    "vgg16_bn",
    "vgg_small",
]


def reexport(module: str, homes: tuple[str, ...]) -> tuple[list[str], Callable[[str], Any]]:
    """``__all__`` and a module ``__getattr__`` that hand on every public name of the
    modules ``homes``: how the former paths ``snnconv.zoo`` and ``snnconv.architectures``
    stay importable without a second list of names."""
    names = sorted({name for home in homes for name in importlib.import_module(home).__all__})

    def getattr_(name: str) -> Any:
        for home in homes:
            found = importlib.import_module(home)
            if name in found.__all__:
                return getattr(found, name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return names, getattr_
