"""Where a whole ``snnconv run`` spends its time, phase by phase, as the user runs it.

Runs ``snnconv run MODULE:FACTORY --weights W --dataset fashion-mnist -T T --limit N``
as a fresh process per repeat (default options, report on unless ``--no-report``)
with ``SNNCONV_PHASES`` set, and reads back the seconds of each phase
(:mod:`snnconv.phases`: import, load, data, capture, calibration, conversion,
counting, ann, simulation, results, early exit, saving, report). ``start-up`` is
the process's wall time outside ``main`` (the interpreter and the command line's
own imports); ``overhead`` is everything but ``simulation``. Medians of
``--repeat`` runs, the nets interleaved.

With ``--baseline SRC`` (the ``src`` directory of another checkout, e.g. a
``git worktree`` of the commit before a change) the same runs of that version
are interleaved with these, and the overheads compared: overhead = the
process's wall time − the evaluation loop (``results.json`` ``timing.seconds``),
defined the same way for both.

Usage: python benchmarks/run_phases.py [--nets vgg_bn lenet_avg ...] [--timesteps 1]
       [--images 1000] [--repeat 3] [--threads 2] [--no-report] [--json FILE]
       [--baseline SRC]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cli_models import model_args

PHASES = (
    "start-up", "import", "load", "data", "capture", "calibration", "conversion",
    "counting", "ann", "simulation", "results", "early exit", "saving", "report",
)  # fmt: skip


def run_once(
    name: str, args: argparse.Namespace, workdir: Path, source: Path | None = None
) -> dict[str, float]:
    """One ``snnconv run`` process: {phase: seconds, "total": wall, "evaluation": the
    evaluation loop's seconds from results.json}; ``source``: run the snnconv package of
    that ``src`` directory instead (a checkout before a change), phases then unknown."""
    tag = "baseline" if source else "current"
    record = workdir / f"{name}-{tag}.json"
    command = [
        sys.executable, "-m", "snnconv", "run", *model_args(name),
        "--dataset", "fashion-mnist", "--timesteps", str(args.timesteps),
        "--limit", str(args.images), "--out", str(workdir / f"{name}-{tag}"), "--overwrite",
        "--threads", str(args.threads), *(["--no-report"] if args.no_report else []),
    ]  # fmt: skip
    env = {**os.environ, "SNNCONV_PHASES": str(record)}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    record.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    results = json.loads((workdir / f"{name}-{tag}" / "results.json").read_text())
    phases: dict[str, float] = {}
    if record.is_file():
        measured = json.loads(record.read_text())
        phases = dict(measured["phases"])
        phases["start-up"] = wall - measured["main_seconds"]
    phases["total"] = wall
    phases["evaluation"] = results["timing"]["seconds"]
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", default=["vgg_bn", "lenet_avg"])
    parser.add_argument("--timesteps", type=int, default=1)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument(
        "--baseline", type=Path, metavar="SRC",
        help="also run the snnconv of this src directory (e.g. a checkout before a change), "
        "interleaved, and compare the overheads",
    )  # fmt: skip
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in args.nets}
    baseline: dict[str, list[dict[str, float]]] = {name: [] for name in args.nets}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for name in args.nets:
                if args.baseline:
                    baseline[name].append(run_once(name, args, Path(tmp), args.baseline))
                runs[name].append(run_once(name, args, Path(tmp)))
    table: dict[str, dict[str, Any]] = {}
    for name, measured in runs.items():
        keys = [p for p in PHASES if any(p in m for m in measured)] + ["total"]
        median = {k: statistics.median(m.get(k, 0.0) for m in measured) for k in keys}
        median["overhead"] = median["total"] - median.get("simulation", 0.0)
        table[name] = median
    names = list(table)
    print(
        f"\nsnnconv run, T = {args.timesteps}, {args.images} images, {args.threads} threads, "
        f"report {'off' if args.no_report else 'on'}; seconds, median of {args.repeat}\n"
    )
    print("| phase | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    rows = [p for p in PHASES if any(p in table[n] for n in names)] + ["total", "overhead"]
    for phase in rows:
        cells = " | ".join(f"{table[n].get(phase, 0.0):.2f}" for n in names)
        bold = "**" if phase in ("total", "overhead") else ""
        print(f"| {bold}{phase}{bold} | {cells} |")
    compared = {}
    if args.baseline:
        print(
            f"\noverhead = process wall time − the evaluation loop (results.json "
            f"timing.seconds); baseline {args.baseline}; medians of {args.repeat}\n"
        )
        print("| net | baseline total | baseline overhead | total | overhead | overhead ÷ |")
        print("|---|---|---|---|---|---|")
        for name in names:
            old_total = statistics.median(m["total"] for m in baseline[name])
            old = statistics.median(m["total"] - m["evaluation"] for m in baseline[name])
            new_total = statistics.median(m["total"] for m in runs[name])
            new = statistics.median(m["total"] - m["evaluation"] for m in runs[name])
            compared[name] = {"baseline_overhead": old, "overhead": new, "ratio": new / old}
            print(
                f"| {name} | {old_total:.2f} | {old:.2f} | {new_total:.2f} | {new:.2f} | "
                f"{new / old:.2f} |"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "median": table, "runs": runs, "baseline": baseline, "compared": compared,
        }  # fmt: skip
        args.json.write_text(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
