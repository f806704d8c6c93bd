"""Tiny models for the tests, written in every spelling the importers must accept.

Every model exposes ``in_shape`` (one sample's input shape) and is small enough
to run in milliseconds. Models with batch-norm get random, non-trivial running
statistics and affine parameters so that folding and import are really tested.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IN_SHAPE = (1, 8, 8)


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch-norm layer of ``model`` random running stats and affine params."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=gen))
                m.running_var.copy_(torch.rand(c, generator=gen) * 2 + 0.1)
                if m.affine:
                    m.weight.copy_(torch.randn(c, generator=gen))
                    m.bias.copy_(torch.randn(c, generator=gen))
    return model


def _flat_size(layers: nn.Module, in_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return layers(torch.zeros(1, *in_shape)).numel()


class ConvNet(nn.Module):
    """conv (any hyper-parameters) → ReLU → flatten → linear."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 4,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        size: int = 8,
        classes: int = 3,
    ):
        super().__init__()
        self.in_shape = (in_channels, size, size)
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(_flat_size(self.conv, self.in_shape), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.relu(self.conv(x))))


class MLP(nn.Module):
    """flatten → linear → ReLU → linear (either linear optionally without bias)."""

    def __init__(self, hidden: int = 6, bias: bool = True, classes: int = 3):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64, hidden, bias=bias)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


RELU_SPELLINGS: dict[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    "nn.ReLU": lambda m, x: m.relu(x),
    "nn.ReLU(inplace=True)": lambda m, x: m.relu_inplace(x),
    "F.relu": lambda m, x: F.relu(x),
    "F.relu(inplace=True)": lambda m, x: F.relu(x, inplace=True),
    "torch.relu": lambda m, x: torch.relu(x),
    "x.relu()": lambda m, x: x.relu(),
}


class ReluSpelling(nn.Module):
    """conv → ReLU (spelled one of :data:`RELU_SPELLINGS`) → flatten → linear."""

    def __init__(self, spelling: str):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.spelling = spelling
        self.conv = nn.Conv2d(1, 2, 3)
        self.relu = nn.ReLU()
        self.relu_inplace = nn.ReLU(inplace=True)
        self.fc = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = RELU_SPELLINGS[self.spelling](self, self.conv(x))
        return self.fc(x.flatten(1))


FLATTEN_SPELLINGS: dict[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    "nn.Flatten": lambda m, x: m.flatten(x),
    "torch.flatten": lambda m, x: torch.flatten(x, 1),
    "x.flatten(1)": lambda m, x: x.flatten(1),
    "x.view(x.size(0), -1)": lambda m, x: x.view(x.size(0), -1),
    "x.reshape(x.size(0), -1)": lambda m, x: x.reshape(x.size(0), -1),
    "x.reshape(x.shape[0], -1)": lambda m, x: x.reshape(x.shape[0], -1),
    "torch.reshape(x, (n, -1))": lambda m, x: torch.reshape(x, (x.size(0), -1)),
}


class FlattenSpelling(nn.Module):
    """conv → ReLU → flatten (spelled one of :data:`FLATTEN_SPELLINGS`) → linear."""

    def __init__(self, spelling: str):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.spelling = spelling
        self.conv = nn.Conv2d(1, 2, 3)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        return self.fc(FLATTEN_SPELLINGS[self.spelling](self, x))


class ConvBN(nn.Module):
    """conv → BatchNorm2d → ReLU → flatten → linear (random BN statistics)."""

    def __init__(self, bias: bool = True, affine: bool = True):
        super().__init__()
        self.in_shape = (2, 8, 8)
        self.conv = nn.Conv2d(2, 4, 3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(4, affine=affine)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 3)
        randomize_batchnorm(self, seed=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.relu(self.bn(self.conv(x))), 1))


class LinearBN(nn.Module):
    """flatten → linear → BatchNorm1d → ReLU → linear (random BN statistics)."""

    def __init__(self, bias: bool = True):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.fc1 = nn.Linear(64, 8, bias=bias)
        self.bn = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 3)
        randomize_batchnorm(self, seed=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.bn(self.fc1(x.flatten(1)))))


class StandaloneBN(nn.Module):
    """BatchNorm2d on the input, and BatchNorm1d after a ReLU: neither follows a conv/linear."""

    def __init__(self):
        super().__init__()
        self.in_shape = (2, 8, 8)
        self.bn_in = nn.BatchNorm2d(2)
        self.conv = nn.Conv2d(2, 3, 3)
        self.fc1 = nn.Linear(3 * 6 * 6, 8)
        self.bn_hidden = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 3)
        randomize_batchnorm(self, seed=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(self.bn_in(x)))
        x = self.bn_hidden(torch.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


class ConvBNBN(nn.Module):
    """conv → BatchNorm2d → BatchNorm2d → ReLU → flatten → linear: two folds in a row."""

    def __init__(self):
        super().__init__()
        self.in_shape = (2, 6, 6)
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3)
        self.bn2 = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 6 * 6, 3)
        randomize_batchnorm(self, seed=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn2(self.bn1(self.conv(x)))).flatten(1))


