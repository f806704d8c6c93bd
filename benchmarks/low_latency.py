"""Few steps: the paper's method against ``target_timesteps``, and per-sample early exit.

For each reference net (Fashion-MNIST, 1,000 calibration images, the test set):

* accuracy at T = 1, 2, 4, 8, 16, 32, 64 for the paper's method (p = 99.9, V(0) = 0)
  and for ``Config(target_timesteps=8)`` and ``(target_timesteps=16)``, with what
  the tuner chose and how long the conversion took;
* the error-vs-operations milestones of each (``within["1"]``, ``best_at_ann_ops``);
* early exit at T = 64 with the default conversion and with ``target_timesteps=8``:
  mean steps, accuracy and operations against the full run, and the wall time of
  the early-exit simulation against the full simulation, timed side by side in
  this process (alternating, medians of ``--repeat``) on the same images.

Writes ``benchmarks/results/low_latency.json`` and, with matplotlib,
``low_latency.png``: per net, accuracy against T and error against operations,
the three conversions side by side.

Usage: python benchmarks/low_latency.py [--nets vgg_bn resnet_small ...] [--limit N]
       [--timesteps 64] [--targets 8 16] [--exit-targets 0 8] [--repeat 3] [--threads 2]
       [--resume]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torch.utils.data import Subset

import snnconv
from common import REFERENCE_NETS, fashion_mnist, reference_net
from snnconv.evaluation import labelled_batches
from snnconv.metrics.operations import count_operations
from snnconv.sim.early_exit import ExitRule, run_early_exit
from snnconv.sim.simulator import Simulator

STEPS_SHOWN = (1, 2, 4, 8, 16, 32, 64)
RESULTS = Path(__file__).resolve().parent / "results"


def _variant_config(target: int) -> snnconv.Config:
    """The paper's method (target 0) or ``target_timesteps=target``."""
    return snnconv.Config(device="cpu", target_timesteps=target or None)


def _label(target: int) -> str:
    return f"target {target}" if target else "p99.9"


def measure(name: str, target: int, test: Any, calibration: Any, steps: int) -> dict[str, Any]:
    """Convert with one variant, evaluate the full run, record the curve and milestones."""
    config = _variant_config(target)
    start = time.perf_counter()
    network = snnconv.convert(reference_net(name), calibration, config)
    convert_seconds = time.perf_counter() - start
    res = snnconv.evaluate(network, test, steps, network.config)
    record = network.info.get("low_latency")
    return {
        "variant": _label(target),
        "convert_seconds": convert_seconds,
        "chosen": record["chosen"] if record else None,
        "tuning_seconds": record["seconds"] if record else None,
        "num_samples": res.num_samples,
        "ann_top1": res.ann_top1,
        "ann_macs": res.ann_macs_per_sample,
        "input_macs": res.input_macs_per_sample,
        "snn_top1": res.snn_top1,
        "ops": [res.input_macs_per_sample + s for s in res.sops],
        "milestones": res.milestones(),
        "seconds": res.seconds,
        "network": network,
    }


def _rule(network: snnconv.SpikingNetwork, calibration: Any, steps: int) -> ExitRule:
    """The exit rule evaluate() tunes on the calibration data."""
    from snnconv.evaluation import _exit_rule

    sim = Simulator(network.graph)
    return _exit_rule(sim, steps, network.config.replace(early_exit=True), calibration)


def early_exit(
    entry: dict[str, Any], test: Any, calibration: Any, steps: int, repeat: int
) -> dict[str, Any]:
    """Early exit against the full run: accuracy, mean steps, operations, and wall time of
    the two simulations timed alternately on the same images."""
    network = entry["network"]
    counts = count_operations(network.graph)
    fan_out = {s.name: s.fan_out for s in counts.sources}
    sim = Simulator(network.graph, fan_out=fan_out)
    rule = _rule(network, calibration, steps)
    batches = list(labelled_batches(test, network.config.batch_size))

    def full() -> tuple[int, float]:
        correct, sops = 0, 0.0
        for index, (x, y) in enumerate(batches):
            res = sim.run(x, y, steps, batch_index=index)
            correct += int(res.correct_top1[-1])
            sops += sum(float(v.sum()) for v in res.sops.values())
        return correct, sops

    def exiting() -> tuple[int, float, torch.Tensor]:
        correct, sops, exits = 0, 0.0, []
        for index, (x, y) in enumerate(batches):
            batch = run_early_exit(sim, x, y, steps, rule, batch_index=index)
            correct += batch.correct_top1
            sops += sum(batch.sops.values())
            exits.append(batch.steps)
        return correct, sops, torch.cat(exits)

    full_times, exit_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        full_correct, full_sops = full()
        full_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        exit_correct, exit_sops, exits = exiting()
        exit_times.append(time.perf_counter() - start)
    n = int(exits.numel())
    input_macs = float(counts.input_macs_total)
    full_ops = input_macs + full_sops / n
    exit_ops = input_macs + exit_sops / n
    return {
        "variant": entry["variant"],
        "rule": {"patience": rule.patience, "margin": rule.margin},
        "timesteps": steps,
        "full_top1": full_correct / n,
        "exit_top1": exit_correct / n,
        "mean_steps": float(exits.double().mean()),
        "steps_ratio": steps / float(exits.double().mean()),
        "full_ops": full_ops,
        "exit_ops": exit_ops,
        "ops_ratio": full_ops / exit_ops,
        "exit_ops_vs_ann": exit_ops / entry["ann_macs"],
        "full_seconds": statistics.median(full_times),
        "exit_seconds": statistics.median(exit_times),
        "wall_ratio": statistics.median(full_times) / statistics.median(exit_times),
        "repeat": repeat,
    }


