"""Reproduce the paper's ANN-to-SNN experiments: train, convert, simulate, compare.

One command per experiment, each training a reference network from
``snnconv.zoo`` with the zoo recipe (Adam, cross-entropy), converting it with
``snnconv.convert`` and simulating it with ``snnconv.evaluate``:

- ``lenet-mnist``: the LeNet-style CNN on MNIST (28x28, 1 channel).
- ``convnet-cifar10``: the CIFAR-10 convnet of Rueckauer et al. (2017),
  ``zoo.cifar_convnet``.
- ``binarynet-mnist`` / ``binarynet-cifar10``: a small BinaryNet
  (``zoo.binarynet``) with binary weights and activations; its latent weights
  are binarised (``zoo.binarize_weights``) before conversion.

Prints ANN top-1 and SNN top-1 after T = 8, 16, ..., ``--timesteps`` steps
and writes a JSON file with every number and option. MNIST and CIFAR-10 are
read from ``--data-dir`` (or ``$SNNCONV_DATA``); nothing is downloaded.

Usage::

    python benchmarks/reproduce_paper.py lenet-mnist --data-dir DIR
    python benchmarks/reproduce_paper.py convnet-cifar10 --data-dir DIR --epochs 30
    python benchmarks/reproduce_paper.py lenet-mnist --dataset fashion-mnist \\
        --pool avg --epochs 1 --limit 500
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

import snnconv
from snnconv import zoo
from snnconv.data import calibration_subset, load_dataset
from snnconv.errors import SnnconvError

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Experiment:
    """One of the paper's experiments.

    Attributes:
        datasets: Datasets it accepts; the first is the default.
        build: Builds the untrained network from the parsed options and the
            data's (channels, image size).
        epochs: Default number of training epochs.
        binary: Binarise the latent weights before conversion.
        description: One line for ``--help``.
    """

    datasets: tuple[str, ...]
    build: Callable[[argparse.Namespace, int, int], nn.Module]
    epochs: int
    binary: bool
    description: str


def _lenet(args: argparse.Namespace, channels: int, size: int) -> nn.Module:
    return zoo.lenet(args.pool, in_channels=channels, image_size=size)


def _convnet(args: argparse.Namespace, channels: int, size: int) -> nn.Module:
    return zoo.cifar_convnet(pool=args.pool, in_channels=channels, image_size=size)


def _binarynet(args: argparse.Namespace, channels: int, size: int) -> nn.Module:
    return zoo.binarynet(
        in_channels=channels, activation=args.activation, image_size=size, pool=args.pool
    )


_MNIST_FAMILY = ("mnist", "fashion-mnist")

EXPERIMENTS: dict[str, Experiment] = {
    "lenet-mnist": Experiment(
        _MNIST_FAMILY, _lenet, 10, False, "LeNet-style CNN (zoo.lenet) on MNIST"
    ),
    "convnet-cifar10": Experiment(
        ("cifar10",), _convnet, 30, False, "CIFAR-10 convnet (zoo.cifar_convnet)"
    ),
    "binarynet-mnist": Experiment(
        _MNIST_FAMILY, _binarynet, 20, True, "BinaryNet (zoo.binarynet) on MNIST"
    ),
    "binarynet-cifar10": Experiment(
        ("cifar10",), _binarynet, 40, True, "BinaryNet (zoo.binarynet) on CIFAR-10"
    ),
}


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Experiments: "
        + "; ".join(f"{name}: {e.description}" for name, e in EXPERIMENTS.items()),
    )
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS), help="experiment to run")
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data-dir", default=None, help="directory holding the dataset (else $SNNCONV_DATA)"
    )
    data.add_argument(
        "--dataset",
        default=None,
        help="dataset to use instead of the experiment's (mnist or fashion-mnist for the "
        "MNIST experiments)",
    )
    data.add_argument(
        "--limit", type=_positive_int, default=None, help="evaluate the first N test images"
    )
    data.add_argument(
        "--train-limit", type=_positive_int, default=None, help="train on the first N images"
    )
    data.add_argument(
        "--calibration-samples",
        type=_positive_int,
        default=1000,
        help="training images drawn (seeded) for normalisation (default 1000)",
    )
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=None, help="epochs (default per experiment)")
    train.add_argument("--batch-size", type=_positive_int, default=128, help="default 128")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    train.add_argument("--seed", type=int, default=0, help="seed of init, shuffling, sampling")
    train.add_argument(
        "--pool",
        choices=("max", "avg"),
        default="max",
        help="pooling of LeNet, the convnet and BinaryNet (default max, as in the paper)",
    )
    train.add_argument(
        "--activation",
        choices=("sign", "heaviside"),
        default="sign",
        help="BinaryNet's binary activation (default sign)",
    )
    train.add_argument(
        "--weights", type=Path, default=None, help="load these weights instead of training"
    )
    train.add_argument(
        "--save-weights", type=Path, default=None, help="save the trained weights here"
    )
    conv = parser.add_argument_group("conversion and simulation")
    conv.add_argument(
        "--timesteps", type=_positive_int, default=256, help="simulated steps T (default 256)"
    )
    conv.add_argument(
        "--percentile",
        type=float,
        default=99.9,
        help="normalisation percentile (default 99.9; 100 is max-norm)",
    )
    conv.add_argument(
        "--reset", choices=("subtract", "zero"), default="subtract", help="IF neuron reset"
    )
    conv.add_argument("--threads", type=_positive_int, default=None, help="CPU threads")
    conv.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON results file (default benchmarks/results/<experiment>.json)",
    )
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and complete the command line (per-experiment defaults, checks)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    experiment = EXPERIMENTS[args.experiment]
    if args.dataset is None:
        args.dataset = experiment.datasets[0]
    elif args.dataset not in experiment.datasets:
        parser.error(
            f"{args.experiment} runs on {' or '.join(experiment.datasets)}, not {args.dataset!r}"
        )
    if args.epochs is None:
        args.epochs = experiment.epochs
    if args.epochs < 0:
        parser.error(f"--epochs must be >= 0, got {args.epochs}")
    if args.out is None:
        args.out = RESULTS / f"{args.experiment}.json"
    return args


def load_data(args: argparse.Namespace) -> tuple[TensorDataset, TensorDataset]:
    """(training set, test set) of the chosen dataset."""
    train = load_dataset(args.dataset, "train", data_dir=args.data_dir, limit=args.train_limit)
    test = load_dataset(args.dataset, "test", data_dir=args.data_dir, limit=args.limit)
    return train, test


def _json_default(value: object) -> object:
    """Encode the enums that option records may hold by their value."""
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or load), convert and evaluate; return the JSON document."""
    experiment = EXPERIMENTS[args.experiment]
    train_set, test_set = load_data(args)
    channels, size = int(train_set.tensors[0].shape[1]), int(train_set.tensors[0].shape[-1])
    torch.manual_seed(args.seed)
    model = experiment.build(args, channels, size)
    start = time.perf_counter()
    if args.weights is not None:
        zoo.load_weights(model, args.weights)
        epochs = 0
    else:
        zoo.train(
            model,
            train_set,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            progress=args.progress,
        )
        epochs = args.epochs
    train_seconds = time.perf_counter() - start
    model.eval()
    if args.save_weights is not None:
        zoo.save_weights(model, args.save_weights)
    torch_top1 = zoo.accuracy(model, test_set)
    print(f"{args.experiment}: trained {epochs} epoch(s) in {train_seconds:.0f} s; ", end="")
    print(f"test top-1 {100 * torch_top1:.2f}% on {len(test_set)} images")
    if experiment.binary:
        model = zoo.binarize_weights(model)

    config = snnconv.Config(
        percentile=args.percentile,
        reset=args.reset,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
        calibration_samples=args.calibration_samples,
    )
    calibration = calibration_subset(train_set, args.calibration_samples, seed=args.seed)
    snn = snnconv.convert(model, calibration, config, progress=args.progress)
    result = snnconv.evaluate(snn, test_set, args.timesteps, config, progress=args.progress)
    print(result.table())
    return {
        "experiment": args.experiment,
        "dataset": args.dataset,
        "model": experiment.description,
        "training": {
            "epochs": epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "samples": len(train_set),
            "seconds": train_seconds,
            "weights": str(args.weights) if args.weights is not None else None,
            "pool": args.pool,
            "activation": args.activation if experiment.binary else None,
        },
        "torch_top1": torch_top1,
        "result": result.to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run one experiment; return the exit status (2 for a user error)."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        document = run(args)
    except SnnconvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, default=_json_default)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
