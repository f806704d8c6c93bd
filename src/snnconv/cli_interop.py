"""Command-line pieces for interoperability: ``snnconv export-nir`` and the ONNX input options.

The main parser (:mod:`snnconv.cli`) wires these in:

* ``add_export_nir_parser(subparsers)`` adds the ``export-nir`` command, whose
  handler is ``cmd_export_nir(args)`` (set as the sub-parser's ``func`` default);
* ``add_input_layout_option(parser)`` adds ``--input-layout`` and
  ``--input-shape`` to commands that take a MODEL; pass
  ``**onnx_load_options(args)`` to :func:`snnconv.importers.load.load_model`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from snnconv.errors import ConfigError

EXIT_OK = 0


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 1,28,28, got {text!r}"
        ) from None
    if not shape or any(v < 1 for v in shape):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 1,28,28, got {text!r}")
    return shape


def add_input_layout_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--input-layout`` and ``--input-shape`` (used by ``.onnx`` models)."""
    parser.add_argument(
        "--input-layout",
        choices=["auto", "nchw", "nhwc"],
        default="auto",
        help="ONNX models: layout of the image input. auto detects a channels-last (NHWC) "
        "Keras/tf2onnx input by the transpose it feeds; data is always fed as NCHW "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--input-shape",
        type=_shape,
        default=None,
        metavar="C,H,W",
        help="ONNX models with dynamic input dimensions: one sample's shape as the data "
        "gives it (channels first), e.g. 1,28,28",
    )


def onnx_load_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``load_model`` from the options of :func:`add_input_layout_option`."""
    return {
        "input_layout": getattr(args, "input_layout", "auto"),
        "input_shape": getattr(args, "input_shape", None),
    }


def add_export_nir_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``export-nir DIR --out FILE.nir`` to ``subparsers`` (from ``add_subparsers``)."""
    from snnconv.exporters.nir import NirPooling, NirSubstitute

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export-nir",
        help="write a converted network as NIR (for other simulators and neuromorphic chips)",
        description="Write the spiking network saved in DIR (by `snnconv convert` or "
        "`snnconv run`) as a NIR file (nir 1.0.8). IF neurons become nir.IF with our reset "
        "rule recorded in metadata, the readout becomes nir.I. Layers NIR cannot express "
        "(spiking max-pool gate, binary neurons, spiking softmax, concatenation) are refused "
        "unless a documented substitute is chosen. See docs/interop.md.",
    )
    parser.add_argument("directory", metavar="DIR", help="a saved network or run directory")
    parser.add_argument("--out", required=True, metavar="FILE.nir", help="the file to write")
    parser.add_argument(
        "--pooling",
        choices=[p.value for p in NirPooling],
        default=NirPooling.AVERAGE.value,
        help="average pooling as nir.AvgPool2d, or as nir.SumPool2d with 1/k² folded into "
        "the next layer (default: %(default)s)",
    )
    parser.add_argument(
        "--substitute",
        action="append",
        default=[],
        choices=[s.value for s in NirSubstitute],
        help="opt into a documented approximation: average-pool writes the max-pool gate as "
        "average pooling (changes the network); drop-initial-state ignores the membrane "
        "clamp and v_init. Repeatable.",
    )
    parser.set_defaults(func=cmd_export_nir)
    return parser


def cmd_export_nir(args: argparse.Namespace) -> int:
    """Run ``export-nir``: returns the exit status (errors raise ``SnnconvError``)."""
    from snnconv.exporters.nir import export_nir
    from snnconv.outputs import check_writable, missing_run_hint

    directory = Path(args.directory)
    if not directory.exists():
        raise ConfigError(
            f"{directory} does not exist; give a saved network or run directory."
            + missing_run_hint(directory)
        )
    target = check_writable(args.out, "--out")
    if target.is_dir():
        raise ConfigError(
            f"--out {target} is a directory: give the file to write, e.g. {target / 'model.nir'}"
        )
    out = export_nir(
        directory, Path(args.out), pooling=args.pooling, substitutes=tuple(args.substitute)
    )
    print(f"wrote {out}")
    return EXIT_OK


__all__ = [
    "add_export_nir_parser",
    "add_input_layout_option",
    "cmd_export_nir",
    "onnx_load_options",
]
