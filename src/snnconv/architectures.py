"""Standard ImageNet and CIFAR architectures, built without torchvision.

The ImageNet networks mirror ``torchvision.models`` (0.2x releases) module for
module: the same attribute names, layer order, hyper-parameters, weight
initialisation and ``forward`` code, including the functional calls
(``F.relu``, ``F.max_pool2d``, ``F.avg_pool2d``, ``torch.cat``,
``torch.flatten``) and the in-place residual add (``out += identity``) that
users' models contain. A torchvision ``state_dict`` therefore loads into them
with ``strict=True``, and a converter that handles these networks handles the
torchvision originals.

Also here: the CIFAR ResNet-20 of He et al. (2016), a helper that
re-estimates batch-norm statistics on real images (to give random-weight
networks realistic activations), and Fashion-MNIST resized to 3-channel
images of any size (real data for the large networks).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from snnconv.data import load_dataset
from snnconv.errors import ConfigError, DataError

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


def _check_num_classes(num_classes: int) -> None:
    """Require an integer number of classes >= 1."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be an integer >= 1, got {num_classes!r}.")


# --- VGG -----------------------------------------------------------------------------------

#: torchvision's VGG configurations: channel counts, "M" for a 2x2 max pool.
_VGG_CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def _vgg_features(cfg: list[int | str], batch_norm: bool) -> nn.Sequential:
    """torchvision's ``make_layers``: conv3x3 (-BN) -ReLU blocks and 2x2 max pools."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            channels = int(v)
            conv2d = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
            if batch_norm:
                layers += [conv2d, nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
            else:
                layers += [conv2d, nn.ReLU(inplace=True)]
            in_channels = channels
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """torchvision's ``VGG``: ``features``, ``avgpool`` (adaptive 7x7) and ``classifier``.

    Args:
        features: The convolutional part (see :func:`vgg16_bn`).
        num_classes: Outputs of the last linear layer.
        dropout: Dropout probability of the classifier.
    """

    def __init__(self, features: nn.Module, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        """Features, adaptive average pool to 7x7, flatten, classifier."""
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x


def vgg16_bn(num_classes: int = 1000) -> VGG:
    """VGG-16 with batch normalisation (Simonyan & Zisserman, 2015).

    Mirrors ``torchvision.models.vgg16_bn`` (torchvision 0.2x; configuration
    "D"): 13 conv3x3-BN-ReLU layers in five stages (64, 128, 256, 512, 512
    channels), each stage ending in a 2x2 max pool, then
    ``AdaptiveAvgPool2d((7, 7))`` and the classifier Linear(25088→4096)-ReLU-
    Dropout-Linear(4096→4096)-ReLU-Dropout-Linear(4096→``num_classes``).
    138,365,992 parameters at 1,000 classes.

    Input: 3x224x224 for the ImageNet weights; any size >= 32 runs (the five
    pools need 32; the adaptive pool then replicates the 1x1 map to 7x7).

    Args:
        num_classes: Number of output classes.

    Returns:
        The network with torchvision's random initialisation.

    Raises:
        ConfigError: If ``num_classes`` is not a positive integer.
    """
    _check_num_classes(num_classes)
    return VGG(_vgg_features(_VGG_CFGS["D"], batch_norm=True), num_classes=num_classes)


def vgg11_bn(num_classes: int = 1000) -> VGG:
    """VGG-11 with batch normalisation (Simonyan & Zisserman, 2015).

    Mirrors ``torchvision.models.vgg11_bn`` (torchvision 0.2x; configuration
    "A"): 8 conv3x3-BN-ReLU layers (64, M, 128, M, 256, 256, M, 512, 512, M,
    512, 512, M), ``AdaptiveAvgPool2d((7, 7))`` and the same classifier as
    :func:`vgg16_bn`. 132,868,840 parameters at 1,000 classes.

    Input: 3x224x224 for the ImageNet weights; any size >= 32 runs.

    Args:
        num_classes: Number of output classes.

    Returns:
        The network with torchvision's random initialisation.

    Raises:
        ConfigError: If ``num_classes`` is not a positive integer.
    """
    _check_num_classes(num_classes)
    return VGG(_vgg_features(_VGG_CFGS["A"], batch_norm=True), num_classes=num_classes)


# --- ResNet --------------------------------------------------------------------------------


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision's ResNet ``BasicBlock``.

    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` where the shortcut
    is ``downsample`` (conv1x1 + BN) when given, else the identity. The
    addition is written ``out += identity`` as in torchvision.

    Args:
        inplanes: Input channels.
        planes: Output channels.
        stride: Stride of ``conv1`` (and of the downsample convolution).
        downsample: Shortcut module, or ``None`` for the identity.
    """

    expansion: int = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """The residual block; see the class docstring."""
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)

        return out


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """A stage of ``blocks`` BasicBlocks; the first one downsamples if shapes change."""
    downsample: nn.Module | None = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(_conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    layers: list[nn.Module] = [BasicBlock(inplanes, planes, stride, downsample)]
    layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _init_resnet(model: nn.Module) -> None:
    """torchvision's ResNet initialisation: Kaiming (fan out) convs, BN weight 1, bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class ResNet(nn.Module):
    """torchvision's ``ResNet`` with BasicBlocks.

    Stem conv7x7/2 (64) - BN - ReLU - maxpool3x3/2, four stages ``layer1`` ..
    ``layer4`` (64, 128, 256, 512 channels; stride 2 from ``layer2`` on),
    ``AdaptiveAvgPool2d((1, 1))``, flatten and ``fc``.

    Args:
        layers: Number of blocks per stage (``[2, 2, 2, 2]`` for ResNet-18).
        num_classes: Outputs of ``fc``.
    """

    def __init__(self, layers: list[int], num_classes: int = 1000) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ConfigError(f"ResNet needs 4 stage sizes, got {layers!r}.")
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _make_layer(64, 64, layers[0], stride=1)
        self.layer2 = _make_layer(64, 128, layers[1], stride=2)
        self.layer3 = _make_layer(128, 256, layers[2], stride=2)
        self.layer4 = _make_layer(256, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * BasicBlock.expansion, num_classes)
        _init_resnet(self)

    def forward(self, x: Tensor) -> Tensor:
        """Stem, four stages, global average pool, flatten, ``fc``."""
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18 (He et al., 2016), as ``torchvision.models.resnet18`` (torchvision 0.2x).

    Four stages of two BasicBlocks each; shortcuts that change shape are
    conv1x1 + BN (``downsample``). 11,689,512 parameters at 1,000 classes.

    Input: 3x224x224 for the ImageNet weights; any size >= 32 gives a
    meaningful (at least 1x1) map at every stage (the network runs down to
    1x1 inputs, where every stage sees a single pixel).

    Args:
        num_classes: Number of output classes.

    Returns:
        The network with torchvision's random initialisation.

    Raises:
        ConfigError: If ``num_classes`` is not a positive integer.
    """
    _check_num_classes(num_classes)
    return ResNet([2, 2, 2, 2], num_classes=num_classes)


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. (2016, section 4.2) with projection shortcuts.

    conv3x3 (3→16) - BN - ReLU, three stages of ``n`` BasicBlocks with 16, 32
    and 64 channels (stride 2 at the start of the second and third stage),
    global average pool, flatten and ``fc``. Shortcuts that change shape are
    conv1x1 + BN (option B of the paper). The module names (``conv1``,
    ``bn1``, ``layer1`` .. ``layer3``, ``fc``) follow torchvision's ResNet.

    Args:
        blocks_per_stage: ``n``; the depth is ``6n + 2`` (3 for ResNet-20).
        num_classes: Outputs of ``fc``.
        in_channels: Input channels (3 for CIFAR-10, 1 for grey images).
    """

    def __init__(
        self, blocks_per_stage: int = 3, num_classes: int = 10, in_channels: int = 3
    ) -> None:
        super().__init__()
        n = blocks_per_stage
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"blocks_per_stage must be an integer >= 1, got {n!r}.")
        self.conv1 = _conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_layer(16, 16, n, stride=1)
        self.layer2 = _make_layer(16, 32, n, stride=2)
        self.layer3 = _make_layer(32, 64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        _init_resnet(self)

    def forward(self, x: Tensor) -> Tensor:
        """Stem, three stages, global average pool, flatten, ``fc``."""
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


def resnet20_cifar(num_classes: int = 10) -> CifarResNet:
    """ResNet-20 for CIFAR-10 (He et al., 2016, section 4.2).

    Three stages of three BasicBlocks (16, 32, 64 channels), conv1x1 + BN
    projection shortcuts where the shape changes (option B), global average
    pooling; 272,474 parameters at 10 classes. The layout and names match
    the ``cifar10_resnet20`` models commonly shared for PyTorch (``conv1``,
    ``bn1``, ``layer1.0.downsample.0`` ...).

    Input: 3x32x32 (CIFAR-10); any size >= 4 runs.

    Args:
        num_classes: Number of output classes.

    Returns:
        The network with Kaiming (fan out) initialisation.

    Raises:
        ConfigError: If ``num_classes`` is not a positive integer.
    """
    _check_num_classes(num_classes)
    return CifarResNet(3, num_classes=num_classes)


# --- GoogLeNet -----------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """Convolution without bias, BN (eps 0.001), then ``F.relu(x, inplace=True)``.

    The building block of torchvision's GoogLeNet and Inception-v3.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        **kwargs: Further ``nn.Conv2d`` arguments (kernel_size, stride, padding).
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        """conv, batch norm, ReLU."""
        x = self.conv(x)
        x = self.bn(x)
        return F.relu(x, inplace=True)


class Inception(nn.Module):
    """GoogLeNet's inception module (torchvision's ``Inception``).

    Four branches concatenated along channels: 1x1; 1x1 → 3x3; 1x1 → 3x3
    (torchvision uses 3x3 where the paper has 5x5); max pool 3x3/1 (padding
    1, ``ceil_mode=True``) → 1x1.

    Args:
        in_channels: Input channels.
        ch1x1: Output channels of branch 1.
        ch3x3red: Reduction channels of branch 2.
        ch3x3: Output channels of branch 2.
        ch5x5red: Reduction channels of branch 3.
        ch5x5: Output channels of branch 3.
        pool_proj: Output channels of branch 4.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """The four branches, concatenated with ``torch.cat(..., 1)``."""
        branch1 = self.branch1(x)
        branch2 = self.branch2(x)
        branch3 = self.branch3(x)
        branch4 = self.branch4(x)
        return torch.cat([branch1, branch2, branch3, branch4], 1)


class InceptionAux(nn.Module):
    """GoogLeNet's auxiliary classifier (used in training only).

    ``F.adaptive_avg_pool2d`` to 4x4, BasicConv2d 1x1 (128), flatten,
    Linear(2048→1024), ``F.relu``, dropout, Linear(1024→``num_classes``).

    Args:
        in_channels: Input channels.
        num_classes: Outputs.
        dropout: Dropout probability.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Auxiliary logits."""
        x = F.adaptive_avg_pool2d(x, (4, 4))
        x = self.conv(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x), inplace=True)
        x = self.dropout(x)
        x = self.fc2(x)
        return x


class GoogLeNetOutputs(NamedTuple):
    """GoogLeNet's training-mode outputs when it has auxiliary classifiers."""

    logits: Tensor
    aux_logits2: Tensor | None
    aux_logits1: Tensor | None


def _transform_input(x: Tensor) -> Tensor:
    """torchvision's ``transform_input``: ImageNet normalisation → [-1, 1] scaling."""
    x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
    x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
    x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
    return torch.cat((x_ch0, x_ch1, x_ch2), 1)


class GoogLeNet(nn.Module):
    """torchvision's ``GoogLeNet`` (Szegedy et al., 2015).

    In eval mode (or without auxiliary heads) ``forward`` returns the logits;
    in training mode with ``aux_logits`` it returns :class:`GoogLeNetOutputs`,
    as torchvision does.

    Args:
        num_classes: Outputs of ``fc``.
        aux_logits: Build the two auxiliary classifiers ``aux1`` and ``aux2``.
        transform_input: Re-map ImageNet-normalised inputs to the [-1, 1]
            scaling the original weights were trained with.
        dropout: Dropout probability before ``fc``.
        dropout_aux: Dropout probability in the auxiliary classifiers.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = False,
        transform_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        """Logits (eval mode), or :class:`GoogLeNetOutputs` in training with aux heads."""
        if self.transform_input:
            x = _transform_input(x)
        x = self.conv1(x)
        x = self.maxpool1(x)
        x = self.conv2(x)
        x = self.conv3(x)
        x = self.maxpool2(x)

        x = self.inception3a(x)
        x = self.inception3b(x)
        x = self.maxpool3(x)
        x = self.inception4a(x)
        aux1: Tensor | None = None
        if self.aux1 is not None and self.training:
            aux1 = self.aux1(x)

        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)
        aux2: Tensor | None = None
        if self.aux2 is not None and self.training:
            aux2 = self.aux2(x)

        x = self.inception4e(x)
        x = self.maxpool4(x)
        x = self.inception5a(x)
        x = self.inception5b(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = self.fc(x)
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet(
    num_classes: int = 1000, aux_logits: bool = False, transform_input: bool = False
) -> GoogLeNet:
    """GoogLeNet (Inception v1), as ``torchvision.models.googlenet`` (torchvision 0.2x).

    Stem conv7x7/2 - maxpool - conv1x1 - conv3x3 - maxpool, inception modules
    3a-3b, maxpool, 4a-4e, maxpool 2x2, 5a-5b, ``AdaptiveAvgPool2d((1, 1))``,
    flatten, dropout 0.2, ``fc``. Every convolution is a :class:`BasicConv2d`
    (conv without bias, BN with eps 0.001, ``F.relu``); max pools use
    ``ceil_mode=True``. 6,624,904 parameters at 1,000 classes without the
    auxiliary heads (13,004,888 with them). torchvision's pretrained
    GoogLeNet uses ``transform_input=True``.

    Input: 3x224x224 for the ImageNet weights; any size >= 15 runs
    (torchvision's stated minimum; 32 or more keeps the 4a-4e maps above 1x1).

    Args:
        num_classes: Number of output classes.
        aux_logits: Build the auxiliary classifiers (they only run in training mode).
        transform_input: See :class:`GoogLeNet`.

    Returns:
        The network with torchvision's random initialisation (truncated
        normal, std 0.01).

    Raises:
        ConfigError: If ``num_classes`` is not a positive integer.
    """
    _check_num_classes(num_classes)
    return GoogLeNet(num_classes, aux_logits=aux_logits, transform_input=transform_input)


# --- Inception-v3 --------------------------------------------------------------------------


class InceptionA(nn.Module):
    """Inception-v3 module A (35x35 grid): 1x1, 5x5, double 3x3, avg pool branches.

    Args:
        in_channels: Input channels.
        pool_features: Output channels of the pooling branch.
    """

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)

        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)

        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)

        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """The four branches, concatenated along channels."""
        branch1x1 = self.branch1x1(x)

        branch5x5 = self.branch5x5_1(x)
        branch5x5 = self.branch5x5_2(branch5x5)

        branch3x3dbl = self.branch3x3dbl_1(x)
        branch3x3dbl = self.branch3x3dbl_2(branch3x3dbl)
        branch3x3dbl = self.branch3x3dbl_3(branch3x3dbl)

        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)

        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    """Inception-v3 grid reduction 35→17: 3x3/2, double 3x3 (/2), max pool 3x3/2.

    Args:
        in_channels: Input channels.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)

        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        """The three branches, concatenated along channels."""
        branch3x3 = self.branch3x3(x)

        branch3x3dbl = self.branch3x3dbl_1(x)
        branch3x3dbl = self.branch3x3dbl_2(branch3x3dbl)
        branch3x3dbl = self.branch3x3dbl_3(branch3x3dbl)

        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)

        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    """Inception-v3 module C (17x17 grid) with factorised 7x7 (1x7 and 7x1) branches.

    Args:
        in_channels: Input channels.
        channels_7x7: Inner channels of the 7x7 branches.
    """

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)

        c7 = channels_7x7
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))

        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))

        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """The four branches, concatenated along channels."""
        branch1x1 = self.branch1x1(x)

        branch7x7 = self.branch7x7_1(x)
        branch7x7 = self.branch7x7_2(branch7x7)
        branch7x7 = self.branch7x7_3(branch7x7)

        branch7x7dbl = self.branch7x7dbl_1(x)
        branch7x7dbl = self.branch7x7dbl_2(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_3(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_4(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_5(branch7x7dbl)

        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)

        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    """Inception-v3 grid reduction 17→8: 3x3/2 and 7x7-3x3/2 branches, max pool 3x3/2.

    Args:
        in_channels: Input channels.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)

        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        """The three branches, concatenated along channels."""
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = self.branch3x3_2(branch3x3)

        branch7x7x3 = self.branch7x7x3_1(x)
        branch7x7x3 = self.branch7x7x3_2(branch7x7x3)
        branch7x7x3 = self.branch7x7x3_3(branch7x7x3)
        branch7x7x3 = self.branch7x7x3_4(branch7x7x3)

        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class InceptionE(nn.Module):
    """Inception-v3 module E (8x8 grid) with expanded 1x3/3x1 branch pairs.

    Args:
        in_channels: Input channels.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)

        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))

        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))

        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """The four branches (two of them concatenated pairs), concatenated along channels."""
        branch1x1 = self.branch1x1(x)

        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)

        branch3x3dbl = self.branch3x3dbl_1(x)
        branch3x3dbl = self.branch3x3dbl_2(branch3x3dbl)
        branch3x3dbl = torch.cat(
            [self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1
        )

        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)

        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionV3Aux(nn.Module):
    """Inception-v3's auxiliary classifier (torchvision's ``inception.InceptionAux``).

    ``F.avg_pool2d`` 5x5/3, BasicConv2d 1x1 (128), BasicConv2d 5x5 (768),
    ``F.adaptive_avg_pool2d`` to 1x1, flatten, Linear(768→``num_classes``).

    Args:
        in_channels: Input channels.
        num_classes: Outputs.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Auxiliary logits."""
        x = F.avg_pool2d(x, kernel_size=5, stride=3)
        x = self.conv0(x)
        x = self.conv1(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


class InceptionOutputs(NamedTuple):
    """Inception-v3's training-mode outputs when it has the auxiliary classifier."""

    logits: Tensor
    aux_logits: Tensor | None


class Inception3(nn.Module):
    """torchvision's ``Inception3`` (Szegedy et al., 2016).

    In eval mode (or without the auxiliary head) ``forward`` returns the
    logits; in training mode with ``aux_logits`` it returns
    :class:`InceptionOutputs`, as torchvision does.

    Args:
        num_classes: Outputs of ``fc``.
        aux_logits: Build the auxiliary classifier ``AuxLogits``.
        transform_input: Re-map ImageNet-normalised inputs to the [-1, 1]
            scaling the original weights were trained with.
        dropout: Dropout probability before ``fc``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = False,
        transform_input: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits: InceptionV3Aux | None = None
        if aux_logits:
            self.AuxLogits = InceptionV3Aux(768, num_classes)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)
        if self.AuxLogits is not None:
            # torchvision marks these two layers with smaller init standard deviations.
            self.AuxLogits.conv1.conv.stddev = 0.01  # type: ignore[assignment]
            self.AuxLogits.fc.stddev = 0.001  # type: ignore[assignment]
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                stddev = float(getattr(m, "stddev", 0.1))
                nn.init.trunc_normal_(m.weight, mean=0.0, std=stddev, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor | InceptionOutputs:
        """Logits (eval mode), or :class:`InceptionOutputs` in training with the aux head."""
        if self.transform_input:
            x = _transform_input(x)
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = self.maxpool1(x)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = self.maxpool2(x)
        x = self.Mixed_5b(x)
        x = self.Mixed_5c(x)
        x = self.Mixed_5d(x)
        x = self.Mixed_6a(x)
        x = self.Mixed_6b(x)
        x = self.Mixed_6c(x)
        x = self.Mixed_6d(x)
        x = self.Mixed_6e(x)
        aux: Tensor | None = None
        if self.AuxLogits is not None and self.training:
            aux = self.AuxLogits(x)
        x = self.Mixed_7a(x)
        x = self.Mixed_7b(x)
        x = self.Mixed_7c(x)
        x = self.avgpool(x)
        x = self.dropout(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        if self.training and self.aux_logits:
            return InceptionOutputs(x, aux)
        return x


def inception_v3(
    num_classes: int = 1000, aux_logits: bool = False, transform_input: bool = False
) -> Inception3:
    """Inception-v3, as ``torchvision.models.inception_v3`` (torchvision 0.2x).

    Stem of five BasicConv2d layers and two 3x3/2 max pools, Mixed_5b-5d
    (:class:`InceptionA`), Mixed_6a (:class:`InceptionB`), Mixed_6b-6e
    (:class:`InceptionC`), Mixed_7a (:class:`InceptionD`), Mixed_7b-7c
    (:class:`InceptionE`), ``AdaptiveAvgPool2d((1, 1))``, dropout 0.5, flatten,
    ``fc``. Pooling inside the modules is functional (``F.avg_pool2d``,
    ``F.max_pool2d``) and branches join with ``torch.cat(..., 1)``.
    23,834,568 parameters at 1,000 classes without the auxiliary head
    (27,161,264 with it). torchvision's pretrained Inception-v3 uses
    ``transform_input=True``.

    Input: 3x299x299 for the ImageNet weights; any size >= 75 runs. The
    auxiliary head, when built, runs in training mode only and needs the full
    299x299 there (its 5x5 convolution needs the 17x17 grid of Mixed_6e).

    Args:
        num_classes: Number of output classes.
        aux_logits: Build the auxiliary classifier (it only runs in training mode).
        transform_input: See :class:`Inception3`.

    Returns:
        The network with torchvision's random initialisation (truncated
        normal, std 0.1).

    Raises:
        ConfigError: If ``num_classes`` is not a positive integer.
    """
    _check_num_classes(num_classes)
    return Inception3(num_classes, aux_logits=aux_logits, transform_input=transform_input)


# --- batch-norm recalibration and data -----------------------------------------------------


def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU if it has none)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _input_batches(data: object, batch_size: int) -> Iterator[Tensor]:
    """Yield input batches from a tensor, a Dataset, or an iterable of batches."""
    if isinstance(data, Tensor):
        yield from data.split(batch_size)
        return
    source: Iterable[Any]
    if isinstance(data, DataLoader) or not isinstance(data, Dataset):
        if not isinstance(data, Iterable):
            raise DataError(
                f"cannot read batches from {type(data).__name__}; pass a tensor [N, C, H, W], "
                "a Dataset of (image, label) pairs, or a DataLoader."
            )
        source = data
    else:
        source = DataLoader(data, batch_size=batch_size, shuffle=False)
    for item in source:
        batch = item[0] if isinstance(item, tuple | list) else item
        if not isinstance(batch, Tensor):
            raise DataError(
                f"expected tensor batches, got {type(batch).__name__}; the data must yield "
                "tensors or (tensor, label) pairs."
            )
        yield batch


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    data: Tensor | Dataset | Iterable[Any],
    num_batches: int | None = None,
    *,
    batch_size: int = 64,
) -> nn.Module:
    """Re-estimate every batch-norm layer's running statistics on real inputs.

    Each batch-norm layer's running mean and variance are reset and then set
    to the cumulative average (``momentum=None``) of the batch statistics
    seen while the data runs through the model. Only the batch-norm layers
    are put in training mode (dropout stays off and auxiliary heads do not
    run); gradients are off. Afterwards every module's ``training`` flag and
    every batch-norm momentum are restored, also if an error occurs.

    This gives random-weight networks realistic activation statistics, so
    that conversion and simulation behave as they would on trained ones.

    Args:
        model: The network; modified in place. A model without batch-norm
            layers is returned unchanged.
        data: A tensor ``[N, C, H, W]``, a Dataset of ``(image, label)``
            pairs, or an iterable of batches (``x`` or ``(x, y)``).
        num_batches: Use at most this many batches (all if ``None``).
        batch_size: Batch size for tensors and Datasets (ignored for iterables,
            which bring their own batches).

    Returns:
        The same model.

    Raises:
        ConfigError: If ``num_batches`` or ``batch_size`` is not a positive integer.
        DataError: If ``data`` yields no batch or is not a supported kind.
    """
    if num_batches is not None and (
        isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1
    ):
        raise ConfigError(f"num_batches must be a positive integer or None, got {num_batches!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if not norms:
        return model
    flags = {module: module.training for module in model.modules()}
    momenta = {norm: norm.momentum for norm in norms}
    device = _model_device(model)
    seen = 0
    try:
        model.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        for batch in _input_batches(data, batch_size):
            if num_batches is not None and seen >= num_batches:
                break
            if batch.shape[0] == 0:
                continue
            model(batch.to(device))
            seen += 1
    finally:
        for norm, momentum in momenta.items():
            norm.momentum = momentum
        for module, flag in flags.items():
            module.training = flag
    if seen == 0:
        raise DataError(
            "recalibrate_batchnorm got no batches (the running statistics are now reset); "
            "pass non-empty data."
        )
    return model


def fashion_mnist_rgb(
    size: int,
    split: str = "test",
    limit: int | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    chunk: int = 1000,
) -> TensorDataset:
    """Fashion-MNIST as 3-channel images of any size, for the ImageNet-shaped networks.

    Each 28x28 image (in [0, 1]) is resized to ``size`` x ``size`` with
    ``F.interpolate(mode="bilinear", align_corners=False)`` and replicated to
    three identical channels. Memory: ``N·3·size²·4`` bytes (10,000 images at
    224x224 take 6 GB; use ``limit``).

    Args:
        size: Output height and width (>= 1).
        split: ``"train"`` or ``"test"``.
        limit: Keep the first ``limit`` images in file order.
        data_dir: Directory searched first for the IDX files (see
            :func:`snnconv.data.load_dataset`).
        chunk: Images resized at once (bounds the temporary memory).

    Returns:
        A ``TensorDataset`` of float32 images ``[N, 3, size, size]`` and
        int64 labels.

    Raises:
        ConfigError: If ``size`` or ``chunk`` is not a positive integer.
        DataError: If Fashion-MNIST cannot be found or ``split``/``limit`` is invalid.
    """
    for name, value in (("size", size), ("chunk", chunk)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
    gray = load_dataset("fashion-mnist", split, data_dir=data_dir, limit=limit)
    images, labels = gray.tensors
    out = torch.empty((images.shape[0], 3, size, size), dtype=torch.float32)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk]
        resized = F.interpolate(block, size=(size, size), mode="bilinear", align_corners=False)
        out[start : start + chunk] = resized.expand(-1, 3, -1, -1)
    return TensorDataset(out, labels)
