"""Speed suite: snnconv's simulator against the folded ANN and against peer simulators.

For each network and T, measured in one run on the same images and batches:
  * snnconv: ratio = simulation time ÷ (T × one forward pass of the folded,
    normalized float32 ANN, i.e. the converted graph run as an ANN; the dense
    floor is 1.0), seconds per 1,000 images, images/s, image·steps/s, top-1 after T
    steps, peak memory of the timed run (RSS; on CUDA also the allocator peak);
  * the peers, when their environment exists (``bash benchmarks/peers/setup.sh``
    or ``--peer-python``): SpikingJelly in single- and multi-step mode and
    sinabs (``benchmarks/peers/run_peers.py`` in a subprocess, with the same
    settings and snnconv's malloc thresholds), each with its accuracy beside its
    time; column "ours÷it" is our
    image·steps/s ÷ the tool's; a network a peer cannot convert shows why;
  * for each tool, the time to come within 1 point of the ANN: seconds per
    1,000 images at the smallest t from which its accuracy (read after every
    step of the longest run) stays within 1 point of the ANN's, interpolated
    linearly between the measured T (proportionally below the smallest);
  * peak RSS of simulating T = 64 and T = 1024 (batch ``--memory-batch``, the
    reference nets on CPU), each in its own subprocess (``bench_sim.py``).

Networks: the trained Fashion-MNIST nets ``lenet_avg`` and ``vgg_bn``, and the
CIFAR-size ``vgg11_bn`` and ``resnet20`` at 3×32×32 with random weights (seeded)
and batch-norm statistics recalibrated on real images; for those, accuracy is
agreement with the ANN's own top-1 (see ``common.benchmark_net``).

Not part of the test suite: a full run takes long on a small CPU.

Usage: python benchmarks/speed.py [--nets lenet_avg vgg_bn vgg11_bn resnet20]
       [--timesteps 32 256] [--batch 256] [--images 1000] [--threads 2] [--device cpu|cuda]
       [--chunk K] [--precision float32 bfloat16] [--peer-chunk 32]
       [--json benchmarks/results/speed.json] [--no-peers | --peer-python PATH] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from itertools import pairwise
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))

import snnconv
from bench_sim import measure_memory
from common import (
    REFERENCE_NETS,
    BenchmarkNet,
    add_speed_arguments,
    benchmark_net,
    median_time,
    synchronize,
    timed_run,
)
from snnconv.ir import Graph
from snnconv.sim.reference import run_graph
from snnconv.sim.simulator import Simulator

HERE = Path(__file__).resolve().parent
PEER_PYTHON = HERE / ".peer-venv" / "bin" / "python"
PEER_RUNNER = HERE / "peers" / "run_peers.py"
OURS = "snnconv"
SPIKINGJELLY = ("spikingjelly-single", "spikingjelly-multi")
MEMORY_STEPS = (64, 1024)


def _forward(graph: Graph, x: Tensor, device: torch.device) -> None:
    with torch.no_grad():
        run_graph(graph, x)
    synchronize(device)


def folded_forward_seconds(graph: Graph, x: Tensor, batch: int, device: torch.device) -> float:
    """One forward pass of the folded ANN over every batch of ``x`` (median of 5 each), summed."""
    x = x.to(device)
    return sum(
        median_time(partial(_forward, graph, x[first : first + batch], device), repeat=5, warmup=1)
        for first in range(0, len(x), batch)
    )


def tool_name(precision: str) -> str:
    """The results' key for snnconv simulating in ``precision``."""
    return OURS if precision == "float32" else f"{OURS}-{precision}"


def snnconv_results(
    bench: BenchmarkNet, args: argparse.Namespace, device: torch.device, precision: str
) -> dict:
    """Convert with snnconv, then time the simulator (conv/linear layers in ``precision``)
    and the folded float32 ANN on the same batches."""
    start = time.perf_counter()
    config = snnconv.Config(device=args.device, percentile=args.percentile, batch_size=args.batch)
    network = snnconv.convert(bench.model, bench.calibration, config)
    convert_seconds = time.perf_counter() - start
    sim = Simulator(network.graph, device=device, chunk=args.chunk, precision=precision)

    def run(x: Tensor, y: Tensor, timesteps: int) -> Tensor:
        return sim.run(x, y, timesteps, record_spikes=args.record_spikes).correct_top1

    forward = folded_forward_seconds(sim.graph, bench.x, args.batch, device)
    runs = {}
    for t in args.timesteps:
        runs[str(t)] = timed_run(run, bench.x, bench.y, t, args.batch, device)
        runs[str(t)]["ratio"] = runs[str(t)]["seconds"] / (t * forward)
    return {
        "conversion": {
            "percentile": args.percentile,
            "chunk": sim.chunk,
            "precision": precision,
            "record_spikes": args.record_spikes,
            "readout": "accumulated output current",
        },
        "convert_seconds": convert_seconds,
        "folded_forward_seconds": forward,
        "runs": runs,
    }


