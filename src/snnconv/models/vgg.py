"""VGG-16 and VGG-11 with batch normalisation, as ``torchvision.models`` (0.2x) module
for module (why re-implemented, and how tested against torchvision: :mod:`snnconv.models`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from snnconv.models._checks import check_num_classes

__all__ = ["VGG", "vgg11_bn", "vgg16_bn"]

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
    check_num_classes(num_classes)
    return VGG(_vgg_features(_VGG_CFGS["D"], batch_norm=True), num_classes=num_classes)


def vgg11_bn(num_classes: int = 1000) -> VGG:
    """VGG-11 with batch normalisation (Simonyan & Zisserman, 2015).

    Mirrors ``torchvision.models.vgg11_bn`` (torchvision 0.2x; configuration
    "A"): 8 conv3x3-BN-ReLU layers (64, M, 128, M, 256, 256, M, 512, 512, M,
    512, 512, M), ``AdaptiveAvgPool2d((7, 7))`` and the same classifier as
    :func:`vgg16_bn`. 132,868,840 parameters at 1,000 classes. Input, argument,
    result and errors as :func:`vgg16_bn`.
    """
    check_num_classes(num_classes)
    return VGG(_vgg_features(_VGG_CFGS["A"], batch_norm=True), num_classes=num_classes)
