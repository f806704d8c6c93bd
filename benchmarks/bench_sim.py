"""Simulation speed and memory of the reference nets on CPU.

Prints, measured in one run:
  * ratio = simulation time ÷ (T × one forward pass of the batch-norm-folded
    ANN over the same batch), for each chunk size K, at T = 256, batch 256;
  * peak RSS of simulating T = 64 and T = 1024 at the same batch size, each
    in its own subprocess (peak RSS only grows within a process).

Usage: python benchmarks/bench_sim.py [--threads 2] [--timesteps 256] [--chunks 1 2 4 8 16]
       [--json benchmarks/results/bench_sim.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import snnconv
from common import fashion_mnist, median_time, reference_net, reset_peak_memory, status_mib
from snnconv.sim.reference import run_graph
from snnconv.sim.simulator import Simulator


def _converted(name: str) -> tuple[snnconv.SpikingNetwork, torch.Tensor, torch.Tensor]:
    calibration, test = fashion_mnist()
    network = snnconv.convert(reference_net(name), calibration, snnconv.Config(device="cpu"))
    x, y = test.tensors
    return network, x, y


def memory_child(name: str, timesteps: int, batch: int, chunk: int | None) -> None:
    """Run in a subprocess: simulate and print peak RSS (MiB) as JSON.

    Loading and converting (calibration data) peak before the simulation
    starts, so the peak is reset (``/proc/self/clear_refs``) just before it:
    ``sim_peak_mib`` is the highest RSS during the simulation itself.
    """
    network, x, y = _converted(name)
    xb, yb = x[:batch].clone(), y[:batch].clone()
    del x, y
    gc.collect()
    reset_peak_memory(torch.device("cpu"))
    before = status_mib("VmRSS")
    Simulator(network.graph, chunk=chunk).run(xb, yb, timesteps)
    peak = status_mib("VmHWM")
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "sim_peak_mib": peak,
                "before_sim_mib": before,
                "sim_increase_mib": None if peak is None or before is None else peak - before,
                "process_peak_mib": process_peak,
            }
        )
    )


def measure_memory(name: str, timesteps: int, batch: int, threads: int) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        name,
        str(timesteps),
        str(batch),
        "--threads",
        str(threads),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _forward_loop(graph: object, x: torch.Tensor, steps: int) -> None:
    for _ in range(steps):
        run_graph(graph, x)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timesteps", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--memory-batch", type=int, default=64)
    parser.add_argument("--nets", nargs="+", default=["lenet_avg", "vgg_bn"])
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_sim.json"))
    parser.add_argument("--memory-child", nargs=3, metavar=("NET", "T", "BATCH"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        name, t, b = args.memory_child
        memory_child(name, int(t), int(b), None)
        return

    report: dict[str, dict] = {"threads": args.threads, "torch": torch.__version__, "nets": {}}
    T = args.timesteps
    for name in args.nets:
        network, x, y = _converted(name)
        xb, yb = x[: args.batch], y[: args.batch]
        ann = network.graph  # IF layers act as ReLU: the folded, normalized ANN
        # T forward passes in a row, measured like the simulation (best of 3 each).
        forward_t = min(
            median_time(partial(_forward_loop, ann, xb, T), repeat=1, warmup=0) for _ in range(3)
        )
        forward = forward_t / T
        rows = {}
        print(
            f"\n{name}: batch {args.batch}, T = {T}, {args.threads} threads, "
            f"folded ANN forward {forward * 1e3:.1f} ms"
        )
        print(f"{'chunk K':>8} {'sim (s)':>9} {'ms/step':>8} {'ratio':>6}")
        for chunk in args.chunks:
            sim = Simulator(network.graph, chunk=chunk)
            sim.run(xb[:32], yb[:32], 8)
            seconds = min(
                median_time(partial(sim.run, xb, yb, T), repeat=1, warmup=0) for _ in range(3)
            )
            ratio = seconds / (T * forward)
            rows[chunk] = {"seconds": seconds, "ratio": ratio}
            print(f"{chunk:>8} {seconds:>9.2f} {seconds / T * 1e3:>8.1f} {ratio:>6.2f}")
        memory = {t: measure_memory(name, t, args.memory_batch, args.threads) for t in (64, 1024)}
        growth = memory[1024]["sim_peak_mib"] / memory[64]["sim_peak_mib"]
        print(
            f"peak RSS during simulation, batch {args.memory_batch}: "
            f"T=64 {memory[64]['sim_peak_mib']:.0f} MiB "
            f"(+{memory[64]['sim_increase_mib']:.0f} over the converted net), "
            f"T=1024 {memory[1024]['sim_peak_mib']:.0f} MiB "
            f"(+{memory[1024]['sim_increase_mib']:.0f}); ratio {growth:.3f}"
        )
        report["nets"][name] = {
            "forward_seconds": forward,
            "chunks": rows,
            "memory": memory,
            "memory_growth": growth,
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
