"""The ``snnconv`` command line: one parser, one dispatch.

Exit status: 0 success; 2 a user error (bad arguments, unreadable or unsafe
model file, unsupported op, bad data), reported in one paragraph without a
traceback; 1 an internal error (traceback with ``--debug``).

The options of :class:`~snnconv.config.Config` are derived from its fields
(:mod:`snnconv.cli.options`); ``--config FILE.toml`` gives options in a file
(:mod:`snnconv.cli.config_file`); what each command does is in
:mod:`snnconv.cli.commands`.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from snnconv.cli.commands import (
    DEMO_OUT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USER,
    cmd_demo,
    cmd_export_nir,
    cmd_report,
    cmd_run,
)
from snnconv.cli.config_file import merge_config_file
from snnconv.cli.finetune import add_finetune_command
from snnconv.cli.options import (
    add_checkpoint_options,
    add_config_options,
    add_data_options,
    add_model_options,
    add_nir_options,
    add_out_option,
    add_report_option,
    apply_defaults,
)
from snnconv.errors import SnnconvError

__all__ = ["EXIT_INTERNAL", "EXIT_OK", "EXIT_USER", "build_parser", "console", "main"]

_MODEL_HELP = (
    "MODEL: a .pt2 file (torch.export.save), a .onnx file, MODULE:FACTORY with --weights, or "
    "a saved snnconv directory. Options may also come from --config FILE.toml ([config]: "
    "snnconv.Config fields; [run]: this command's options); the command line wins."
)

#: What each command needs, once the command line and --config are merged.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "run": ("model", "timesteps", "dataset", "out"),
    "evaluate": ("model", "timesteps", "dataset", "out"),
    "convert": ("model", "out"),
    "finetune": ("model", "dataset", "out"),
}

#: Defaults of the demo (the other commands have none for these).
_DEMO_DEFAULTS = {"out": DEMO_OUT, "timesteps": 256, "limit": 2000}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _model_command(sub: Any, name: str, help_text: str, evaluation: bool) -> None:
    p = sub.add_parser(
        name, help=help_text, description=_MODEL_HELP, argument_default=argparse.SUPPRESS
    )
    p.add_argument("model", nargs="?", metavar="MODEL")
    p.add_argument("--config", type=Path, metavar="FILE.toml", help="options from a TOML file")
    if evaluation:
        p.add_argument("--timesteps", "-T", type=_positive_int, help="simulated steps T (required)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the conversion's passes with their parameters, and stop",
    )
    add_out_option(p)
    add_model_options(p)
    add_config_options(p, ("conversion", "execution", "operations and report"))
    add_data_options(p, evaluation=evaluation)
    if evaluation:
        add_checkpoint_options(p)
        add_report_option(p)
    p.set_defaults(func=cmd_run, parser=p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``snnconv``: options the user does not give are absent from
    the namespace (see :mod:`snnconv.cli.options`)."""
    parser = argparse.ArgumentParser(
        prog="snnconv",
        description="Convert trained CNNs into rate-coded spiking networks, simulate them, "
        "and measure accuracy at every time step.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--debug", action="store_true", default=False, help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _model_command(sub, "run", "convert + evaluate + save network and results.json", True)
    _model_command(sub, "convert", "convert and save the spiking network", False)
    _model_command(sub, "evaluate", "evaluate a saved network (or convert a model first)", True)

    demo = sub.add_parser(
        "demo",
        help="convert a small CNN trained on Fashion-MNIST, end to end",
        argument_default=argparse.SUPPRESS,
    )
    demo.add_argument("--config", type=Path, metavar="FILE.toml", help="options from a TOML file")
    demo.add_argument("--timesteps", "-T", type=_positive_int, help="(default: 256)")
    demo.add_argument(
        "--limit", type=int, metavar="N", help="test images evaluated (default: 2000; 10000 = all)"
    )
    demo.add_argument(
        "--train",
        action="store_true",
        help="train the LeNet here (about a minute) instead of using the shipped checkpoint",
    )
    demo.add_argument("--data-dir", metavar="DIR", help="where the Fashion-MNIST files are")
    add_out_option(demo, default=DEMO_OUT)
    add_config_options(demo, ("execution", "operations and report"))
    add_report_option(demo)
    demo.set_defaults(func=cmd_demo, parser=demo)

    add_finetune_command(sub, _positive_int)

    report = sub.add_parser(
        "report",
        help="rebuild DIR/report.html from DIR/results.json and DIR/arrays.safetensors",
        description="Rebuild the HTML report of a run directory (written by run, evaluate "
        "or demo) from its results.json and arrays.safetensors.",
    )
    report.add_argument("directory", metavar="DIR", help="a run's output directory")
    report.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="where to write the page (default: DIR/report.html)",
    )
    report.set_defaults(func=cmd_report, parser=report)

    nir = sub.add_parser(
        "export-nir",
        help="write a converted network as NIR (for other simulators and neuromorphic chips)",
        description="Write the spiking network saved in DIR (by `snnconv convert` or "
        "`snnconv run`) as a NIR file (nir 1.0.8). IF neurons become nir.IF with our reset "
        "rule recorded in metadata, the readout becomes nir.I. Layers NIR cannot express "
        "(spiking max-pool gate, binary neurons, spiking softmax, concatenation) are refused "
        "unless a documented substitute is chosen. See docs/interop.md.",
        argument_default=argparse.SUPPRESS,
    )
    nir.add_argument("directory", metavar="DIR", help="a saved network or run directory")
    nir.add_argument("--out", required=True, metavar="FILE.nir", help="the file to write")
    add_nir_options(nir)
    nir.set_defaults(func=cmd_export_nir, parser=nir)
    return parser


