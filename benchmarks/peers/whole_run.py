"""SpikingJelly end to end, as its user runs it: one process from import to accuracy.

Runs inside the peer environment (``bash benchmarks/peers/setup.sh``). Imports
torch and SpikingJelly, builds the reference net with its trained weights, reads
Fashion-MNIST, converts with ``ann2snn.Converter(RateCodingRecipe(mode="99.9%"))``
on the same 1,000 calibration images snnconv uses, simulates the first N test
images for T steps in multi-step mode (chunks of K steps) or single-step mode
(``--mode``), and prints one JSON line: top-1 after T steps,
the ANN's top-1, and the seconds of each part. ``benchmarks/whole_process.py``
times the process from outside (the start-up and imports included).

Usage: benchmarks/.peer-venv/bin/python benchmarks/peers/whole_run.py NET
       [--timesteps 256] [--images 1000] [--batch 256] [--chunk 32] [--threads 2]
       [--mode multi|single]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
START = time.perf_counter()

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("net")
    parser.add_argument("--timesteps", type=int, default=256)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", choices=["multi", "single"], default="multi")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from run_peers import spikingjelly_multi, spikingjelly_single
    from spikingjelly.activation_based import ann2snn

    from common import fashion_mnist, reference_net

    seconds = {"import": time.perf_counter() - START}
    t = time.perf_counter()
    model = reference_net(args.net).eval()
    calibration, test = fashion_mnist()
    x, y = test.tensors[0][: args.images], test.tensors[1][: args.images]
    seconds["load"] = time.perf_counter() - t
    t = time.perf_counter()
    recipe = ann2snn.RateCodingRecipe(
        dataloader=list(calibration.tensors[0].split(100)), mode="99.9%"
    )
    net = ann2snn.Converter(recipe=recipe, device="cpu").convert(model).eval()
    seconds["conversion"] = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        ann = sum(
            int((reference_net(args.net).eval()(xb).argmax(1) == yb).sum())
            for xb, yb in zip(x.split(args.batch), y.split(args.batch), strict=True)
        )
    seconds["ann"] = time.perf_counter() - t
    t = time.perf_counter()
    run = spikingjelly_multi(net, args.chunk) if args.mode == "multi" else spikingjelly_single(net)
    correct = torch.zeros(args.timesteps, dtype=torch.int64)
    for xb, yb in zip(x.split(args.batch), y.split(args.batch), strict=True):
        correct += run(xb, yb, args.timesteps)
    seconds["simulation"] = time.perf_counter() - t
    print(
        json.dumps(
            {
                "tool": f"spikingjelly-{args.mode}",
                "net": args.net,
                "timesteps": args.timesteps,
                "images": len(x),
                "top1": int(correct[-1]) / len(x),
                "ann_top1": ann / len(x),
                "seconds": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
