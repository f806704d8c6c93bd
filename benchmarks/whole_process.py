"""snnconv against SpikingJelly as their users run them: whole processes, import to accuracy.

For each reference net, alternately (``--repeat`` times, medians reported):

* ``snnconv run MODULE:FACTORY --weights W --dataset fashion-mnist -T T --limit N
  --threads P --out DIR``: default options, report on, a fresh process (start-up,
  import, data, capture, calibration, conversion, ANN, simulation, saving and
  ``report.html``);
* ``benchmarks/peers/whole_run.py NET --mode M`` in the peer environment:
  SpikingJelly's ``ann2snn.Converter`` (99.9 % recipe) on the same 1,000
  calibration images, then simulation of the same test images in its multi-step
  and its single-step mode (see that file); the faster of the two is compared.

Both read Fashion-MNIST from the same place and take the same number of threads.
Prints the wall times, the ratio (SpikingJelly ÷ snnconv), and each tool's top-1
after T steps with its standard error sqrt(p(1-p)/n).

Usage: python benchmarks/whole_process.py [--nets vgg_bn lenet_avg lenet_max]
       [--timesteps 256] [--images 1000] [--threads 2] [--repeat 1] [--modes multi single]
       [--peer-python benchmarks/.peer-venv/bin/python] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli_models import CLI_MODELS, model_args

HERE = Path(__file__).resolve().parent
#: The nets compared, with ``bench_factories`` written beside the run for the LeNet with
#: max pooling (the zoo's ``lenet`` takes its pooling as an argument).
FACTORIES = {
    **CLI_MODELS,
    "lenet_max": ("bench_factories:lenet_max", "lenet_max.safetensors"),
}

_FACTORY_MODULE = """from snnconv.models import zoo


def lenet_max():
    return zoo.lenet("max")
"""


def ours(name: str, args: argparse.Namespace, work: Path, run: int) -> tuple[float, float]:
    out = work / f"{name}-{run}"
    command = [
        sys.executable, "-m", "snnconv", "run", *model_args(name, FACTORIES),
        "--dataset", "fashion-mnist", "-T", str(args.timesteps), "--limit", str(args.images),
        "--threads", str(args.threads), "--out", str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"snnconv on {name} failed:\n{done.stderr[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    return seconds, results["snn"]["top1"][-1]


def peer(name: str, args: argparse.Namespace, mode: str) -> tuple[float, float, dict]:
    command = [
        str(args.peer_python), str(HERE / "peers" / "whole_run.py"), name,
        "--timesteps", str(args.timesteps), "--images", str(args.images),
        "--threads", str(args.threads), "--mode", mode,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"SpikingJelly on {name} failed:\n{done.stderr[-3000:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, record["top1"], record["seconds"]


def _stderr(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["vgg_bn", "lenet_avg", "lenet_max"])
    parser.add_argument("--timesteps", type=int, default=256)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--modes", nargs="+", choices=["multi", "single"], default=["multi", "single"]
    )
    parser.add_argument("--peer-python", type=Path, default=HERE / ".peer-venv" / "bin" / "python")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.peer_python.exists():
        sys.exit(f"{args.peer_python} is missing: run `make bench-peers-env` first")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "bench_factories.py").write_text(_FACTORY_MODULE)
        for name in args.nets:
            mine: list[float] = []
            theirs: dict[str, list[float]] = {"multi": [], "single": []}
            top1: dict[str, float] = {}
            parts: dict[str, dict] = {}
            for run in range(args.repeat):
                seconds, ours_top1 = ours(name, args, work, run)
                mine.append(seconds)
                for mode in args.modes:
                    peer_seconds, top1[mode], parts[mode] = peer(name, args, mode)
                    theirs[mode].append(peer_seconds)
                    print(
                        f"{name}: snnconv {seconds:.1f} s, "
                        f"SpikingJelly ({mode}) {peer_seconds:.1f} s"
                    )
            medians = {m: statistics.median(t) for m, t in theirs.items() if t}
            fastest = min(medians, key=medians.__getitem__)
            rows.append(
                {
                    "net": name,
                    "snnconv_seconds": statistics.median(mine),
                    "snnconv_top1": ours_top1,
                    "spikingjelly_mode": fastest,
                    "spikingjelly_seconds": medians[fastest],
                    "spikingjelly_seconds_by_mode": medians,
                    "spikingjelly_top1": top1[fastest],
                    "spikingjelly_parts": parts[fastest],
                }
            )
    n = args.images
    print(
        f"\n{n:,} test images, T = {args.timesteps}, {args.threads} threads, whole processes "
        f"(medians of {args.repeat})\n"
    )
    print(
        "| net | snnconv (s) | SpikingJelly (s; its faster mode) | SpikingJelly ÷ snnconv | "
        "snnconv top-1 | SpikingJelly top-1 | difference ÷ standard error |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        a, b = r["snnconv_top1"], r["spikingjelly_top1"]
        se = math.sqrt(_stderr(a, n) ** 2 + _stderr(b, n) ** 2)
        print(
            f"| {r['net']} | {r['snnconv_seconds']:.1f} | "
            f"{r['spikingjelly_seconds']:.1f} ({r['spikingjelly_mode']}) | "
            f"{r['spikingjelly_seconds'] / r['snnconv_seconds']:.2f}× | "
            f"{100 * a:.2f} ± {100 * _stderr(a, n):.2f} % | "
            f"{100 * b:.2f} ± {100 * _stderr(b, n):.2f} % | {abs(a - b) / se:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
