"""Small reference CNNs, a deterministic training loop, and weight files.

The LeNet- and VGG-style networks use only layers the converter supports
(convolution, linear, ReLU, average/max pooling, batch normalisation,
dropout, flatten), so they serve as examples, test fixtures and benchmarks.
A small ResNet (residual adds) and a small Inception-style net (branches
concatenated along channels, overlapping max pools) cover the operations of
deeper architectures at Fashion-MNIST size. The paper's reference networks
are here too: the CIFAR-10 convnet of
Rueckauer et al. (2017) and a small BinaryNet (Courbariaux et al., 2016)
with binary weights and binary activations.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Literal, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset
from tqdm import tqdm

from snnconv.errors import ConfigError, DataError, ModelLoadError
from snnconv.outputs import atomic_write

__all__ = [
    "PRETRAINED_LENET_FILE",
    "BinaryConv2d",
    "BinaryLinear",
    "HeavisideSTE",
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

_ModelT = TypeVar("_ModelT", bound=nn.Module)

#: File name of the shipped LeNet checkpoint inside ``snnconv/zoo_weights``.
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

    conv 3x3 (16) - BN - ReLU, three stages of one :class:`~snnconv.architectures.BasicBlock`
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
    from snnconv.architectures import CifarResNet

    _check_dims(in_channels, num_classes, 4)
    return CifarResNet(1, num_classes=num_classes, in_channels=in_channels)


class InceptionSmall(nn.Module):
    """A small Inception-style CNN (see :func:`inception_small`)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        from snnconv.architectures import BasicConv2d, Inception

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


def _straight_through(x: torch.Tensor, binary: torch.Tensor) -> torch.Tensor:
    """``binary`` in the forward pass; the gradient of ``clamp(x, -1, 1)`` backwards.

    The clamp makes the estimator the "hard tanh" straight-through estimator
    of Courbariaux et al. (2016): the gradient passes where |x| <= 1 and is
    cancelled elsewhere.
    """
    clipped = x.clamp(-1.0, 1.0)
    return clipped + (binary - clipped).detach()


class SignSTE(nn.Module):
    """Binary activation ``sign(x)`` with a straight-through gradient in training.

    Forward: ``torch.sign(x)`` (±1; exactly 0 only where x is exactly 0).
    Backward in training mode: the gradient of ``clamp(x, -1, 1)``. In eval
    mode the module is just ``torch.sign(x)``, which is what a converter sees.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """sign(x), with the straight-through gradient in training mode."""
        if self.training:
            return _straight_through(x, torch.sign(x))
        return torch.sign(x)


class HeavisideSTE(nn.Module):
    """Binary activation ``H(x) = 1 if x > 0 else 0`` with a straight-through gradient.

    Forward: ``(x > 0).float()``, a float32 tensor of 0s and 1s (spikes, in
    effect). Backward in training mode: the gradient of ``clamp(x, -1, 1)``.
    In eval mode the module is just ``(x > 0).float()``, which is what a
    converter sees.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """H(x), with the straight-through gradient in training mode."""
        step = (x > 0).float()
        if self.training:
            return _straight_through(x, step)
        return step


class BinaryConv2d(nn.Conv2d):
    """2-D convolution whose effective weights are ``sign(weight)``.

    The real-valued ``weight`` is the latent weight that training updates;
    the forward pass uses its sign (±1), with the straight-through gradient
    of :class:`SignSTE` in training mode. The bias stays real-valued.
    :func:`binarize_weights` turns it into a plain ``nn.Conv2d`` with ±1
    weights for conversion.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Convolution with ``sign(weight)``."""
        weight = self.weight
        binary = torch.sign(weight)
        if self.training:
            binary = _straight_through(weight, binary)
        return self._conv_forward(input, binary, self.bias)


class BinaryLinear(nn.Linear):
    """Linear layer whose effective weights are ``sign(weight)``.

    See :class:`BinaryConv2d`; :func:`binarize_weights` turns it into a plain
    ``nn.Linear`` with ±1 weights.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Affine map with ``sign(weight)``."""
        binary = torch.sign(self.weight)
        if self.training:
            binary = _straight_through(self.weight, binary)
        return nn.functional.linear(input, binary, self.bias)


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


