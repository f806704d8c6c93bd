"""Small reference CNNs and the shipped LeNet checkpoint.

The LeNet- and VGG-style networks use only layers the converter supports
(convolution, linear, ReLU, average/max pooling, batch normalisation,
dropout, flatten), so they serve as examples, test fixtures and benchmarks.
A small ResNet (residual adds) and a small Inception-style net (branches
concatenated along channels, overlapping max pools) cover the operations of
deeper architectures at Fashion-MNIST size. The paper's reference networks
are here too: the CIFAR-10 convnet of
Rueckauer et al. (2017) and a small BinaryNet (Courbariaux et al., 2016)
with binary weights and binary activations (:mod:`snnconv.models.binary`).
The trained LeNet ships in ``snnconv/models/weights``.
"""

from __future__ import annotations

import importlib.resources
from typing import Literal

import torch
from torch import nn

from snnconv.errors import ConfigError, ModelLoadError
from snnconv.models.binary import BinaryConv2d, BinaryLinear, HeavisideSTE, SignSTE
from snnconv.models.googlenet import BasicConv2d, Inception
from snnconv.models.resnet import CifarResNet
from snnconv.models.training import load_weights

__all__ = [
    "PRETRAINED_LENET_FILE",
    "InceptionSmall",
    "binarynet",
    "cifar_convnet",
    "inception_small",
    "lenet",
    "load_pretrained_lenet",
    "resnet_small",
    "vgg_small",
]

#: File name of the shipped LeNet checkpoint inside ``snnconv/models/weights``.
PRETRAINED_LENET_FILE = "lenet_avg_fmnist.safetensors"


def _check_dims(in_channels: int, num_classes: int, image_size: int) -> None:
    """Validate the constructor arguments shared by the zoo networks."""
    for name, value, low in (
        ("in_channels", in_channels, 1),
        ("num_classes", num_classes, 2),
        ("image_size", image_size, 4),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}.")


