"""ANN vs SNN top-1 on the full Fashion-MNIST test set, for the reference nets.

For each net and each variant (percentile 99.9 / 100, reset by subtraction /
to zero) prints top-1 at T = 8, 16, 32, 64, 128, 256 beside the ANN, and
writes everything (every step, with the SNN's cumulative synaptic operations
and the error-vs-operations milestones; see benchmarks/operations.py) to JSON.

Usage: python benchmarks/accuracy.py [--nets lenet_avg vgg_bn] [--limit N]
       [--variants p99.9-subtract p100-subtract p99.9-zero] [--timesteps 256]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torch.utils.data import Subset

import snnconv
from common import fashion_mnist, reference_net

VARIANTS = {
    "p99.9-subtract": {"percentile": 99.9, "reset": "subtract"},
    "p100-subtract": {"percentile": 100.0, "reset": "subtract"},
    "p99.9-zero": {"percentile": 99.9, "reset": "zero"},
    "p99.9-subtract-vinit0.5": {"percentile": 99.9, "reset": "subtract", "v_init": 0.5},
    "p99.9-subtract-clamp1": {"percentile": 99.9, "reset": "subtract", "clamp_steps": 1},
    "p99.9-subtract-negative": {"percentile": 99.9, "reset": "subtract", "negative_spikes": True},
    "p99.9-subtract-vinit0.5-negative": {
        "percentile": 99.9,
        "reset": "subtract",
        "v_init": 0.5,
        "negative_spikes": True,
    },
    "p99.9-subtract-pool-unaware": {
        "percentile": 99.9,
        "reset": "subtract",
        "pool_aware_percentile": False,
    },
    "p99.9-maxpool-as-avgpool": {"percentile": 99.9, "reset": "subtract", "maxpool": "average"},
    "p99.9-subtract-bfloat16": {"percentile": 99.9, "reset": "subtract", "precision": "bfloat16"},
}
STEPS = (8, 16, 32, 64, 128, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", default=["lenet_avg", "vgg_bn"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:3])
    parser.add_argument("--timesteps", type=int, default=256)
    parser.add_argument("--limit", type=int, help="first N test images (default: all 10,000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/accuracy.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    calibration, test = fashion_mnist()
    if args.limit:
        test = Subset(test, range(args.limit))
    results: dict[str, dict] = {}
    if args.json.is_file():
        results = json.loads(args.json.read_text())
    for name in args.nets:
        model = reference_net(name)
        for variant in args.variants:
            config = snnconv.Config(device="cpu", **VARIANTS[variant])
            start = time.perf_counter()
            network = snnconv.convert(model, calibration, config)
            res = snnconv.evaluate(network, test, args.timesteps, config)
            results.setdefault(name, {})[variant] = {
                "num_samples": res.num_samples,
                "ann_top1": res.ann_top1,
                "warnings": res.warnings,
                "snn_top1": res.snn_top1,
                "seconds": time.perf_counter() - start,
                "layers": res.layers,
                "ann_macs_per_sample": res.ann_macs_per_sample,
                "input_macs_per_sample": res.input_macs_per_sample,
                "sops_per_sample": res.sops,
                "milestones": res.milestones(),
            }
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=1))
            print(f"{name} {variant}: {res.num_samples} images, {res.seconds:.0f} s", flush=True)
    print(f"\n{'net':<10} {'variant':<24} {'ANN':>6} " + " ".join(f"T={t:<4}" for t in STEPS))
    for name, variants in results.items():
        for variant, r in variants.items():
            cells = " ".join(
                f"{100 * r['snn_top1'][t - 1]:6.2f}" for t in STEPS if t <= len(r["snn_top1"])
            )
            print(f"{name:<10} {variant:<24} {100 * r['ann_top1']:6.2f} {cells}")


if __name__ == "__main__":
    main()
