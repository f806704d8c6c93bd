"""Shared helpers of the benchmark scripts: reference nets, data, timing, memory.

Also imported by ``benchmarks/peers/run_peers.py`` inside the peer environment
(where snnconv is installed from the checkout), so the peers run on exactly the
same networks, images and labels as snnconv.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from snnconv import architectures as arch
from snnconv import zoo
from snnconv.data import calibration_subset, load_dataset

WEIGHTS = Path(__file__).resolve().parent / "weights"

#: Reference nets of the design notes: name -> (builder, weights file).
REFERENCE_NETS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "lenet_avg": (lambda: zoo.lenet("avg"), "lenet_avg.safetensors"),
    "lenet_max": (lambda: zoo.lenet("max"), "lenet_max.safetensors"),
    "vgg_bn": (zoo.vgg_small, "vgg_bn.safetensors"),
    "resnet_small": (zoo.resnet_small, "resnet_small.safetensors"),
    "inception_small": (zoo.inception_small, "inception_small.safetensors"),
}


def reference_net(name: str) -> nn.Module:
    """A trained reference net (``benchmarks/train_reference.py`` writes the weights)."""
    builder, file = REFERENCE_NETS[name]
    path = WEIGHTS / file
    if not path.is_file():
        sys.exit(f"{path} is missing: run `python benchmarks/train_reference.py` first")
    return zoo.load_weights(builder(), path).eval()


def fashion_mnist(calibration_samples: int = 1000, seed: int = 0):
    """(calibration subset, full test set) of Fashion-MNIST."""
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    return calibration_subset(train, calibration_samples, seed=seed), test


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


#: CIFAR-size architectures benchmarked with random weights: name -> (factory, image side).
RANDOM_NETS: dict[str, tuple[Callable[..., nn.Module], int]] = {
    "vgg11_bn": (arch.vgg11_bn, 32),
    "resnet20": (arch.resnet20_cifar, 32),
}

#: The speed suite's networks: two trained reference nets, two CIFAR-size random ones.
SPEED_NETS = ("lenet_avg", "vgg_bn", "vgg11_bn", "resnet20")


@dataclass
class BenchmarkNet:
    """A network with the images a benchmark converts and evaluates it on.

    Attributes:
        model: The ANN in eval mode, on the CPU.
        calibration: Images for normalization statistics ``[N, C, H, W]``.
        x: Evaluation images ``[N, C, H, W]``.
        y: Their labels; for random-weight nets the ANN's own top-1 classes.
        labels_from_ann: True when ``y`` is the ANN's top-1 (accuracy = agreement).
        ann_top1: The ANN's top-1 accuracy on ``(x, y)`` (1.0 when ``labels_from_ann``).
    """

    name: str
    model: nn.Module
    calibration: Tensor
    x: Tensor
    y: Tensor
    labels_from_ann: bool
    ann_top1: float


@torch.no_grad()
def _top1(model: nn.Module, x: Tensor, batch: int = 250) -> Tensor:
    return torch.cat([model(xb).argmax(1) for xb in x.split(batch)])


def benchmark_net(name: str, images: int, seed: int = 0, calibration: int = 300) -> BenchmarkNet:
    """A reference net (trained, Fashion-MNIST) or a CIFAR-size random-weight net.

    Reference nets (:data:`REFERENCE_NETS`) calibrate on the 1,000 training
    images of :func:`fashion_mnist` and are evaluated on the first ``images``
    test images. Random nets (:data:`RANDOM_NETS`) are built after
    ``torch.manual_seed(seed)``, get batch-norm statistics recalibrated on the
    first ``calibration`` training images of Fashion-MNIST resized to 3 × 32 × 32
    (which are also their conversion calibration set), and are labelled with
    their own top-1 class, so accuracy measures agreement with the ANN.
    """
    if name in REFERENCE_NETS:
        cal, test = fashion_mnist()
        model = reference_net(name)
        x, y = test.tensors[0][:images], test.tensors[1][:images]
        top1 = (_top1(model, x) == y).double().mean().item()
        return BenchmarkNet(name, model, cal.tensors[0], x, y, False, top1)
    if name not in RANDOM_NETS:
        raise KeyError(f"unknown net {name!r}; known: {[*REFERENCE_NETS, *RANDOM_NETS]}")
    factory, side = RANDOM_NETS[name]
    torch.manual_seed(seed)
    model = factory(num_classes=10).eval()
    train_images = arch.fashion_mnist_rgb(side, "train", limit=calibration)
    arch.recalibrate_batchnorm(model, train_images)
    x = arch.fashion_mnist_rgb(side, "test", limit=images).tensors[0]
    return BenchmarkNet(name, model, train_images.tensors[0], x, _top1(model, x), True, 1.0)


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so that wall time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: the process's RSS high-water mark (Linux) and CUDA's allocator peak."""
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():
        clear_refs.write_text("5")  # resets VmHWM
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def status_mib(field: str) -> float | None:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB; None off Linux."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            key, _, value = line.partition(":")
            if key == field:
                return int(value.split()[0]) / 1024
    return None


def peak_memory(device: torch.device) -> dict[str, float | None]:
    """Peaks since :func:`reset_peak_memory`, in MiB (None where not measurable)."""
    rss = status_mib("VmHWM")
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"peak_rss_mib": rss, "cuda_peak_mib": cuda}


def timed_run(
    run_batch: Callable[[Tensor, Tensor, int], Tensor],
    x: Tensor,
    y: Tensor,
    timesteps: int,
    batch: int,
    device: torch.device,
) -> dict:
    """Time a simulator over all of ``x`` in batches, with accuracy after every step.

    ``run_batch(xb, yb, T)`` simulates one batch (already on ``device``) from a
    reset state and returns the ``[T]`` count of correct top-1 answers after each
    step. One short untimed call on the first batch warms it up, so that one-off
    costs (such as creating the convolution kernels for the batch's shapes) are
    not timed. The time covers every batch, with CUDA synchronized; the peak
    memory is that of the timed calls.

    Returns:
        ``{"timesteps", "images", "batch", "seconds", "s_per_1000_images",
        "images_per_s", "image_steps_per_s", "top1", "top1_per_step", "memory"}``.
    """
    x, y = x.to(device), y.to(device)
    run_batch(x[:batch], y[:batch], min(timesteps, 4))
    synchronize(device)
    reset_peak_memory(device)
    correct = torch.zeros(timesteps, dtype=torch.int64, device=device)
    start = time.perf_counter()
    for first in range(0, len(x), batch):
        correct += run_batch(x[first : first + batch], y[first : first + batch], timesteps)
    synchronize(device)
    seconds = time.perf_counter() - start
    per_step = (correct.double() / len(x)).tolist()
    return {
        "timesteps": timesteps,
        "images": len(x),
        "batch": batch,
        "seconds": seconds,
        "s_per_1000_images": seconds / len(x) * 1000,
        "images_per_s": len(x) / seconds,
        "image_steps_per_s": len(x) * timesteps / seconds,
        "top1": per_step[-1],
        "top1_per_step": per_step,
        "memory": peak_memory(device),
    }


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that ``speed.py`` and ``peers/run_peers.py`` share (and pass on)."""
    parser.add_argument("--nets", nargs="+", default=[*SPEED_NETS])
    parser.add_argument("--timesteps", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seed", type=int, default=0, help="random-weight nets' seed")
    parser.add_argument("--percentile", type=float, default=99.9, help="normalization, all tools")
