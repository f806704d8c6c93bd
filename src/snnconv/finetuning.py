""":func:`finetune`: train a ReLU network with QCFS activations, for a spiking net of few steps.

The model's ReLUs become :class:`~snnconv.nn.QCFS` activations with L levels
(:func:`~snnconv.nn.replace_relu`, λ from the 99.9th percentile of each layer's
activations on calibration images drawn from the training part), then the
network is trained with Adam and a cosine learning-rate schedule. A seeded part
of the training split is held back for validation: it alone picks the epoch
kept (the best validation top-1, the replaced network before any training
included); the test split is never seen. The result converts like any model:
each QCFS layer becomes IF neurons with threshold λ and V(0) = θ/2, which
reproduce the activation exactly for a constant input after L steps.

An optional sparsity penalty, α · Σ_layers Σ_neurons fan-out · a/λ ÷ ANN MACs,
is the expected synaptic operations per time step of the converted net as a
fraction of the ANN's MACs (a/λ is the neuron's spike rate, the fan-out its
synapses counted on the converted graph): it trades accuracy for operations.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.fx import GraphModule
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Subset
from tqdm.auto import tqdm

from snnconv.errors import ConfigError, DataError
from snnconv.models.training import accuracy
from snnconv.nn.qcfs import QCFS
from snnconv.nn.replace import qcfs_modules

__all__ = ["FinetuneResult", "finetune"]


@dataclass
class FinetuneResult:
    """What :func:`finetune` returns.

    Attributes:
        model: The fine-tuned network (eval mode), its ReLUs QCFS modules ``qcfs_<k>``.
        original: The network as given (a trainable copy, unchanged), for comparisons.
        info: What ``finetune.json`` records (validation top-1 before and after, λ per
            layer, the epochs, the history, the seed, the time).
    """

    model: GraphModule
    original: nn.Module
    info: dict[str, Any] = field(default_factory=dict)


def _check(
    levels: int, epochs: int, lr: float, batch_size: int, validation: float, sparsity: float
):
    def positive_int(name: str, value: Any, low: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")

    positive_int("levels", levels, 1)
    positive_int("epochs", epochs, 0)
    positive_int("batch_size", batch_size, 1)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(validation, (int, float)) and 0 < validation < 1):
        raise ConfigError(f"validation must be a fraction in (0, 1), got {validation!r}")
    if not (isinstance(sparsity, (int, float)) and math.isfinite(sparsity) and sparsity >= 0):
        raise ConfigError(f"sparsity must be a number >= 0, got {sparsity!r}")


def split(dataset: Dataset, validation: float, seed: int) -> tuple[Subset, Subset]:
    """(training part, validation part): a seeded permutation, the validation part being
    ``validation`` of the samples (at least one; each part sorted)."""
    n = len(dataset)  # type: ignore[arg-type]
    held = max(1, round(validation * n))
    if n - held < 1:
        raise DataError(f"{n} training samples cannot be split into training and validation")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val = sorted(order[:held].tolist())
    train = sorted(order[held:].tolist())
    return Subset(dataset, train), Subset(dataset, val)


def _loader(part: Subset, batch_size: int, generator: torch.Generator | None) -> DataLoader:
    """Batches of ``part`` (shuffled by ``generator`` if given), indexed a batch at a time
    when the dataset holds tensors."""
    base = part.dataset
    tensors = getattr(base, "tensors", None)
    if tensors is not None:
        index = torch.tensor(part.indices)
        images, labels = tensors[0][index], tensors[1][index]
        whole = torch.utils.data.TensorDataset(images, labels)
        sampler: Any = (
            RandomSampler(whole, generator=generator)
            if generator is not None
            else range(len(whole))
        )
        return DataLoader(whole, sampler=BatchSampler(sampler, batch_size, False), batch_size=None)
    return DataLoader(
        part, batch_size=batch_size, shuffle=generator is not None, generator=generator
    )


class _Rates:
    """Forward hooks on the QCFS modules: the batch's Σ fan-out · a/λ, differentiable."""

    def __init__(self, model: GraphModule, fan_outs: dict[str, Tensor]):
        self.terms: list[Tensor] = []
        self.recording = False
        self.handles = []
        for name, module in qcfs_modules(model).items():
            weight = fan_outs[name]

            def hook(module: QCFS, inputs: Any, output: Tensor, weight: Tensor = weight) -> None:
                if self.recording:
                    self.terms.append((output / module.lam * weight).sum())

            self.handles.append(module.register_forward_hook(hook))

    def take(self) -> Tensor:
        """The sum recorded since the last call (recording stops)."""
        self.recording = False
        total = torch.stack(self.terms).sum() if self.terms else torch.zeros(())
        self.terms = []
        return total

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def fan_outs(model: GraphModule, calibration: Any) -> tuple[dict[str, Tensor], int]:
    """({QCFS module name: synapses of each neuron}, ANN MACs per sample), counted on the
    network converted from ``model`` (:func:`snnconv.metrics.operations.count_operations`:
    distinct targets through pooling, adds and concatenations)."""
    import snnconv
    from snnconv.metrics.operations import count_operations

    network = snnconv.convert(model, calibration, snnconv.Config(device="cpu"))
    counts = count_operations(network.graph)
    by_node = {s.name: s.fan_out for s in counts.sources}
    found: dict[str, Tensor] = {}
    names = set(qcfs_modules(model))
    for node in network.graph.nodes:
        path = str(node.meta.get("source", "")).split(" ")[0]
        if path in names and node.name in by_node:
            found[path] = by_node[node.name].float()
    missing = sorted(names - set(found))
    if missing:
        raise ConfigError(
            f"the sparsity penalty needs the fan-out of every QCFS layer; none was found on the "
            f"converted network for {', '.join(missing)}. Fine-tune with sparsity 0."
        )
    return found, counts.ann_macs_total