def seconds_at(runs: dict, timesteps: int) -> float:
    """Seconds per 1,000 images at ``timesteps``, from the measured T (see the module doc)."""
    points = sorted((int(t), run["s_per_1000_images"]) for t, run in runs.items())
    t0, s0 = points[0]
    if timesteps <= t0:
        return s0 * timesteps / t0
    for (t0, s0), (t1, s1) in pairwise(points):
        if timesteps <= t1:
            return s0 + (s1 - s0) * (timesteps - t0) / (t1 - t0)
    return points[-1][1] * timesteps / points[-1][0]


def within_one_point(tool: dict, ann_top1: float) -> dict:
    """The smallest t from which the tool stays within 1 point of the ANN, and its cost."""
    longest = tool["runs"][str(max(int(t) for t in tool["runs"]))]
    curve = longest["top1_per_step"]
    target = ann_top1 - 0.01
    t = len(curve)
    while t > 0 and curve[t - 1] >= target:
        t -= 1
    if t == len(curve):
        return {"timesteps": None, "note": f"not within 1 point by T = {len(curve)}"}
    return {"timesteps": t + 1, "s_per_1000_images": seconds_at(tool["runs"], t + 1)}


def run_peers(args: argparse.Namespace) -> dict:
    """Run ``peers/run_peers.py`` in the peer environment with this run's settings."""
    python = args.peer_python or PEER_PYTHON
    if args.no_peers:
        return {"skipped": "--no-peers"}
    if not Path(python).is_file():
        return {"skipped": f"{python} not found: run `bash benchmarks/peers/setup.sh`"}
    # fmt: off
    cmd = [
        str(python), str(PEER_RUNNER), "--nets", *args.nets,
        "--timesteps", *map(str, args.timesteps), "--batch", str(args.batch),
        "--images", str(args.images), "--threads", str(args.threads), "--device", args.device,
        "--seed", str(args.seed), "--percentile", str(args.percentile),
        "--chunk", str(args.peer_chunk), "--sinabs-spike", args.sinabs_spike,
        "--sinabs-normalize", args.sinabs_normalize,
    ]
    # fmt: on
    # The peers get the malloc thresholds snnconv's CPU simulator sets for itself
    # (``keep_freed_memory``): no tool is slowed by page faults on fresh tensors.
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
        "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    }
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"peer run failed (exit {done.returncode}); see its messages above"}
    return json.loads(lines[-1])


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_net(name: str, entry: dict, args: argparse.Namespace) -> None:
    """One network's rows: every T × tool, then time to within 1 point, then memory."""
    if entry["labels_from_ann"]:
        labels = (
            "labels = the ANN's own top-1 (top-1 % is agreement; the most frequent "
            f"class is {entry['majority_label_share']:.0%} of them)"
        )
    else:
        labels = f"ANN top-1 {entry['ann_top1']:.2%}"
    print(
        f"\n{name}: {entry['images']} images, {labels}; batch {args.batch}, "
        f"{args.threads} thread(s), {args.device}; folded ANN forward "
        f"{entry['tools'][OURS]['folded_forward_seconds'] / entry['images'] * 1e6:.0f} µs/image"
    )
    if abs(entry.get("peer_ann_top1", entry["ann_top1"]) - entry["ann_top1"]) > 1e-9:
        print(f"  WARNING: the peers' ANN top-1 is {entry['peer_ann_top1']:.2%}: other data?")
    head = (
        f"{'T':>5}  {'tool':<20} {'s/1k img':>9} {'img/s':>9} {'img·step/s':>11} "
        f"{'top-1 %':>8} {'ratio':>6} {'ours÷it':>7} {'peak MiB':>9}"
    )
    print(head)
    ours_runs = entry["tools"][OURS]["runs"]
    for t in map(str, args.timesteps):
        ours = ours_runs[t]["image_steps_per_s"]
        for tool, result in entry["tools"].items():
            if "error" in result:
                print(f"{t:>5}  {tool:<20} {result['error']}")
                continue
            run = result["runs"][t]
            memory = run["memory"]["cuda_peak_mib"] or run["memory"]["peak_rss_mib"]
            print(
                f"{t:>5}  {tool:<20} {run['s_per_1000_images']:>9.3f} {run['images_per_s']:>9.1f} "
                f"{run['image_steps_per_s']:>11.0f} {run['top1'] * 100:>8.2f} "
                f"{_fmt(run.get('ratio'), '.2f'):>6} {ours / run['image_steps_per_s']:>7.2f} "
                f"{_fmt(memory, '.0f'):>9}"
            )
        for tool, speedups in entry["speedup_vs_spikingjelly_best"].items():
            if t in speedups:
                print(f"{'':>7}{tool} ÷ best SpikingJelly mode (image·steps/s): {speedups[t]:.2f}×")
    print(f"  within 1 point of the ANN ({entry['ann_top1'] - 0.01:.2%} or more from step t on):")
    for tool, result in entry["within_one_point"].items():
        if result.get("timesteps") is None:
            print(f"    {tool:<20} {result['note']}")
        else:
            print(
                f"    {tool:<20} t = {result['timesteps']:>4}  "
                f"{result['s_per_1000_images']:.3f} s per 1,000 images"
            )
    memory = entry.get("memory")
    if memory and "note" not in memory:
        peaks = ", ".join(f"T={t} {memory[str(t)]['sim_peak_mib']:.0f} MiB" for t in MEMORY_STEPS)
        print(f"  peak RSS simulating, batch {args.memory_batch}: {peaks}")
    elif memory:
        print(f"  memory: {memory['note']}")


