"""Inception-v3, as ``torchvision.models.inception_v3`` (0.2x) module for module, with its
functional pooling (``F.avg_pool2d``, ``F.max_pool2d``) and branch concatenations
(why re-implemented, and how tested against torchvision: :mod:`snnconv.models`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snnconv.models._checks import chain, check_num_classes
from snnconv.models.googlenet import BasicConv2d, _transform_input

__all__ = [
    "Inception3",
    "InceptionA",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionOutputs",
    "InceptionV3Aux",
    "inception_v3",
]


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
        branches = [
            self.branch1x1(x),
            chain(self, ("branch5x5_1", "branch5x5_2"), x),
            chain(self, ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"), x),
            self.branch_pool(_avg3x3(x)),
        ]
        return torch.cat(branches, 1)


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
        branches = [
            self.branch3x3(x),
            chain(self, ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"), x),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ]
        return torch.cat(branches, 1)


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
        branches = [
            self.branch1x1(x),
            chain(self, [f"branch7x7_{i}" for i in range(1, 4)], x),
            chain(self, [f"branch7x7dbl_{i}" for i in range(1, 6)], x),
            self.branch_pool(_avg3x3(x)),
        ]
        return torch.cat(branches, 1)


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
        branches = [
            chain(self, ("branch3x3_1", "branch3x3_2"), x),
            chain(self, [f"branch7x7x3_{i}" for i in range(1, 5)], x),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ]
        return torch.cat(branches, 1)


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
        branch3x3 = self.branch3x3_1(x)
        branch3x3dbl = chain(self, ("branch3x3dbl_1", "branch3x3dbl_2"), x)
        branches = [
            self.branch1x1(x),
            torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1),
            torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1),
            self.branch_pool(_avg3x3(x)),
        ]
        return torch.cat(branches, 1)


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


def _avg3x3(x: Tensor) -> Tensor:
    """The pooling branch's 3x3/1 average pool (padding 1)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)


#: Inception-v3's stem, in order.
_STEM = (
    "Conv2d_1a_3x3",
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "maxpool1",
    "Conv2d_3b_1x1",
    "Conv2d_4a_3x3",
    "maxpool2",
)


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
        x = chain(self, _STEM, x)
        x = chain(self, ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a"), x)
        x = chain(self, ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"), x)
        aux = self.AuxLogits(x) if self.AuxLogits is not None and self.training else None
        x = chain(self, ("Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool", "dropout"), x)
        x = self.fc(torch.flatten(x, 1))
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
    check_num_classes(num_classes)
    return Inception3(num_classes, aux_logits=aux_logits, transform_input=transform_input)
