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
from snnconv.models.training import recalibrate_batchnorm
from snnconv.models.vgg import VGG, vgg11_bn, vgg16_bn

__all__ = [
    "VGG",
    "BasicBlock",
    "BasicConv2d",
    "CifarResNet",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "Inception",
    "Inception3",
    "InceptionA",
    "InceptionAux",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionOutputs",
    "InceptionV3Aux",
    "ResNet",
    "fashion_mnist_rgb",
    "googlenet",
    "inception_v3",
    "recalibrate_batchnorm",
    "resnet18",
    "resnet20_cifar",
    "vgg11_bn",
    "vgg16_bn",
]
