"""Training, evaluation, batch-norm recalibration and weight files.

:func:`train` is a deterministic Adam loop, :func:`accuracy` the top-1
accuracy of a classifier, :func:`recalibrate_batchnorm` re-estimates
batch-norm statistics on real images (to give random-weight networks
realistic activations), and :func:`save_weights` / :func:`load_weights`
write and read state dicts as safetensors files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset
from tqdm import tqdm

from snnconv.errors import ConfigError, DataError, ModelLoadError
from snnconv.outputs import atomic_write

__all__ = [
    "accuracy",
    "load_weights",
    "recalibrate_batchnorm",
    "save_weights",
    "train",
]

_ModelT = TypeVar("_ModelT", bound=nn.Module)


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
