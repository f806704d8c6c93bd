"""GoogLeNet (Inception v1), as ``torchvision.models.googlenet`` (0.2x) module for module.

Why it is re-implemented rather than imported, what "module for module" keeps
(a torchvision ``state_dict`` loads with ``strict=True``), and how it is
tested against torchvision: see :mod:`snnconv.models`. Its
:class:`BasicConv2d` is also the building block of Inception-v3
(:mod:`snnconv.models.inception_v3`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snnconv.models._checks import chain, check_num_classes

__all__ = [
    "BasicConv2d",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "Inception",
    "InceptionAux",
    "googlenet",
]


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
        x = chain(self, ("conv1", "maxpool1", "conv2", "conv3", "maxpool2"), x)
        x = chain(self, ("inception3a", "inception3b", "maxpool3", "inception4a"), x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = chain(self, ("inception4b", "inception4c", "inception4d"), x)
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = chain(self, ("inception4e", "maxpool4", "inception5a", "inception5b", "avgpool"), x)
        x = self.fc(self.dropout(torch.flatten(x, 1)))
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
    check_num_classes(num_classes)
    return GoogLeNet(num_classes, aux_logits=aux_logits, transform_input=transform_input)