def _point(point: dict[str, Any] | None) -> str:
    if point is None:
        return "not reached"
    return f"{point['ops_ratio']:.2f}× (t = {point['step']}, {100 * (1 - point['error']):.2f} %)"


def print_tables(results: dict[str, Any]) -> None:
    """Markdown tables of accuracy, milestones and early exit."""
    head = " | ".join(f"T={t}" for t in STEPS_SHOWN)
    print(f"\n| net | conversion | ANN | {head} | convert s | chosen |")
    print("|---|---|---|" + "---|" * len(STEPS_SHOWN) + "---|---|")
    for name, entry in results.items():
        for v in entry["variants"]:
            curve = v["snn_top1"]
            acc = " | ".join(
                f"{100 * curve[t - 1]:.2f}" if t <= len(curve) else "-" for t in STEPS_SHOWN
            )
            print(
                f"| {name} | {v['variant']} | {100 * v['ann_top1']:.2f} | {acc} | "
                f"{v['convert_seconds']:.0f} | {v['chosen'] or '-'} |"
            )
    print("\n| net | conversion | within 1 point | within 0.5 point | best ≤ 0.5× | best ≤ 1× |")
    print("|---|---|---|---|---|---|")
    for name, entry in results.items():
        for v in entry["variants"]:
            m = v["milestones"]
            print(
                f"| {name} | {v['variant']} | {_point(m['within']['1'])} | "
                f"{_point(m['within']['0.5'])} | {_point(m['best_at_ann_ops']['0.5'])} | "
                f"{_point(m['best_at_ann_ops']['1'])} |"
            )
    print(
        "\n| net | conversion | rule (k, m) | full top-1 | exit top-1 | mean steps | steps ÷ "
        "| ops ÷ | exit ops × ANN | wall full s | wall exit s | wall ÷ |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, entry in results.items():
        for e in entry.get("early_exit", []):
            print(
                f"| {name} | {e['variant']} | {e['rule']['patience']}, {e['rule']['margin']:.2f} | "
                f"{100 * e['full_top1']:.2f} | {100 * e['exit_top1']:.2f} | "
                f"{e['mean_steps']:.2f} | {e['steps_ratio']:.2f} | {e['ops_ratio']:.2f} | "
                f"{e['exit_ops_vs_ann']:.2f} | {e['full_seconds']:.1f} | {e['exit_seconds']:.1f} | "
                f"{e['wall_ratio']:.2f} |"
            )


def plot(results: dict[str, Any], path: Path) -> None:
    """Per net: accuracy against T, and error against operations, the variants side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 3.2 * len(results)), squeeze=False)
    for row, (name, entry) in enumerate(results.items()):
        left, right = axes[row]
        for v in entry["variants"]:
            steps = range(1, len(v["snn_top1"]) + 1)
            left.plot(steps, [100 * a for a in v["snn_top1"]], label=v["variant"])
            right.plot(v["ops"], [100 * (1 - a) for a in v["snn_top1"]], label=v["variant"])
        ann = entry["variants"][0]
        left.axhline(100 * ann["ann_top1"], color="black", linestyle=":", label="ANN")
        left.set(xscale="log", xlabel="time steps T", ylabel="top-1 (%)", title=name)
        left.set_xticks(STEPS_SHOWN, [str(t) for t in STEPS_SHOWN])
        left.set_ylim(max(0, 100 * ann["ann_top1"] - 30), 100 * ann["ann_top1"] + 2)
        right.scatter([ann["ann_macs"]], [100 * (1 - ann["ann_top1"])], color="black", label="ANN")
        for e in entry.get("early_exit", []):
            right.scatter([e["exit_ops"]], [100 * (1 - e["exit_top1"])], marker="*", s=90,
                          label=f"early exit ({e['variant']})")  # fmt: skip
        right.set(xscale="log", yscale="log", xlabel="operations per sample",
                  ylabel="error (%)", title=f"{name}: error vs operations")  # fmt: skip
        right.axvline(ann["ann_macs"], color="grey", linewidth=0.6)
        left.legend(fontsize=7)
        right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", default=list(REFERENCE_NETS))
    parser.add_argument("--limit", type=int, help="first N test images (default: all 10,000)")
    parser.add_argument("--timesteps", type=int, default=64)
    parser.add_argument("--targets", type=int, nargs="+", default=[8, 16])
    parser.add_argument(
        "--exit-targets", type=int, nargs="*", default=[0, 8],
        help="conversions measured with early exit (0: the paper's method)",
    )  # fmt: skip
    parser.add_argument("--exit-nets", nargs="*", default=["vgg_bn"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=RESULTS / "low_latency.json")
    parser.add_argument(
        "--resume", action="store_true",
        help="keep the nets already in --json (from an interrupted run) and measure the rest",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    calibration, test = fashion_mnist()
    if args.limit:
        test = Subset(test, range(args.limit))
    results: dict[str, Any] = {}
    if args.resume and args.json.exists():
        results = json.loads(args.json.read_text())
    for name in args.nets:
        if name in results:
            print(f"{name}: kept from {args.json}", flush=True)
            continue
        targets = [0, *args.targets]
        variants = [measure(name, t, test, calibration, args.timesteps) for t in targets]
        entry: dict[str, Any] = {"variants": variants}
        if name in args.exit_nets:
            chosen = [v for t, v in zip(targets, variants, strict=True) if t in args.exit_targets]
            entry["early_exit"] = [
                early_exit(v, test, calibration, args.timesteps, args.repeat) for v in chosen
            ]
        for v in variants:
            del v["network"]
        results[name] = entry
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
        print(f"{name}: done", flush=True)
    print_tables(results)
    try:
        plot(results, args.json.with_suffix(".png"))
    except ImportError:
        print("matplotlib is not installed: no plot")


if __name__ == "__main__":
    main()