def _finish(args: argparse.Namespace) -> None:
    """Merge ``--config``, then the defaults; check what the command needs."""
    command_parser: argparse.ArgumentParser = args.parser
    if getattr(args, "config", None) is not None:
        merge_config_file(args, command_parser, args.config)
    if args.command == "demo":
        for name, value in _DEMO_DEFAULTS.items():
            if getattr(args, name, None) is None:
                setattr(args, name, value)
    apply_defaults(args, command_parser)
    if getattr(args, "dry_run", False):
        return
    missing = [
        name for name in _REQUIRED.get(args.command, ()) if getattr(args, name, None) is None
    ]
    if missing:
        names = ", ".join("MODEL" if n == "model" else "--" + n for n in missing)
        command_parser.error(f"{names} required (on the command line or in --config's [run])")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``snnconv`` command (``SNNCONV_PHASES=FILE``: write the seconds of
    each phase there as JSON, see :mod:`snnconv.phases`)."""
    from snnconv import phases

    phases.reset()
    start = time.perf_counter()
    try:
        return _main(argv)
    finally:
        target = os.environ.get("SNNCONV_PHASES")
        if target:
            record = {"phases": phases.times(), "main_seconds": time.perf_counter() - start}
            Path(target).write_text(json.dumps(record, indent=1))


def console() -> NoReturn:
    """The installed ``snnconv`` command and ``python -m snnconv``: :func:`main`, then the
    process ends without Python's teardown of its modules.

    Once torch is imported, the interpreter's teardown (collecting and finalizing every
    module's objects) takes about a third of a second and writes nothing. Output streams
    are flushed and the ``atexit`` handlers run as usual (multiprocessing's workers,
    logging, temporary files). The normal exit is taken instead where a non-daemon thread
    is still running (it waits for it) or a profiler or tracer is attached (cProfile and
    coverage write their results at exit).
    """
    code = main()
    watched = sys.getprofile() is not None or sys.gettrace() is not None  # cProfile, coverage
    waiting = any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    )
    if watched or waiting:  # they write their results at exit, or must be waited for
        sys.exit(code)
    _flush()
    atexit._run_exitfuncs()
    _flush()
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more can be written
            pass


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0") or 0)
    quiet = _quiet_rank(rank)
    try:
        _finish(args)
        return int(args.func(args))
    except SnnconvError as error:
        if rank == 0 or not getattr(error, "shared", False):  # a shared error: rank 0 says it
            message = textwrap.fill(
                str(error), width=100, break_long_words=False, break_on_hyphens=False
            )
            prefix = f"[rank {rank}] " if rank else ""
            print(f"{prefix}snnconv: error: {message}", file=sys.__stderr__ if rank else sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("snnconv: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            traceback.print_exc(file=sys.__stderr__)
        prefix = f"[rank {rank}] " if rank else ""
        print(
            f"{prefix}snnconv: internal error: {type(error).__name__}: {error}"
            + ("" if args.debug else " (run with --debug for the traceback)"),
            file=sys.__stderr__ if rank else sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        quiet.close()
        _leave_process_group()


class _quiet_rank:
    """Ranks other than 0 of a data-parallel job print nothing but their own errors."""

    def __init__(self, rank: int):
        self.saved = None
        from snnconv.distributed import in_launcher

        if rank != 0 and in_launcher():
            self.saved = (sys.stdout, sys.stderr)
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115

    def close(self) -> None:
        if self.saved is not None:
            sys.stdout.close()
            sys.stdout, sys.stderr = self.saved
            self.saved = None


def _leave_process_group() -> None:
    """End the torch.distributed group this command joined, if any."""
    if "torch.distributed" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