def merge(entry: dict, peer_entry: dict | None) -> None:
    """Add a net's peer results, the speed-ups and the times to within 1 point to ``entry``."""
    if peer_entry is not None:
        entry["tools"].update(peer_entry["tools"])
        entry["peer_ann_top1"] = peer_entry["ann_top1"]
    entry["speedup_vs_spikingjelly_best"] = {}
    for ours in (tool for tool in entry["tools"] if tool.startswith(OURS)):
        speedups = entry["speedup_vs_spikingjelly_best"].setdefault(ours, {})
        for t, run in entry["tools"][ours]["runs"].items():
            sj = [
                entry["tools"][tool]["runs"][t]["image_steps_per_s"]
                for tool in SPIKINGJELLY
                if "runs" in entry["tools"].get(tool, {})
            ]
            if sj:
                speedups[t] = run["image_steps_per_s"] / max(sj)
    entry["within_one_point"] = {
        tool: within_one_point(result, entry["ann_top1"])
        for tool, result in entry["tools"].items()
        if "runs" in result
    }


def write_json(path: Path, report: dict) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(report, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_speed_arguments(parser)
    parser.add_argument("--chunk", type=int, help="snnconv's steps per chunk (device default)")
    parser.add_argument("--record-spikes", action="store_true", help="count spikes (off: peers)")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=["float32", "bfloat16", "float16"],
        default=["float32"],
        help="snnconv's conv/linear format(s), each timed as its own row (float32 always first)",
    )
    parser.add_argument("--peer-chunk", type=int, default=32, help="peers' steps per call")
    parser.add_argument("--peer-python", type=Path, help=f"default: {PEER_PYTHON}")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--sinabs-spike", choices=["multi", "single"], default="multi")
    parser.add_argument("--sinabs-normalize", choices=["rueckauer", "sinabs"], default="rueckauer")
    parser.add_argument("--memory-batch", type=int, default=64)
    parser.add_argument("--no-memory", action="store_true", help="skip the T=64/1024 RSS runs")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/speed.json"))
    args = parser.parse_args()
    args.precision = ["float32", *(p for p in dict.fromkeys(args.precision) if p != "float32")]
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    report: dict = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "snnconv": snnconv.__version__,
        },
        "nets": {},
    }
    for name in args.nets:
        print(f"[speed] {name}: snnconv", file=sys.stderr, flush=True)
        bench = benchmark_net(name, args.images, args.seed)
        report["nets"][name] = {
            "ann_top1": bench.ann_top1,
            "labels_from_ann": bench.labels_from_ann,
            "images": len(bench.x),
            "majority_label_share": torch.bincount(bench.y).max().item() / len(bench.y),
            "tools": {
                tool_name(p): snnconv_results(bench, args, device, p) for p in args.precision
            },
        }
        if args.no_memory:
            continue
        if name in REFERENCE_NETS and device.type == "cpu":
            report["nets"][name]["memory"] = {
                str(t): measure_memory(name, t, args.memory_batch, args.threads)
                for t in MEMORY_STEPS
            }
        else:
            note = "T=64/1024 RSS runs cover the reference nets on CPU (bench_sim.py)"
            report["nets"][name]["memory"] = {"note": note}

    peers = run_peers(args)
    report["peers"] = {k: v for k, v in peers.items() if k != "nets"}
    for name, entry in report["nets"].items():
        merge(entry, peers.get("nets", {}).get(name))
        print_net(name, entry, args)
    if "skipped" in peers or "error" in peers:
        print(f"\npeers: {peers.get('skipped') or peers.get('error')}")
    else:
        print(f"\npeer versions: {peers['versions']}")
    write_json(args.json, report)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
