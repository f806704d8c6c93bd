"""Fine-tuning for few steps: QCFS (L levels) against the original ReLU ANN and its SNN.

For each reference net and each L (Fashion-MNIST, the full training split minus a
10 % validation part for fine-tuning; 1,000 calibration images; the test set):

* the original ANN's test top-1; ``snnconv.finetune`` (seed 0) with its time and
  validation figures; the fine-tuned ANN's test top-1;
* its SNN (the default conversion: QCFS layers at θ = λ, V(0) = θ/2) at
  T = 1, 2, 4, 8, 16, 32, and, with ``--variants``, the same network converted
  with negative spikes (signed neurons, h = 0) and/or the potential calibration,
  or with ``target_timesteps = L`` (the tuner of guide §14 chooses);
* the error-vs-operations milestones against the original ANN: the first step
  within 1 point of its top-1 and the operations (input MACs + SOPs) it took,
  and the best top-1 at ≤ 0.5× and ≤ 1× the ANN's MACs;
* with ``--sparsity A``: the same with the sparsity penalty α = A.

The fine-tuned programs are kept in ``benchmarks/results/finetuned/`` (``--reuse``
evaluates them again without training). Writes ``benchmarks/results/finetune_qcfs.json``
and prints markdown tables.

Usage: python benchmarks/finetune_qcfs.py [--nets vgg_bn resnet_small] [--levels 4 8]
       [--epochs vgg_bn=3 resnet_small=1] [--timesteps 32] [--limit N]
       [--variants default signed potential] [--sparsity 0 ...] [--reuse] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torch.utils.data import Subset

import snnconv
from common import fashion_mnist, reference_net
from snnconv.cli.finetune import export_program
from snnconv.data import load_dataset
from snnconv.importers.load import load_pt2
from snnconv.metrics.tradeoff import milestones
from snnconv.models.training import accuracy
from snnconv.nn import to_graph_module

RESULTS = Path(__file__).resolve().parent / "results"
STEPS_SHOWN = (1, 2, 4, 8, 16, 32)
VARIANTS = {
    "default": {},
    "signed": {"negative_spikes": True, "negative_threshold": 0.0},
    "potential": {"potential_calibration": True},
    "signed+potential": {
        "negative_spikes": True,
        "negative_threshold": 0.0,
        "potential_calibration": True,
    },
    "target": {},  # Config(target_timesteps=L): the tuner of §14 chooses
}


def _tuned(name: str, levels: int, epochs: int, sparsity: float, reuse: bool, train: Any):
    """(fine-tuned module, finetune info): trained now, or read back with ``--reuse``."""
    stem = RESULTS / "finetuned" / f"{name}_L{levels}_e{epochs}_s{sparsity:g}"
    program, record = stem.with_suffix(".pt2"), stem.with_suffix(".json")
    if reuse and program.is_file() and record.is_file():
        example = train[0][0].unsqueeze(0)
        return to_graph_module(load_pt2(program), example), json.loads(record.read_text())
    result = snnconv.finetune(
        reference_net(name), train, levels=levels, epochs=epochs, sparsity=sparsity, progress=True
    )
    program.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(export_program(result.model, train[0][0].unsqueeze(0)), str(program))
    record.write_text(json.dumps(result.info, indent=1))
    return result.model, result.info


def measure(
    name: str, levels: int, epochs: int, sparsity: float, args: argparse.Namespace, data: tuple
) -> dict[str, Any]:
    train, calibration, test = data
    original_top1 = accuracy(reference_net(name), test)
    model, info = _tuned(name, levels, epochs, sparsity, args.reuse, train)
    tuned_top1 = accuracy(model, test)
    entry: dict[str, Any] = {
        "net": name,
        "levels": levels,
        "epochs": epochs,
        "sparsity": sparsity,
        "finetune_seconds": info["seconds"],
        "validation": info["validation"],
        "lambda": info["lambda"],
        "original_top1": original_top1,
        "finetuned_top1": tuned_top1,
        "snn": [],
    }
    for variant in args.variants:
        options = dict(VARIANTS[variant])
        if variant == "target" or options.get("potential_calibration"):
            options["target_timesteps"] = levels  # the calibrations tune for T = L
        config = snnconv.Config(device="cpu", **options)
        start = time.perf_counter()
        network = snnconv.convert(model, calibration, config)
        convert_seconds = time.perf_counter() - start
        res = snnconv.evaluate(network, test, args.timesteps, config)
        marks = milestones(
            original_top1, res.ann_macs_per_sample, res.snn_top1, res.sops,
            res.input_macs_per_sample,
        )  # fmt: skip
        entry["snn"].append(
            {
                "variant": variant,
                "chosen": (network.info.get("low_latency") or {}).get("chosen"),
                "ann_top1": res.ann_top1,
                "snn_top1": res.snn_top1,
                "ops": [res.input_macs_per_sample + s for s in res.sops],
                "ann_macs": res.ann_macs_per_sample,
                "milestones_vs_original": marks,
                "milestones_vs_finetuned": res.milestones(),
                "convert_seconds": convert_seconds,
                "seconds": res.seconds,
            }
        )
        print(f"{name} L={levels} α={sparsity:g} {variant}: done", flush=True)
    return entry


def _point(point: dict[str, Any] | None) -> str:
    if point is None:
        return "not reached"
    return f"t = {point['step']}, {point['ops_ratio']:.2f}× ({100 * (1 - point['error']):.2f} %)"


def _label(snn: dict[str, Any]) -> str:
    return snn["variant"] + (f" ({snn['chosen']})" if snn.get("chosen") else "")


def print_tables(entries: list[dict[str, Any]]) -> None:
    head = " | ".join(f"T={t}" for t in STEPS_SHOWN)
    print(f"\n| net | L | α | epochs (s) | original ANN | fine-tuned ANN | SNN | {head} |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(STEPS_SHOWN))
    for e in entries:
        for s in e["snn"]:
            curve = s["snn_top1"]
            acc = " | ".join(
                f"{100 * curve[t - 1]:.2f}" if t <= len(curve) else "-" for t in STEPS_SHOWN
            )
            print(
                f"| {e['net']} | {e['levels']} | {e['sparsity']:g} | {e['epochs']} "
                f"({e['finetune_seconds']:.0f}) | {100 * e['original_top1']:.2f} | "
                f"{100 * e['finetuned_top1']:.2f} | {_label(s)} | {acc} |"
            )
    print("\n| net | L | α | SNN | within 1 pt of original | best ≤ 0.5× MACs | best ≤ 1× MACs |")
    print("|---|---|---|---|---|---|---|")
    for e in entries:
        for s in e["snn"]:
            m = s["milestones_vs_original"]
            print(
                f"| {e['net']} | {e['levels']} | {e['sparsity']:g} | {_label(s)} | "
                f"{_point(m['within']['1'])} | {_point(m['best_at_ann_ops']['0.5'])} | "
                f"{_point(m['best_at_ann_ops']['1'])} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", default=["vgg_bn", "resnet_small"])
    parser.add_argument("--levels", type=int, nargs="+", default=[4, 8])
    parser.add_argument(
        "--epochs", nargs="+", default=["vgg_bn=3", "resnet_small=1"],
        help="NET=E per net (default: vgg_bn=3 resnet_small=1)",
    )  # fmt: skip
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.0])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["default"])
    parser.add_argument("--timesteps", type=int, default=32)
    parser.add_argument("--limit", type=int, help="first N test images (default: all 10,000)")
    parser.add_argument("--reuse", action="store_true", help="evaluate kept fine-tuned nets")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=RESULTS / "finetune_qcfs.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    epochs = dict(item.split("=") for item in args.epochs)
    calibration, test = fashion_mnist()
    if args.limit:
        test = Subset(test, range(args.limit))
    train = load_dataset("fashion-mnist", "train")
    entries = []
    for name in args.nets:
        for levels in args.levels:
            for sparsity in args.sparsity:
                data = (train, calibration, test)
                e = int(epochs.get(name, 1))
                entries.append(measure(name, levels, e, sparsity, args, data))
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(entries, indent=1))
    print_tables(entries)


if __name__ == "__main__":
    main()
