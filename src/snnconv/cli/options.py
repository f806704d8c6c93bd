"""The command line's options: those of :class:`~snnconv.config.Config`, derived from its
fields, and the run's own (model, data, output).

Every option is parsed with no default (``argparse.SUPPRESS``): an option the user
did not give is absent from the namespace, so that a ``--config`` file can fill it,
that a saved network can tell which options were asked for, and that the defaults
come from one place: the :class:`~snnconv.config.Config` fields and :data:`RUN_DEFAULTS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
from typing import Any

from snnconv.config import Config, Option, Stage
from snnconv.modes import NirPooling, NirSubstitute

__all__ = [
    "RUN_DEFAULTS",
    "add_checkpoint_options",
    "add_config_options",
    "add_data_options",
    "add_model_options",
    "add_out_option",
    "apply_defaults",
    "config_from",
    "flag",
    "given",
]

#: Defaults of the run's own options (the Config fields' defaults are the fields').
RUN_DEFAULTS: dict[str, Any] = {
    "split": "test",
    "limit": None,
    "data_dir": None,
    "mean": None,
    "std": None,
    "image_size": None,
    "resize": None,
    "crop": None,
    "labels": None,
    "workers": None,
    "calibration": None,
    "weights": None,
    "random_weights": False,
    "input_layout": "auto",
    "input_shape": None,
    "overwrite": False,
    "report": True,
    "progress": None,
    "dry_run": False,
    "train": False,
    "pooling": NirPooling.AVERAGE.value,
    "substitute": [],
    "resume": False,
    "checkpoint_every": "10m",
}


def flag(name: str) -> str:
    """The command-line flag of Config field ``name``."""
    return Config.option(name).flag or "--" + name.replace("_", "-")


def _shown(value: Any) -> str:
    return str(value.value if isinstance(value, enum.Enum) else value)


def _add_option(group: Any, name: str, option: Option, default: Any) -> None:
    help_text = option.help
    if default is not None and not option.optional:
        help_text += f" (default: {_shown(default)})"
    kwargs: dict[str, Any] = {"dest": name, "help": help_text}
    if option.kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif issubclass(option.kind, enum.Enum):
        kwargs["choices"] = [m.value for m in option.kind]
    else:
        kwargs["type"] = option.kind
        kwargs["metavar"] = option.metavar
    if name == "batch_size":
        kwargs["type"], kwargs["metavar"] = _batch_size, "N|auto"
        kwargs["help"] = help_text.replace(" (default", ", or auto: the largest that fits (default")
    group.add_argument(flag(name), **kwargs)


def _batch_size(text: str) -> int | str:
    """``--batch-size``: a positive number, or ``auto`` (chosen from the memory)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or auto, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {value}")
    return value


def add_config_options(parser: argparse.ArgumentParser, groups: tuple[str, ...]) -> None:
    """Add the Config fields of the given help groups, in field order, one group each."""
    made: dict[str, Any] = {}
    for field in dataclasses.fields(Config):
        option = Config.option(field.name)
        if option.group not in groups or option.flag == "-":
            continue
        if option.group not in made:
            made[option.group] = parser.add_argument_group(option.group)
        _add_option(made[option.group], field.name, option, field.default)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """MODEL's weights and, for ONNX models, the input layout and shape."""
    g = parser.add_argument_group("model")
    g.add_argument(
        "--weights",
        metavar="FILE",
        help="weights for a MODULE:FACTORY model: .safetensors or a state dict "
        "(loaded with weights_only=True)",
    )
    g.add_argument(
        "--random-weights",
        action="store_true",
        help="run a MODULE:FACTORY model with the random weights its factory gives "
        "(instead of --weights; recorded in results.json)",
    )
    g.add_argument(
        "--input-layout",
        choices=["auto", "nchw", "nhwc"],
        help="ONNX models: layout of the image input. auto detects a channels-last (NHWC) "
        "Keras/tf2onnx input by the transpose it feeds; data is always fed as NCHW "
        "(default: auto)",
    )
    g.add_argument(
        "--input-shape",
        type=_shape,
        metavar="C,H,W",
        help="ONNX models with dynamic input dimensions: one sample's shape as the data "
        "gives it (channels first), e.g. 1,28,28",
    )


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


