"""ResNet-18 as ``torchvision.models.resnet18`` (0.2x) module for module, with its in-place
residual add (``out += identity``), and the CIFAR ResNet-20 of He et al. (2016) built from
the same blocks (why re-implemented, and how tested against torchvision: :mod:`snnconv.models`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from snnconv.errors import ConfigError
from snnconv.models._checks import chain, check_num_classes

__all__ = ["BasicBlock", "CifarResNet", "ResNet", "resnet18", "resnet20_cifar"]


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
        x = chain(self, ("conv1", "bn1", "relu", "maxpool"), x)
        x = chain(self, ("layer1", "layer2", "layer3", "layer4", "avgpool"), x)
        return self.fc(torch.flatten(x, 1))


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
    check_num_classes(num_classes)
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
        x = chain(self, ("conv1", "bn1", "relu", "layer1", "layer2", "layer3", "avgpool"), x)
        return self.fc(torch.flatten(x, 1))


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
    check_num_classes(num_classes)
    return CifarResNet(3, num_classes=num_classes)