def _epoch(
    loader: DataLoader,
    step: Callable[[Tensor, Tensor], Tensor],
    label: str,
    progress: bool,
) -> float:
    bar = tqdm(loader, desc=label, disable=not progress, leave=False)
    losses = []
    for images, labels in bar:
        loss = step(images.float(), labels)
        losses.append(float(loss))
        if progress:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return sum(losses) / max(len(losses), 1)


def finetune(
    model: nn.Module | torch.export.ExportedProgram,
    train: Dataset,
    *,
    levels: int = 4,
    epochs: int = 3,
    lr: float = 1e-3,
    batch_size: int = 128,
    validation: float = 0.1,
    calibration_samples: int = 1000,
    percentile: float = 99.9,
    sparsity: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune ``model`` with QCFS activations of ``levels`` levels (module docstring).

    Deterministic on the CPU for a seed (the split, λ's initial values, the order of
    the batches, dropout).

    Args:
        model: A trained ReLU network: an ``nn.Module`` (copied, not modified) or an
            ``ExportedProgram`` (trained with its ops as exported: batch-norm with its
            running statistics, no dropout if it was exported in eval mode).
        train: The training split, ``(image, label)`` pairs.
        levels: L, the quantization levels: the time steps the SNN is meant to run.
        epochs: Passes over the training part (0: only replace and validate).
        lr: Adam's initial learning rate (cosine decay to 0 over the epochs).
        batch_size: Mini-batch size.
        validation: Fraction of ``train`` held back for validation (seeded).
        calibration_samples: Training-part images whose activations give λ's initial value.
        percentile: p of that initial λ.
        sparsity: α of the sparsity penalty (0: none).
        seed: Seeds the split, the calibration draw, the shuffling and dropout.
        progress: Show a progress bar per epoch with the loss, and the validation top-1.

    Raises:
        ConfigError: An option is out of range, or the model has no ReLU.
        DataError: ``train`` is too small to split.
    """
    from snnconv.data import calibration_subset
    from snnconv.nn import replace_relu, to_graph_module

    _check(levels, epochs, lr, batch_size, validation, sparsity)
    start = time.perf_counter()
    train_part, val_part = split(train, validation, seed)
    val_loader = _loader(val_part, 512, None)
    example = next(iter(val_loader))[0].float()
    original = to_graph_module(
        model if isinstance(model, torch.export.ExportedProgram) else copy.deepcopy(model),
        example,
    )
    calibration = calibration_subset(train_part, min(calibration_samples, len(train_part)), seed)
    try:
        tuned = replace_relu(original, levels, calibration, percentile=percentile, seed=seed)
    except ValueError as error:
        raise ConfigError(f"cannot fine-tune: {error}") from error
    validation_set = val_loader.dataset
    original_top1 = accuracy(original, validation_set, batch_size=512)
    replaced_top1 = accuracy(tuned, validation_set, batch_size=512)
    penalty: _Rates | None = None
    macs = 0
    if sparsity > 0:
        weights, macs = fan_outs(tuned, calibration)
        penalty = _Rates(tuned, weights)

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_loader = _loader(train_part, batch_size, generator)
    optimizer = torch.optim.Adam(tuned.parameters(), lr=lr)
    total_steps = max(1, epochs * len(train_loader))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, total_steps) / total_steps))
    )
    loss_fn = nn.CrossEntropyLoss()

    def step(images: Tensor, labels: Tensor) -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        if penalty is not None:
            penalty.recording = True
        loss = loss_fn(tuned(images), labels)
        if penalty is not None:
            loss = loss + sparsity * penalty.take() / (len(images) * macs)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():  # λ stays positive
            for module in qcfs_modules(tuned).values():
                module.lam.clamp_(min=1e-3)
        return loss.detach()

    def rate_ops() -> float | None:
        if penalty is None:
            return None
        tuned.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for images, _ in val_loader:
                penalty.recording = True
                tuned(images.float())
                total += float(penalty.take())
                count += len(images)
        return total / (count * macs)

    history = [
        {
            "epoch": 0,
            "loss": None,
            "validation_top1": replaced_top1,
            "sops_per_step_vs_ann_macs": rate_ops(),
        }
    ]
    best_top1, best_epoch = replaced_top1, 0
    best_state = copy.deepcopy(tuned.state_dict())
    for epoch in range(1, epochs + 1):
        tuned.train()
        loss = _epoch(train_loader, step, f"epoch {epoch}/{epochs}", progress)
        top1 = accuracy(tuned, validation_set, batch_size=512)
        history.append(
            {
                "epoch": epoch,
                "loss": loss,
                "validation_top1": top1,
                "sops_per_step_vs_ann_macs": rate_ops(),
            }
        )
        if progress:
            print(f"epoch {epoch}/{epochs}: loss {loss:.4f}, validation top-1 {100 * top1:.2f} %")
        if top1 > best_top1:
            best_top1, best_epoch = top1, epoch
            best_state = copy.deepcopy(tuned.state_dict())
    tuned.load_state_dict(best_state)
    tuned.eval()
    if penalty is not None:
        penalty.remove()
    info = {
        "levels": levels,
        "epochs": epochs,
        "best_epoch": best_epoch,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "sparsity": sparsity,
        "percentile": percentile,
        "train_samples": len(train_part),
        "calibration_samples": len(calibration),
        "validation": {
            "fraction": validation,
            "samples": len(val_part),
            "top1_original": original_top1,
            "top1_replaced": replaced_top1,
            "top1_finetuned": best_top1,
        },
        "lambda": {name: float(m.lam.detach()) for name, m in qcfs_modules(tuned).items()},
        "history": history,
        "seconds": time.perf_counter() - start,
    }
    return FinetuneResult(tuned, original, info)