def add_data_options(parser: argparse.ArgumentParser, evaluation: bool) -> None:
    """The data: what is evaluated (``evaluation``) and where calibration comes from."""
    g = parser.add_argument_group("data")
    if evaluation:
        g.add_argument(
            "--dataset",
            metavar="DATASET",
            help="evaluation data: fashion-mnist, mnist, cifar10, digits, imagefolder:PATH, "
            "npz:PATH (required)",
        )
        g.add_argument(
            "--split",
            choices=["train", "test"],
            help="split of --dataset to evaluate (default: test)",
        )
        g.add_argument(
            "--limit", type=int, metavar="N", help="evaluate only the first N samples (file order)"
        )
    g.add_argument(
        "--calibration",
        metavar="DATASET",
        help="dataset for normalization statistics (default: the training split of --dataset)",
    )
    g.add_argument("--data-dir", metavar="DIR", help="where dataset files are (also: SNNCONV_DATA)")
    g.add_argument(
        "--mean",
        type=float,
        nargs="+",
        metavar="M",
        help="per-channel mean subtracted after scaling to [0, 1]",
    )
    g.add_argument(
        "--std",
        type=float,
        nargs="+",
        metavar="S",
        help="per-channel std divided by after subtracting --mean",
    )
    g.add_argument(
        "--image-size",
        type=int,
        metavar="N",
        help="imagefolder datasets: resize the shorter side to N and centre-crop N×N",
    )
    g.add_argument(
        "--resize",
        type=int,
        metavar="N",
        help="imagefolder datasets: resize the shorter side to N before the crop (ImageNet: "
        "--resize 256 --crop 224)",
    )
    g.add_argument(
        "--crop", type=int, metavar="N", help="imagefolder datasets: centre-crop N×N pixels"
    )
    g.add_argument(
        "--labels",
        metavar="FILE",
        help="imagefolder datasets in the ImageNet validation layout (one flat folder): the "
        "class of each image, one 'filename,class_index' or 'filename wnid' per line",
    )
    g.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="imagefolder datasets: processes decoding images in parallel (default: up to 4 "
        "for 512 images or more, else 0: the main process)",
    )


def add_out_option(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--out DIR`` (required unless ``default``) and ``--overwrite``."""
    g = parser.add_argument_group("output")
    if default is None:
        g.add_argument("--out", metavar="DIR", help="output directory (required)")
    else:
        g.add_argument(
            "--out", metavar="DIR", help=f"output directory (default: {default}, replaced)"
        )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty --out whole (by default it is refused)",
    )
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="progress bars (default: when stderr is a terminal)",
    )


def add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    """``--resume`` and ``--checkpoint-every``."""
    g = parser.add_argument_group("long runs")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run whose checkpoint --out holds (the same model, data, "
        "options and number of processes); without a checkpoint, start from the beginning",
    )
    g.add_argument(
        "--checkpoint-every",
        metavar="N|TIME",
        help="save the evaluation's progress in --out/checkpoint every N batches or TIME "
        "(90s, 10m, 1h; 0: never; default: 10m)",
    )


def add_report_option(parser: argparse.ArgumentParser) -> None:
    """``--report/--no-report``."""
    parser.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        help="write DIR/report.html with the plots (needs matplotlib; default: on)",
    )


def add_nir_options(parser: argparse.ArgumentParser) -> None:
    """The NIR exporter's choices."""
    parser.add_argument(
        "--pooling",
        choices=[p.value for p in NirPooling],
        help="average pooling as nir.AvgPool2d, or as nir.SumPool2d with 1/k² folded into "
        "the next layer (default: average)",
    )
    parser.add_argument(
        "--substitute",
        action="append",
        choices=[s.value for s in NirSubstitute],
        help="opt into a documented approximation: average-pool writes the max-pool gate as "
        "average pooling (changes the network); drop-initial-state ignores the membrane "
        "clamp and v_init. Repeatable.",
    )


def given(args: argparse.Namespace, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The Config fields the user gave (on the command line or in ``--config``)."""
    names = Config.names() if names is None else names
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def config_from(args: argparse.Namespace) -> Config:
    """The Config of the options given; the others keep their defaults. With
    ``--target-timesteps`` the options given are kept as they are (``Config.keep``)."""
    options = given(args)
    if options.get("target_timesteps") is not None:
        options["keep"] = tuple(name for name in options if name != "target_timesteps")
    return Config(**options)


def apply_defaults(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill the run options the user did not give with :data:`RUN_DEFAULTS` (those the
    parser knows of)."""
    known = {action.dest for action in parser._actions}
    for name, value in RUN_DEFAULTS.items():
        if name in known and not hasattr(args, name):
            setattr(args, name, value)


def stage_options(stage: Stage) -> tuple[str, ...]:
    """The Config fields that act at ``stage``."""
    return Config.names(stage)
