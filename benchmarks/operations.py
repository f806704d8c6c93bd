"""What the conversion costs and gains, on the reference nets; and what counting costs.

Two measurements, both printed and written to JSON:

* ``--tradeoff``: for each net, ANN MACs per sample, the SNN's operations
  (input MACs + cumulative SOPs) at which its error first comes within 1, 0.5
  and 0.1 points of the ANN, the ratio to the ANN's MACs, and the best error
  reachable within 0.5× and 1× the ANN's MACs (Fashion-MNIST test set).
* ``--overhead``: simulation time with operation counting (spikes × fan-out
  per source and step) ÷ simulation time without any spike recording, measured
  side by side (alternating repeats, medians) on one batch.

Usage: python benchmarks/operations.py [--nets lenet_avg lenet_max vgg_bn] [--limit N]
       [--timesteps 256] [--threads 2] [--overhead] [--tradeoff]
       [--json benchmarks/results/operations.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torch.utils.data import Subset

import snnconv
from common import fashion_mnist, reference_net
from snnconv.metrics.operations import count_operations
from snnconv.sim.simulator import Simulator


def overhead(name: str, timesteps: int, batch: int, repeat: int) -> dict[str, float]:
    """Median simulation time with and without counting, alternating runs."""
    calibration, test = fashion_mnist()
    network = snnconv.convert(reference_net(name), calibration, snnconv.Config(device="cpu"))
    x, y = test.tensors
    x, y = x[:batch], y[:batch]
    start = time.perf_counter()
    counts = count_operations(network.graph)
    fan_out_seconds = time.perf_counter() - start
    plain = Simulator(network.graph)
    counted = Simulator(network.graph, fan_out={s.name: s.fan_out for s in counts.sources})
    plain.run(x, y, 4, record_spikes=False)
    counted.run(x, y, 4)
    times: dict[str, list[float]] = {"plain": [], "counted": []}
    for _ in range(repeat):
        for label, sim, record in (("plain", plain, False), ("counted", counted, True)):
            t0 = time.perf_counter()
            sim.run(x, y, timesteps, record_spikes=record)
            times[label].append(time.perf_counter() - t0)
    plain_s = statistics.median(times["plain"])
    counted_s = statistics.median(times["counted"])
    return {
        "timesteps": timesteps,
        "batch": batch,
        "repeat": repeat,
        "plain_seconds": plain_s,
        "counted_seconds": counted_s,
        "ratio": counted_s / plain_s,
        "fan_out_seconds": fan_out_seconds,
    }


def tradeoff(name: str, timesteps: int, limit: int | None) -> dict[str, object]:
    """ANN MACs, SNN ops at the milestones, for one reference net."""
    calibration, test = fashion_mnist()
    if limit:
        test = Subset(test, range(limit))
    config = snnconv.Config(device="cpu")
    network = snnconv.convert(reference_net(name), calibration, config)
    res = snnconv.evaluate(network, test, timesteps, config)
    marks = res.milestones()
    return {
        "num_samples": res.num_samples,
        "timesteps": timesteps,
        "ann_top1": res.ann_top1,
        "snn_top1_at_T": res.snn_top1[-1],
        "ann_macs_per_sample": res.ann_macs_per_sample,
        "ann_other_ops_per_sample": sum(res.ann_other_ops.values()),
        "input_macs_per_sample": res.input_macs_per_sample,
        "sops_per_sample_at_T": res.sops[-1],
        "sops_per_source": {k: sum(v) for k, v in res.sops_per_source.items()},
        "milestones": marks,
        "energy": res.energy(),
        "seconds": res.seconds,
    }


def _fmt_point(point: dict | None) -> str:
    if point is None:
        return "not reached"
    return (
        f"t={point['step']:<4d} {point['ops']:>14,.0f} ops ({point['ops_ratio']:.2f}× ANN), "
        f"error {100 * point['error']:.2f} %"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", default=["lenet_avg", "lenet_max", "vgg_bn"])
    parser.add_argument("--timesteps", type=int, default=256)
    parser.add_argument("--limit", type=int, help="first N test images (default: all 10,000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--overhead", action="store_true", help="measure counting overhead")
    parser.add_argument("--tradeoff", action="store_true", help="measure error vs operations")
    parser.add_argument("--overhead-timesteps", type=int, default=64)
    parser.add_argument("--overhead-batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/operations.json"))
    args = parser.parse_args()
    if not (args.overhead or args.tradeoff):
        args.overhead = args.tradeoff = True
    torch.set_num_threads(args.threads)
    results: dict[str, dict] = json.loads(args.json.read_text()) if args.json.is_file() else {}

    def save() -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))

    for name in args.nets:
        entry = results.setdefault(name, {})
        if args.overhead:
            o = overhead(name, args.overhead_timesteps, args.overhead_batch, args.repeat)
            entry["overhead"] = o
            save()
            print(
                f"{name}: counting overhead {o['counted_seconds']:.2f} s / {o['plain_seconds']:.2f}"
                f" s = {o['ratio']:.3f} (T={o['timesteps']}, batch {o['batch']}, median of "
                f"{o['repeat']}); fan-out maps computed once in {o['fan_out_seconds']:.2f} s",
                flush=True,
            )
        if args.tradeoff:
            t = tradeoff(name, args.timesteps, args.limit)
            entry["tradeoff"] = t
            save()
            marks = t["milestones"]
            assert isinstance(marks, dict)
            print(
                f"{name}: {t['num_samples']} images, T={t['timesteps']}, ANN "
                f"{100 * t['ann_top1']:.2f} %, SNN at T {100 * t['snn_top1_at_T']:.2f} %, "
                f"ANN MACs {t['ann_macs_per_sample']:,.0f}, input MACs "
                f"{t['input_macs_per_sample']:,.0f}",
                flush=True,
            )
            for delta, point in marks["within"].items():
                print(f"  within {delta:>3} point(s): {_fmt_point(point)}")
            for fraction, point in marks["best_at_ann_ops"].items():
                print(f"  best within {fraction:>3}× ANN ops: {_fmt_point(point)}", flush=True)


if __name__ == "__main__":
    main()
