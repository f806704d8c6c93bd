"""Fidelity of converted architectures without trained weights.

For each architecture (10-class head, random weights, batch-norm statistics
recalibrated on real images: Fashion-MNIST replicated to 3 channels and
resized), simulates T steps and reports, per spiking layer, the Pearson
correlation between SNN rates and normalized ANN activations, and whether the
SNN's top-1 equals the ANN's on the inputs whose ANN top-1 margin is above the
median.

Usage: python benchmarks/fidelity.py [--nets resnet18 googlenet ...] [--timesteps 512]
       [--images 48] [--json benchmarks/results/fidelity.json]
       [--percentile P] [--v-init F] [--clamp-steps K] [--no-pool-aware-percentile]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

import snnconv
from snnconv import architectures as arch

NETS = {
    "resnet18": (arch.resnet18, 32),
    "resnet20": (arch.resnet20_cifar, 32),
    "googlenet": (arch.googlenet, 32),
    "vgg16_bn": (arch.vgg16_bn, 32),
    "inception_v3": (arch.inception_v3, 75),
}


def fidelity(
    name: str,
    timesteps: int,
    images: int,
    calibration: int,
    seed: int = 0,
    options: dict | None = None,
) -> dict:
    """Convert one random-weight architecture and measure how closely the SNN follows it."""
    factory, size = NETS[name]
    torch.manual_seed(seed)
    model = factory(num_classes=10).eval()
    train = arch.fashion_mnist_rgb(size, "train", limit=calibration)
    test = arch.fashion_mnist_rgb(size, "test", limit=images)
    arch.recalibrate_batchnorm(model, train)
    x_cal = train.tensors[0]
    x = test.tensors[0]
    with torch.no_grad():
        logits = model(x)
    top2 = logits.topk(2, dim=1)
    margin = top2.values[:, 0] - top2.values[:, 1]
    ann_label = top2.indices[:, 0]
    confident = margin > margin.median()
    config = snnconv.Config(device="cpu", batch_size=64, **(options or {}))
    start = time.perf_counter()
    snn = snnconv.convert(model, x_cal, config)
    result = snnconv.evaluate(snn, TensorDataset(x, ann_label), timesteps, config, diagnostics=True)
    confident_result = snnconv.evaluate(
        snn, TensorDataset(x[confident], ann_label[confident]), timesteps, config
    )
    return {
        "size": size,
        "options": options or {},
        "images": images,
        "timesteps": timesteps,
        "spiking_layers": len(result.layers),
        "min_correlation": min(layer["correlation"] for layer in result.layers),
        "layers": result.layers,
        "agreement_all": result.snn_top1[-1],
        "agreement_above_median_margin": confident_result.snn_top1[-1],
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", default=list(NETS))
    parser.add_argument("--timesteps", type=int, default=512)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--calibration", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--percentile", type=float, default=99.9)
    parser.add_argument("--v-init", type=float, default=0.0)
    parser.add_argument("--clamp-steps", type=int, default=0)
    parser.add_argument("--no-pool-aware-percentile", action="store_true")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/fidelity.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = json.loads(args.json.read_text()) if args.json.is_file() else {}
    print(
        f"{'net':<14} {'layers':>6} {'min corr':>9} {'agree>median':>13} {'agree all':>10} {'s':>6}"
    )
    for name in args.nets:
        options = {
            "percentile": args.percentile,
            "v_init": args.v_init,
            "clamp_steps": args.clamp_steps,
            "pool_aware_percentile": not args.no_pool_aware_percentile,
        }
        r = fidelity(name, args.timesteps, args.images, args.calibration, options=options)
        key = "-".join([name] + [f"{k}={v}" for k, v in options.items()])
        report[key] = r
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(
            f"{name:<14} {r['spiking_layers']:>6} {r['min_correlation']:>9.4f} "
            f"{r['agreement_above_median_margin']:>13.3f} {r['agreement_all']:>10.3f} "
            f"{r['seconds']:>6.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
