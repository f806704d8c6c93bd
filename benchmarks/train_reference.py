"""Train the reference CNNs on Fashion-MNIST and save their weights.

Trains three networks from ``snnconv.zoo`` on the full 60,000-image training
split: the LeNet-style net with average pooling (``lenet_avg``), the same with
max pooling (``lenet_max``), the VGG-style net with batch normalisation
(``vgg_bn``), ResNet-8 (``resnet_small``, residual adds) and a small
Inception-style net (``inception_small``, concatenation, overlapping max
pools). Each is evaluated on the full 10,000-image test split; the
weights and a README with the accuracies are written to the output directory.

Usage::

    python benchmarks/train_reference.py [--epochs N] [--out benchmarks/weights]
        [--data-dir DIR] [--update-zoo]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from snnconv import zoo
from snnconv.data import load_dataset
from snnconv.errors import SnnconvError

REPO_ROOT = Path(__file__).resolve().parent.parent
ZOO_CHECKPOINT = REPO_ROOT / "src" / "snnconv" / "models" / "weights" / zoo.PRETRAINED_LENET_FILE

MODELS: dict[str, tuple[str, Callable[[], nn.Module]]] = {
    "lenet_avg": ('zoo.lenet("avg")', lambda: zoo.lenet("avg")),
    "lenet_max": ('zoo.lenet("max")', lambda: zoo.lenet("max")),
    "vgg_bn": ("zoo.vgg_small()", zoo.vgg_small),
    "resnet_small": ("zoo.resnet_small()", zoo.resnet_small),
    "inception_small": ("zoo.inception_small()", zoo.inception_small),
}


@dataclass
class Result:
    """Outcome of training one model."""

    name: str
    builder: str
    test_accuracy: float
    train_seconds: float
    path: Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per model (default 6)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed for init, shuffling, dropout")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "weights",
        help="output directory (default benchmarks/weights)",
    )
    parser.add_argument("--data-dir", default=None, help="directory holding Fashion-MNIST")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=sorted(MODELS),
        default=list(MODELS),
        help="models to train (default: all)",
    )
    parser.add_argument(
        "--update-zoo",
        action="store_true",
        help=f"also copy lenet_avg weights to {ZOO_CHECKPOINT.relative_to(REPO_ROOT)}",
    )
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    return parser.parse_args(argv)


def write_readme(out: Path, results: list[Result], args: argparse.Namespace) -> None:
    """Write ``README.md`` describing the weight files in ``out``.

    Rows of models trained by an earlier run (same directory) are kept, so
    training a subset with ``--models`` does not drop the others.
    """
    readme = out / "README.md"
    table: dict[str, str] = {}
    if readme.is_file():
        for line in readme.read_text().splitlines():
            if line.startswith("| `") and ".safetensors` |" in line:
                table[line.split("`")[1]] = line
    for r in results:
        table[r.path.name] = (
            f"| `{r.path.name}` | `{r.builder}` | {100 * r.test_accuracy:.2f}% | "
            f"{r.train_seconds:.0f} s |"
        )
    order = [f"{name}.safetensors" for name in MODELS]
    rows = "\n".join(
        table[f] for f in sorted(table, key=lambda f: order.index(f) if f in order else len(order))
    )
    command = (
        f"python benchmarks/train_reference.py --epochs {args.epochs} "
        f"--batch-size {args.batch_size} --lr {args.lr:g} --seed {args.seed}"
    )
    text = f"""# Reference weights (Fashion-MNIST)

Trained by `benchmarks/train_reference.py` on the full Fashion-MNIST training
split (60,000 images, pixels scaled to [0, 1], no normalisation or
augmentation) with Adam (lr {args.lr:g}), batch size {args.batch_size},
{args.epochs} epochs, seed {args.seed}. Test accuracy is top-1 on the full
10,000-image test split. Training time was measured on
{torch.get_num_threads()} CPU thread(s).

| File | Architecture (`snnconv.zoo`) | Test accuracy | Training time |
|------|------------------------------|---------------|---------------|
{rows}

Load one with:

```python
from snnconv import zoo

model = zoo.load_weights(zoo.lenet("avg"), "benchmarks/weights/lenet_avg.safetensors")
```

Reproduce with:

```
{command}
```

The demo checkpoint shipped in the package,
`src/snnconv/models/weights/{zoo.PRETRAINED_LENET_FILE}`, is a copy of
`lenet_avg.safetensors` (add `--update-zoo` to refresh it).
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and save the reference models; return the exit status."""
    args = parse_args(argv)
    if args.epochs <= 0:
        print("error: --epochs must be positive", file=sys.stderr)
        return 2
    try:
        train_set = load_dataset("fashion-mnist", "train", data_dir=args.data_dir)
        test_set = load_dataset("fashion-mnist", "test", data_dir=args.data_dir)
    except SnnconvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    args.out.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    for name in args.models:
        builder, build = MODELS[name]
        torch.manual_seed(args.seed)
        model = build()
        start = time.perf_counter()
        zoo.train(
            model,
            train_set,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            progress=args.progress,
        )
        seconds = time.perf_counter() - start
        acc = zoo.accuracy(model, test_set)
        path = zoo.save_weights(
            model,
            args.out / f"{name}.safetensors",
            metadata={
                "architecture": builder,
                "dataset": "fashion-mnist",
                "epochs": str(args.epochs),
                "test_accuracy": f"{acc:.4f}",
            },
        )
        results.append(Result(name, builder, acc, seconds, path))
        print(f"{name}: test accuracy {100 * acc:.2f}% ({seconds:.0f} s training) -> {path}")
        if name == "lenet_avg" and args.update_zoo:
            ZOO_CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, ZOO_CHECKPOINT)
            print(f"copied to {ZOO_CHECKPOINT}")

    write_readme(args.out, results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