POOLS: dict[str, tuple[nn.Module | None, int]] = {
    # name: (module or None for the functional spelling, flattened size after conv 3x3 on 8x8)
    "nn.AvgPool2d(2)": (nn.AvgPool2d(2), 4 * 3 * 3),
    "nn.AvgPool2d(3, 2, 1, ceil, no pad count)": (
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        4 * 4 * 4,
    ),
    "nn.AvgPool2d(2, divisor_override=3)": (nn.AvgPool2d(2, divisor_override=3), 4 * 3 * 3),
    "F.avg_pool2d(x, 2)": (None, 4 * 3 * 3),
    "nn.AdaptiveAvgPool2d(1)": (nn.AdaptiveAvgPool2d(1), 4),
    "nn.AdaptiveAvgPool2d((3, 2))": (nn.AdaptiveAvgPool2d((3, 2)), 4 * 3 * 2),
}


class PoolNet(nn.Module):
    """conv → ReLU → pooling (one of :data:`POOLS`) → flatten → linear."""

    def __init__(self, name: str):
        super().__init__()
        self.in_shape = IN_SHAPE
        pool, flat = POOLS[name]
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool = pool
        self.fc = nn.Linear(flat, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        x = F.avg_pool2d(x, 2) if self.pool is None else self.pool(x)
        return self.fc(x.flatten(1))


class DropoutIdentityNet(nn.Module):
    """conv → ReLU → nn.Dropout → Identity → F.dropout(training=self.training) → linear."""

    def __init__(self):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.conv = nn.Conv2d(1, 2, 3)
        self.drop = nn.Dropout(0.3)
        self.identity = nn.Identity()
        self.fc = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.identity(self.drop(torch.relu(self.conv(x))))
        x = F.dropout(x, 0.5, self.training)
        return self.fc(x.flatten(1))


class Block(nn.Module):
    """A sub-module with its own forward: conv → BN → ReLU → AvgPool2d."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.bn(self.conv(x))))


class NestedNet(nn.Module):
    """Nested Sequentials and sub-modules: ``features`` / ``classifier`` like torchvision."""

    def __init__(self):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU()),
            Block(3, 4),
            nn.Identity(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(4 * 4 * 4, 8),
            nn.ReLU(inplace=True),
            nn.Linear(8, 3),
        )
        randomize_batchnorm(self, seed=5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def tiny_cnn(seed: int = 0, classes: int = 3) -> nn.Sequential:
    """A 2-conv CNN for pipeline and simulator tests (input 1×8×8)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(6 * 4 * 4, 10),
        nn.ReLU(),
        nn.Linear(10, classes),
    )
    model.in_shape = IN_SHAPE  # type: ignore[assignment]
    return randomize_batchnorm(model, seed)


def tiny_npz(path: Path, samples: int, seed: int = 0) -> Path:
    """A random labelled data set for :func:`tiny_cnn` (8×8, 3 classes) as an .npz file."""
    generator = torch.Generator().manual_seed(seed)
    np.savez(
        path,
        x=torch.rand(samples, *IN_SHAPE, generator=generator).numpy(),
        y=torch.randint(0, 3, (samples,), generator=generator).numpy(),
    )
    return path


def tiny_run(data: Path, out: Path, *extra: str) -> list[str]:
    """The arguments of ``snnconv run`` for :func:`tiny_cnn` with its random weights on
    the .npz ``data``, on the CPU, writing ``out``."""
    return [
        "run", "tests.models:tiny_cnn", "--random-weights", "--dataset", f"npz:{data}",
        "--device", "cpu", "--out", str(out), *extra,
    ]  # fmt: skip


def tiny_rgb_cnn(seed: int = 0, classes: int = 3) -> nn.Sequential:
    """A 2-conv CNN for colour images of any size >= 4×4 (global average pooling)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, classes),
    )


# -- models that must be refused ----------------------------------------------
class GeluNet(nn.Module):
    """An nn.GELU at ``features.2``."""

    def __init__(self):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.GELU())
        self.fc = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class SigmoidHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.sigmoid(x.flatten(1)))


class SigmoidNet(nn.Module):
    """``torch.sigmoid`` called inside the sub-module ``head``."""

    def __init__(self):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.conv = nn.Conv2d(1, 2, 3)
        self.head = SigmoidHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


class LSTMNet(nn.Module):
    """An nn.LSTM at ``rnn`` over the image rows."""

    def __init__(self):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.rnn = nn.LSTM(8, 4, batch_first=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x.flatten(1, 2))
        return self.fc(y[:, -1])


class BatchMixingReshape(nn.Module):
    """A reshape that merges the batch axis into the features."""

    def __init__(self):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        return self.fc(x.reshape(1, -1).reshape(-1, 2 * 6 * 6))


class DataDependentBranch(nn.Module):
    """Python control flow on tensor values: torch.export and torch.fx both reject it."""

    def __init__(self):
        super().__init__()
        self.in_shape = IN_SHAPE
        self.fc = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.sum() > 0:
            x = torch.relu(x)
        return self.fc(x)


def fashion_mnist_train_sample() -> torch.utils.data.TensorDataset:
    """1,000 real Fashion-MNIST training images, the same on every machine: the default
    calibration draw, which the embedded sample holds and the full set gives too."""
    from snnconv.data import calibration_subset, load_dataset

    return calibration_subset(load_dataset("fashion-mnist", "train"), 1000, seed=0)