def lenet(
    pool: Literal["avg", "max"] = "avg",
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
) -> nn.Sequential:
    """Build a LeNet-style CNN.

    Layers: conv 5x5 (``in_channels``→16, padding 2), ReLU, pool 2x2,
    conv 5x5 (16→32, padding 2), ReLU, pool 2x2, flatten,
    linear (32·(s/4)²→128), ReLU, linear (128→``num_classes``), where s is
    ``image_size`` and s/4 rounds down. Every layer has a bias.

    Args:
        pool: ``"avg"`` for average pooling or ``"max"`` for max pooling.
        in_channels: Number of input channels.
        num_classes: Number of output classes.
        image_size: Height and width of the (square) input images.

    Returns:
        The untrained network as an ``nn.Sequential``.

    Raises:
        ConfigError: If ``pool`` is unknown or a size is out of range.
    """
    if pool not in ("avg", "max"):
        raise ConfigError(f"pool must be 'avg' or 'max', got {pool!r}.")
    _check_dims(in_channels, num_classes, image_size)

    def pooling() -> nn.Module:
        return nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2)

    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, kernel_size=5, padding=2),
        nn.ReLU(),
        pooling(),
        nn.Conv2d(16, 32, kernel_size=5, padding=2),
        nn.ReLU(),
        pooling(),
        nn.Flatten(),
        nn.Linear(32 * side * side, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


def vgg_small(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Sequential:
    """Build a small VGG-style CNN with batch normalisation and dropout.

    Layers: [conv 3x3 (padding 1), batch norm, ReLU] x2 with 16 channels,
    average pool 2x2, [conv 3x3, batch norm, ReLU] x2 with 32 channels,
    average pool 2x2, flatten, dropout 0.2, linear (32·(s/4)²→128), ReLU,
    dropout 0.2, linear (128→``num_classes``), where s is ``image_size``.
    Convolutions keep their bias (folded into the batch norm on conversion).

    Args:
        in_channels: Number of input channels.
        num_classes: Number of output classes.
        image_size: Height and width of the (square) input images.

    Returns:
        The untrained network as an ``nn.Sequential``.

    Raises:
        ConfigError: If a size is out of range.
    """
    _check_dims(in_channels, num_classes, image_size)

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    side = image_size // 4
    return nn.Sequential(
        *block(in_channels, 16),
        *block(16, 16),
        nn.AvgPool2d(2),
        *block(16, 32),
        *block(32, 32),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(32 * side * side, 128),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(128, num_classes),
    )


def resnet_small(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """Build ResNet-8: the CIFAR ResNet of He et al. (2016) with one block per stage.

    conv 3x3 (16) - BN - ReLU, three stages of one :class:`~snnconv.models.resnet.BasicBlock`
    each (16, 32, 64 channels, stride 2 at the start of the second and third,
    conv1x1 + BN projection shortcuts where the shape changes), global
    average pooling, flatten, linear. Seven convolutions and three residual
    adds; 77,754 parameters at one input channel and 10 classes. Any input
    size >= 4 runs (28x28 for Fashion-MNIST gives 28, 14 and 7 pixel stages).

    Args:
        in_channels: Number of input channels.
        num_classes: Number of output classes.

    Returns:
        The untrained network (Kaiming initialisation).

    Raises:
        ConfigError: If a size is out of range.
    """
    _check_dims(in_channels, num_classes, 4)
    return CifarResNet(1, num_classes=num_classes, in_channels=in_channels)


class InceptionSmall(nn.Module):
    """A small Inception-style CNN (see :func:`inception_small`)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = BasicConv2d(in_channels, 32, kernel_size=3, padding=1)
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception1 = Inception(32, 16, 16, 32, 8, 16, 16)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception2 = Inception(80, 32, 32, 48, 8, 24, 24)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, pool, inception, pool, inception, global average pool, ``fc``."""
        x = self.pool1(self.stem(x))
        x = self.pool2(self.inception1(x))
        x = self.inception2(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def inception_small(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """Build a small Inception-style CNN with GoogLeNet's inception modules.

    conv 3x3 (32) - BN - ReLU, max pool 3x3/2 (``ceil_mode``), an inception
    module (branches 1x1 16; 1x1 16 → 3x3 32; 1x1 8 → 3x3 16; max pool 3x3/1
    → 1x1 16; concatenated to 80 channels), max pool 3x3/2, a second module
    (32; 32 → 48; 8 → 24; pool → 24: 128 channels), global average pooling,
    flatten, linear. Its max pools overlap (stride < kernel), as in GoogLeNet
    and Inception-v3, and each module concatenates four differently
    normalized branches. 32,970 parameters at one input channel and 10
    classes; 28x28 inputs give 28, 14 and 7 pixel stages.

    Args:
        in_channels: Number of input channels.
        num_classes: Number of output classes.

    Returns:
        The untrained network.

    Raises:
        ConfigError: If a size is out of range.
    """
    _check_dims(in_channels, num_classes, 4)
    return InceptionSmall(in_channels, num_classes)


def cifar_convnet(
    num_classes: int = 10,
    pool: Literal["max", "avg"] = "max",
    in_channels: int = 3,
    image_size: int = 32,
) -> nn.Sequential:
    """Build the CIFAR-10 convnet of Rueckauer et al. (2017).

    Our reading of the network in the SNN Toolbox examples, which follows the
    Keras ``cifar10_cnn`` example: conv 3x3 (``in_channels``→32, padding 1),
    ReLU, conv 3x3 (32→32, no padding), ReLU, pool 2x2, dropout 0.25,
    conv 3x3 (32→64, padding 1), ReLU, conv 3x3 (64→64, no padding), ReLU,
    pool 2x2, dropout 0.25, flatten, linear (→512), ReLU, dropout 0.5,
    linear (512→``num_classes``). At 32x32 the flattened size is 64·6·6 =
    2304. Every layer has a bias.

    Args:
        num_classes: Number of output classes.
        pool: ``"max"`` (the original) or ``"avg"`` pooling.
        in_channels: Number of input channels.
        image_size: Height and width of the (square) input images (>= 12).

    Returns:
        The untrained network as an ``nn.Sequential``.

    Raises:
        ConfigError: If ``pool`` is unknown or a size is out of range.
    """
    if pool not in ("avg", "max"):
        raise ConfigError(f"pool must be 'avg' or 'max', got {pool!r}.")
    _check_dims(in_channels, num_classes, image_size)
    if image_size < 12:
        raise ConfigError(f"image_size must be an integer >= 12, got {image_size!r}.")

    def pooling() -> nn.Module:
        return nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2)

    side = ((image_size - 2) // 2 - 2) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, kernel_size=3),
        nn.ReLU(),
        pooling(),
        nn.Dropout(0.25),
        nn.Conv2d(32, 64, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, kernel_size=3),
        nn.ReLU(),
        pooling(),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * side * side, 512),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(512, num_classes),
    )


def binarynet(
    num_classes: int = 10,
    in_channels: int = 3,
    activation: Literal["sign", "heaviside"] = "sign",
    image_size: int = 32,
    pool: Literal["max", "avg"] = "max",
) -> nn.Sequential:
    """Build a small BinaryNet (Courbariaux et al., 2016) with binary weights and activations.

    Layers: binary conv 3x3 (``in_channels``→32, padding 1), batch norm,
    binary activation, pool 2x2, binary conv 3x3 (32→64, padding 1), batch
    norm, binary activation, pool 2x2, flatten, binary linear
    (64·(s/4)²→256), batch norm, binary activation, binary linear
    (256→``num_classes``), where s is ``image_size`` (s/4 rounds down). The
    input image itself is not binarised (as in the paper); every weight is
    ±1 at inference. Trains with :func:`train` (Adam on the latent weights)
    in a minute or two on Fashion-MNIST with 2 CPU cores.

    Args:
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        activation: ``"sign"`` (±1, :class:`SignSTE`) or ``"heaviside"``
            (0/1, :class:`HeavisideSTE`).
        image_size: Height and width of the (square) input images.
        pool: ``"max"`` (the paper's) or ``"avg"`` pooling.

    Returns:
        The untrained network as an ``nn.Sequential``.

    Raises:
        ConfigError: If ``activation`` or ``pool`` is unknown or a size is out of range.
    """
    if activation not in ("sign", "heaviside"):
        raise ConfigError(f"activation must be 'sign' or 'heaviside', got {activation!r}.")
    if pool not in ("avg", "max"):
        raise ConfigError(f"pool must be 'avg' or 'max', got {pool!r}.")
    _check_dims(in_channels, num_classes, image_size)

    def act() -> nn.Module:
        return SignSTE() if activation == "sign" else HeavisideSTE()

    def pooling() -> nn.Module:
        return nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2)

    side = image_size // 4
    return nn.Sequential(
        BinaryConv2d(in_channels, 32, kernel_size=3, padding=1),
        nn.BatchNorm2d(32),
        act(),
        pooling(),
        BinaryConv2d(32, 64, kernel_size=3, padding=1),
        nn.BatchNorm2d(64),
        act(),
        pooling(),
        nn.Flatten(),
        BinaryLinear(64 * side * side, 256),
        nn.BatchNorm1d(256),
        act(),
        BinaryLinear(256, num_classes),
    )


def load_pretrained_lenet() -> nn.Sequential:
    """Load the shipped LeNet (average pooling) trained on Fashion-MNIST.

    The checkpoint ``snnconv/models/weights/lenet_avg_fmnist.safetensors`` fits
    ``lenet("avg")`` (1 input channel, 10 classes, 28x28 images) and expects
    inputs scaled to [0, 1] without further normalisation.

    Returns:
        The network in eval mode.

    Raises:
        ModelLoadError: If the checkpoint is missing from the installation.
    """
    resource = importlib.resources.files("snnconv.models") / "weights" / PRETRAINED_LENET_FILE
    if not resource.is_file():
        raise ModelLoadError(
            f"the pretrained checkpoint {PRETRAINED_LENET_FILE} is missing from the snnconv "
            "installation. Reinstall snnconv, or train it with "
            "`python benchmarks/train_reference.py` and copy lenet_avg.safetensors to "
            f"src/snnconv/models/weights/{PRETRAINED_LENET_FILE}."
        )
    model = lenet("avg")
    with importlib.resources.as_file(resource) as weights_path:
        load_weights(model, weights_path)
    return model.eval()
