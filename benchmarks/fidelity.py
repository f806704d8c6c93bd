"""Fidelity of converted architectures without trained weights.

For each architecture (10-class head, random weights, batch-norm statistics
recalibrated on real images: Fashion-MNIST replicated to 3 channels and
resized), simulates T steps and reports, per spiking layer, the Pearson
correlation between SNN rates and normalized ANN activations, and whether the
SNN's top-1 equals the ANN's on the inputs whose ANN top-1 margin is above the
median. Beside each layer's correlation it reports the "ideal code" correlation:
that of the same ANN whose every layer passes on its activation clipped at λ and
rounded to the T-step grid (as V(0) = θ/2 rounds), i.e. what an ideal T-step rate
code scores: the loss that is the code's rather than the conversion's.

Usage: python benchmarks/fidelity.py [--nets resnet18 googlenet ...] [--timesteps 512]
       [--images 48] [--json benchmarks/results/fidelity.json]
       [--percentile P] [--v-init F] [--clamp-steps K] [--no-pool-aware-percentile]
       [--negative-spikes]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

import snnconv
from snnconv import architectures as arch
from snnconv.ir import Graph, IFNeuron, Op
from snnconv.metrics.diagnostics import LayerDiagnostics
from snnconv.sim.reference import run_graph

NETS = {
    "resnet18": (arch.resnet18, 32),
    "resnet20": (arch.resnet20_cifar, 32),
    "googlenet": (arch.googlenet, 32),
    "vgg16_bn": (arch.vgg16_bn, 32),
    "inception_v3": (arch.inception_v3, 75),
}


@dataclasses.dataclass(frozen=True, eq=False)
class IdealRateCode(Op):
    """A layer's ReLU output clipped at θ and rounded to the T-step grid: what an ideal
    T-step rate code (one spike per step at most) passes on to the next layer."""

    threshold: float
    timesteps: int

    def apply(self, *inputs: Tensor) -> Tensor:
        rate = (torch.relu(inputs[0]) / self.threshold).clamp(max=1.0)
        return torch.round(rate * self.timesteps) / self.timesteps * self.threshold


def ideal_code_correlations(graph: Graph, x: Tensor, timesteps: int) -> dict[str, float]:
    """Per spiking layer, the correlation of the normalized ANN activations with those of
    the same network whose every layer passes on an ideal T-step rate code (clipping at λ
    and 1/T quantization, compounded through the layers)."""
    layers = [n.name for n in graph.nodes if isinstance(n.op, IFNeuron)]
    ideal = graph.replace_nodes(
        [
            dataclasses.replace(n, op=IdealRateCode(n.op.threshold, timesteps))
            if isinstance(n.op, IFNeuron)
            else n
            for n in graph.nodes
        ]
    )
    result = {}
    for start in range(0, len(x), 16):
        _, exact = run_graph(graph, x[start : start + 16], layers)
        _, coded = run_graph(ideal, x[start : start + 16], layers)
        for name in layers:
            theta = graph.node(name).op.threshold  # type: ignore[attr-defined]
            stats = result.setdefault(name, LayerDiagnostics())
            stats.update(exact[name] / theta, coded[name] / theta)
    return {name: stats.correlation for name, stats in result.items()}


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
    ideal = ideal_code_correlations(snn.graph, x, timesteps)
    for layer in result.layers:
        layer["ideal_code_correlation"] = ideal.get(layer["name"], float("nan"))
    return {
        "size": size,
        "options": options or {},
        "images": images,
        "timesteps": timesteps,
        "spiking_layers": len(result.layers),
        "min_correlation": min(layer["correlation"] for layer in result.layers),
        "ideal_code_min_correlation": min(ideal.values()),
        "ann_classes": torch.bincount(ann_label, minlength=10).tolist(),
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
    parser.add_argument("--negative-spikes", action="store_true")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/fidelity.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = json.loads(args.json.read_text()) if args.json.is_file() else {}
    print(
        f"{'net':<14} {'layers':>6} {'min corr':>9} {'ideal code':>10} {'agree>median':>13} "
        f"{'agree all':>10} {'s':>6}"
    )
    for name in args.nets:
        options = {
            "percentile": args.percentile,
            "v_init": args.v_init,
            "clamp_steps": args.clamp_steps,
            "pool_aware_percentile": not args.no_pool_aware_percentile,
            "negative_spikes": args.negative_spikes,
        }
        r = fidelity(name, args.timesteps, args.images, args.calibration, options=options)
        key = "-".join([name] + [f"{k}={v}" for k, v in options.items()])
        report[key] = r
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(
            f"{name:<14} {r['spiking_layers']:>6} {r['min_correlation']:>9.4f} "
            f"{r['ideal_code_min_correlation']:>10.4f} "
            f"{r['agreement_above_median_margin']:>13.3f} {r['agreement_all']:>10.3f} "
            f"{r['seconds']:>6.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