@torch.no_grad()
def binarize_weights(model: _ModelT) -> _ModelT:
    """Replace every binary layer by a plain layer holding ``sign`` of its latent weights.

    Each :class:`BinaryConv2d` / :class:`BinaryLinear` submodule becomes an
    ``nn.Conv2d`` / ``nn.Linear`` with the same hyper-parameters, weights
    ``sign(weight)`` (±1) and the same bias, so the model computes the same
    function in eval mode with ordinary layers, which is what conversion
    needs. The model is changed in place; training it further afterwards
    trains real-valued weights.

    Args:
        model: A model containing binary layers (others are left alone).

    Returns:
        The same model, in the training mode it had.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            plain: nn.Module
            if isinstance(child, BinaryConv2d):
                plain = nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,  # type: ignore[arg-type]
                    stride=child.stride,  # type: ignore[arg-type]
                    padding=child.padding,  # type: ignore[arg-type]
                    dilation=child.dilation,  # type: ignore[arg-type]
                    groups=child.groups,
                    bias=child.bias is not None,
                    padding_mode=child.padding_mode,
                )
            elif isinstance(child, BinaryLinear):
                plain = nn.Linear(
                    child.in_features, child.out_features, bias=child.bias is not None
                )
            else:
                continue
            plain = plain.to(device=child.weight.device, dtype=child.weight.dtype)
            plain.weight.copy_(torch.sign(child.weight))
            if child.bias is not None and plain.bias is not None:
                plain.bias.copy_(child.bias)
            plain.train(child.training)
            setattr(parent, name, plain)
    return model


def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU if it has none)."""
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def train(
    model: _ModelT,
    train_set: Dataset,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> _ModelT:
    """Train a classifier with Adam and cross-entropy loss.

    Training is deterministic for a given ``seed`` and initial model: the
    global torch seed is set to ``seed`` (for dropout) and the data is
    shuffled by a ``torch.Generator`` seeded with ``seed``. Batches are moved
    to the model's device.

    Args:
        model: The network; trained in place.
        train_set: Dataset of ``(image, label)`` pairs, ideally a
            ``TensorDataset`` (batched by fancy indexing, which is fast).
        epochs: Number of passes over the data (0 leaves the model unchanged).
        batch_size: Mini-batch size; the last batch may be smaller.
        lr: Adam learning rate.
        seed: Seed for shuffling and dropout.
        progress: Show a tqdm progress bar per epoch.

    Returns:
        The same model, in eval mode.

    Raises:
        ConfigError: If ``epochs``, ``batch_size`` or ``lr`` is out of range.
        DataError: If ``train_set`` is empty.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ConfigError(f"epochs must be an integer >= 0, got {epochs!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if not lr > 0:
        raise ConfigError(f"lr must be > 0, got {lr!r}.")
    if len(train_set) == 0:  # type: ignore[arg-type]
        raise DataError("the training set is empty; load a dataset with at least one sample.")

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    if isinstance(train_set, TensorDataset):
        # Index the tensors with a whole batch of indices at once.
        sampler = BatchSampler(
            RandomSampler(train_set, generator=generator), batch_size, drop_last=False
        )
        loader = DataLoader(train_set, sampler=sampler, batch_size=None)
    else:
        loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=generator)

    device = _model_device(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        batches = tqdm(
            loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False
        )
        for images, labels in batches:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            if progress:
                batches.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return model


@torch.no_grad()
def accuracy(model: nn.Module, dataset: Dataset, batch_size: int = 1000) -> float:
    """Top-1 accuracy of a classifier.

    The model is evaluated in eval mode without gradients; its previous
    training/eval mode is restored afterwards.

    Args:
        model: The classifier.
        dataset: Dataset of ``(image, label)`` pairs.
        batch_size: Evaluation batch size.

    Returns:
        The fraction of samples whose arg-max output equals the label.

    Raises:
        ConfigError: If ``batch_size`` is not positive.
        DataError: If ``dataset`` is empty.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise DataError("the dataset is empty; cannot compute accuracy.")
    was_training = model.training
    model.eval()
    device = _model_device(model)
    correct = 0
    total = 0
    try:
        for images, labels in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            predicted = model(images.to(device)).argmax(dim=1).cpu()
            correct += int((predicted == labels).sum())
            total += int(labels.numel())
    finally:
        model.train(was_training)
    return correct / total


def save_weights(
    model: nn.Module, path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> Path:
    """Save a model's state dict as a safetensors file, atomically.

    The file is written to a temporary file in the same directory and then
    renamed over ``path``, so readers never see a partial file. Missing
    parent directories are created. A new file gets the mode the umask gives;
    an overwritten file keeps its mode.

    Args:
        model: The model whose ``state_dict()`` is saved (parameters and buffers).
        path: Destination file, conventionally ending in ``.safetensors``.
        metadata: Optional string key/value pairs stored in the file header.

    Returns:
        The destination path.
    """
    destination = Path(path).expanduser()
    destination.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        key: value.detach().to("cpu").contiguous().clone()
        for key, value in model.state_dict().items()
    }
    return atomic_write(destination, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_weights(model: _ModelT, path: str | os.PathLike[str]) -> _ModelT:
    """Load a safetensors state dict into a model (strictly: keys must match).

    Args:
        model: A model of the architecture the weights were saved from.
        path: The ``.safetensors`` file.

    Returns:
        The same model with the loaded weights.

    Raises:
        ModelLoadError: If the file is missing or unreadable, or its tensors
            do not match the model's parameters and buffers.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise ModelLoadError(f"{source}: weight file not found. Check the path.")
    try:
        state = load_file(str(source), device=str(_model_device(model)))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{source}: cannot read as a safetensors file ({exc}). Save the weights with "
            "snnconv.zoo.save_weights or safetensors.torch.save_file."
        ) from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"{source}: the weights do not fit the model ({exc}). Build the same architecture "
            "(and sizes) that the weights were trained with."
        ) from exc
    return model


def load_pretrained_lenet() -> nn.Sequential:
    """Load the shipped LeNet (average pooling) trained on Fashion-MNIST.

    The checkpoint ``snnconv/zoo_weights/lenet_avg_fmnist.safetensors`` fits
    ``lenet("avg")`` (1 input channel, 10 classes, 28x28 images) and expects
    inputs scaled to [0, 1] without further normalisation.

    Returns:
        The network in eval mode.

    Raises:
        ModelLoadError: If the checkpoint is missing from the installation.
    """
    resource = importlib.resources.files("snnconv") / "zoo_weights" / PRETRAINED_LENET_FILE
    if not resource.is_file():
        raise ModelLoadError(
            f"the pretrained checkpoint {PRETRAINED_LENET_FILE} is missing from the snnconv "
            "installation. Reinstall snnconv, or train it with "
            "`python benchmarks/train_reference.py` and copy lenet_avg.safetensors to "
            f"src/snnconv/zoo_weights/{PRETRAINED_LENET_FILE}."
        )
    model = lenet("avg")
    with importlib.resources.as_file(resource) as weights_path:
        load_weights(model, weights_path)
    return model.eval()
