"""One process against ``torchrun --nproc-per-node N`` for the same run, as the user runs it.

Runs ``snnconv run MODULE:FACTORY --weights W --dataset fashion-mnist -T T --limit N``
as one process with ``--threads P`` (all the cores), as one process with P/N threads,
and under torchrun as N processes of P/N threads each (gloo on the CPU; NCCL where
``--device cuda``), times each whole command, and checks that the N-process run's
``results.json`` holds the same counts (per-step top-1/top-5, operations, spike
rates, λ per layer) as the one process with as many threads per process. (PyTorch's
CPU kernels round differently with a different number of threads, so runs with
different thread counts agree only to float rounding.) Prints a markdown table.

Usage: python benchmarks/distributed.py [--nets vgg_bn lenet_avg] [--processes 2]
       [--threads 2] [--timesteps 64] [--limit 1000] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cli_models import model_args


def _counts(results: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between the runs."""
    return {
        "num_samples": results["num_samples"],
        "ann": results["ann"]["top1"],
        "top1": results["snn"]["top1"],
        "top5": results["snn"]["top5"],
        "sops": results["snn"]["sops_per_sample"],
        "rates": [layer["mean_rate"] for layer in results["layers"]],
        "scales": [layer["scale"] for layer in results["layers"]],
    }


def run(
    name: str, processes: int, threads: int, args: argparse.Namespace, out: Path
) -> tuple[float, dict]:
    command = [
        "-m", "snnconv", "run", *model_args(name),
        "--dataset", "fashion-mnist", "-T", str(args.timesteps), "--limit", str(args.limit),
        "--threads", str(threads), "--device", args.device, "--no-report", "--out", str(out),
    ]  # fmt: skip
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={processes}"]
        if processes > 1
        else [sys.executable]
    )  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(launcher + command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} with {processes} process(es) failed:\n{done.stderr[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    return seconds, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["vgg_bn", "lenet_avg"])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timesteps", type=int, default=64)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = []
    n = args.processes
    per_process = max(1, args.threads // n)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.nets:
            whole_s, whole = run(name, 1, args.threads, args, Path(tmp) / f"{name}-a")
            one_s, one = run(name, 1, per_process, args, Path(tmp) / f"{name}-1")
            many_s, many = run(name, n, per_process, args, Path(tmp) / f"{name}-n")
            a, b = _counts(one), _counts(many)
            for key in a:
                if a[key] != b[key]:
                    print(f"{name}: {key} differs: {str(a[key])[:120]} / {str(b[key])[:120]}")
            pairs = zip(whole["snn"]["top1"], many["snn"]["top1"], strict=True)
            gap = max(abs(x - y) for x, y in pairs)
            rows.append((name, whole_s, one_s, many_s, many["timing"]["seconds"], a == b, gap))
            print(f"{name}: done", flush=True)
    print(
        f"\n{args.limit:,} images, T = {args.timesteps}, {args.threads} threads in all, "
        f"device {args.device}\n"
    )
    print(
        f"| net | 1 process × {args.threads} threads (s) | 1 process × {per_process} (s) | "
        f"{n} processes × {per_process} (s) | their evaluation loop (s) | "
        f"{n} processes vs 1 × {args.threads} | counts equal to 1 × {per_process} | "
        f"largest top-1 gap to 1 × {args.threads} |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, whole_s, one_s, many_s, many_e, same, gap in rows:
        print(
            f"| {name} | {whole_s:.1f} | {one_s:.1f} | {many_s:.1f} | {many_e:.1f} | "
            f"{whole_s / many_s:.2f}× | {'yes' if same else 'NO'} | {100 * gap:.2f} pt |"
        )


if __name__ == "__main__":
    main()
