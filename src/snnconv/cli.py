"""The ``snnconv`` command line.

Exit status: 0 success; 2 a user error (bad arguments, unreadable or unsafe
model file, unsupported op, bad data), reported in one paragraph without a
traceback; 1 an internal error (traceback with ``--debug``).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
import traceback
from collections.abc import Sequence
from typing import Any

from snnconv.cli_interop import (
    add_export_nir_parser,
    add_input_layout_option,
    cmd_export_nir,
    onnx_load_options,
)
from snnconv.errors import ConfigError, SnnconvError

EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2
#: ``--precision`` choices: the values of :class:`snnconv.config.Precision` (not imported
#: here, so that ``--help`` does not load torch).
PRECISIONS = ("float32", "bfloat16", "float16")


def _add_conversion_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("conversion")
    g.add_argument(
        "--percentile",
        type=float,
        metavar="P",
        help="robust maximum per layer: P-th percentile of non-zero activations, "
        "in (0, 100]; 100 = max-norm (default: 99.9)",
    )
    g.add_argument(
        "--pool-aware-percentile",
        action=argparse.BooleanOptionalAction,
        help="a layer feeding max pooling takes λ no smaller than the percentile of its "
        "max-pooled values (default: on)",
    )
    g.add_argument(
        "--reset",
        choices=["subtract", "zero"],
        help="IF reset: by subtraction (V-=θ) or to zero (default: subtract)",
    )
    g.add_argument(
        "--input",
        dest="input_encoding",
        choices=["analog", "poisson"],
        default="analog",
        help="input encoding (default: %(default)s)",
    )
    g.add_argument(
        "--v-init",
        type=float,
        metavar="F",
        help="initial membrane potential as a fraction of θ, in [0, 1) "
        "(default: 0; 0.5 centres the quantization error)",
    )
    g.add_argument(
        "--readout",
        choices=["potential", "spikes", "softmax"],
        default="potential",
        help="output readout: accumulated membrane potential, spike counts, or the "
        "spiking softmax (default: %(default)s)",
    )
    g.add_argument(
        "--maxpool",
        choices=["gate", "average"],
        help="max-pooling: the spiking rate gate, or replace by average pooling "
        "(changes the ANN) (default: gate)",
    )
    g.add_argument(
        "--rate-estimator",
        choices=["count", "moving_average", "exponential"],
        help="the max-pool gate's online rate estimate (default: count)",
    )
    g.add_argument(
        "--rate-window",
        type=int,
        metavar="N",
        help="window of the moving-average estimator (default: 16)",
    )
    g.add_argument(
        "--rate-decay",
        type=float,
        metavar="D",
        help="decay of the exponential estimator (default: 0.9)",
    )
    g.add_argument(
        "--binary-threshold",
        type=float,
        metavar="θ",
        help="threshold of units replacing binary activations (default: 0.05)",
    )
    g.add_argument(
        "--clamp-steps",
        type=int,
        metavar="K",
        help="membrane clamp: a layer at depth d holds its membrane for K*d steps "
        "(default: 0 = off)",
    )
    g.add_argument(
        "--negative-spikes",
        action=argparse.BooleanOptionalAction,
        help="IF neurons take back spikes fired by a transient: a -1 spike at V <= -θ "
        "while their net count is positive (needs --reset subtract; default: off)",
    )
    g.add_argument(
        "--calibration",
        metavar="DATASET",
        help="dataset for normalization statistics (default: the training split of --dataset)",
    )
    g.add_argument(
        "--calibration-samples",
        type=int,
        metavar="N",
        help="calibration samples drawn with --seed (default: 1000)",
    )
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


def _add_data_options(p: argparse.ArgumentParser, evaluation: bool) -> None:
    g = p.add_argument_group("data")
    if evaluation:
        g.add_argument(
            "--dataset",
            required=True,
            metavar="DATASET",
            help="evaluation data: fashion-mnist, mnist, digits, npz:PATH",
        )
        g.add_argument(
            "--split",
            choices=["train", "test"],
            default="test",
            help="split of --dataset to evaluate (default: %(default)s)",
        )
        g.add_argument(
            "--limit", type=int, metavar="N", help="evaluate only the first N samples (file order)"
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


def _add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--batch-size", type=int, default=256, help="(default: %(default)s)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    g.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    g.add_argument("--seed", type=int, default=0, help="seed for sampling and Poisson input")
    g.add_argument(
        "--chunk", type=int, help="time steps per layer call (default: measured per device)"
    )
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="number format of the conv/linear layers between spiking layers: float32 "
        "(exact, default), bfloat16 (faster convolutions on CPUs with AVX512-BF16 or AMX, "
        "and on GPUs) or float16 (GPUs); measure the accuracy effect",
    )
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal)",
    )


def _add_report_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("operations and report")
    g.add_argument(
        "--energy-ac",
        dest="energy_ac_pj",
        type=float,
        default=0.9,
        metavar="PJ",
        help="energy of one synaptic accumulate in pJ for the energy estimate "
        "(default: %(default)s, 32-bit float add, 45 nm)",
    )
    g.add_argument(
        "--energy-mac",
        dest="energy_mac_pj",
        type=float,
        default=4.6,
        metavar="PJ",
        help="energy of one multiply-accumulate in pJ (default: %(default)s, 32-bit float, 45 nm)",
    )
    g.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write DIR/report.html with the plots (needs matplotlib; default: on)",
    )


#: The demo's own output directory, which it replaces at every run.
DEMO_OUT = "runs/demo"


def _add_out_option(p: argparse.ArgumentParser, default: str | None = None) -> None:
    g = p.add_argument_group("output")
    if default is None:
        g.add_argument("--out", required=True, metavar="DIR", help="output directory")
    else:
        g.add_argument(
            "--out",
            default=default,
            metavar="DIR",
            help="output directory (default: %(default)s, replaced at every run)",
        )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty --out whole (by default it is refused)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``snnconv``."""
    parser = argparse.ArgumentParser(
        prog="snnconv",
        description="Convert trained CNNs into rate-coded spiking networks, simulate them, "
        "and measure accuracy at every time step.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    model_help = (
        "MODEL: a .pt2 file (torch.export.save), a .onnx file, MODULE:FACTORY with "
        "--weights, or a saved snnconv directory"
    )
    run = sub.add_parser(
        "run", help="convert + evaluate + save network and results.json", description=model_help
    )
    run.add_argument("model", metavar="MODEL")
    run.add_argument("--timesteps", "-T", type=int, required=True, help="simulated steps T")
    _add_out_option(run)
    add_input_layout_option(run)
    _add_conversion_options(run)
    _add_data_options(run, evaluation=True)
    _add_run_options(run)
    _add_report_options(run)

    conv = sub.add_parser(
        "convert", help="convert and save the spiking network", description=model_help
    )
    conv.add_argument("model", metavar="MODEL")
    _add_out_option(conv)
    add_input_layout_option(conv)
    _add_conversion_options(conv)
    _add_data_options(conv, evaluation=False)
    _add_run_options(conv)

    ev = sub.add_parser(
        "evaluate",
        help="evaluate a saved network (or convert a model first)",
        description=model_help,
    )
    ev.add_argument("model", metavar="DIR_OR_MODEL")
    ev.add_argument("--timesteps", "-T", type=int, required=True, help="simulated steps T")
    _add_out_option(ev)
    add_input_layout_option(ev)
    _add_conversion_options(ev)
    _add_data_options(ev, evaluation=True)
    _add_run_options(ev)
    _add_report_options(ev)

    demo = sub.add_parser("demo", help="convert a small CNN trained on Fashion-MNIST, end to end")
    _add_out_option(demo, default=DEMO_OUT)
    demo.add_argument("--timesteps", "-T", type=int, default=256, help="(default: %(default)s)")
    demo.add_argument(
        "--limit",
        type=int,
        default=2000,
        metavar="N",
        help="test images evaluated (default: %(default)s; 10000 = all)",
    )
    demo.add_argument(
        "--train",
        action="store_true",
        help="train the LeNet here (about a minute) instead of using the shipped checkpoint",
    )
    demo.add_argument("--data-dir", metavar="DIR", help="where the Fashion-MNIST files are")
    _add_run_options(demo)
    _add_report_options(demo)

    report = sub.add_parser(
        "report",
        help="rebuild DIR/report.html from DIR/results.json and DIR/arrays.safetensors",
        description="Rebuild the HTML report of a run directory (written by run, evaluate "
        "or demo) from its results.json and arrays.safetensors.",
    )
    report.add_argument("directory", metavar="DIR", help="a run's output directory")
    report.add_argument(
        "--out", metavar="FILE", help="where to write the page (default: DIR/report.html)"
    )
    add_export_nir_parser(sub)
    return parser


def _config(args: argparse.Namespace) -> Any:
    """The Config of the options this command has (its argparse dests are Config's field
    names; options it lacks or the user did not give keep their defaults)."""
    import dataclasses

    from snnconv.config import Config

    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Config)
        if getattr(args, f.name, None) is not None
    }
    return Config(**given)


#: Conversion options that only a new conversion can apply (not a saved network).
NEEDS_CONVERSION = ("percentile", "pool_aware_percentile", "maxpool", "calibration_samples")

#: Conversion options a saved network is re-simulated with (its neurons' dynamics).
DYNAMICS = (
    "reset",
    "v_init",
    "negative_spikes",
    "clamp_steps",
    "rate_estimator",
    "rate_window",
    "rate_decay",
    "binary_threshold",
)


def _resimulated(args: argparse.Namespace, network: Any) -> tuple[Any, Any]:
    """A saved network with the options given for this evaluation: simulation options and
    neuron dynamics are applied; options that need a new conversion are refused."""
    import dataclasses

    from snnconv.config import Config
    from snnconv.passes.to_spiking import to_spiking

    refused = [name for name in NEEDS_CONVERSION if getattr(args, name, None) is not None]
    if args.calibration is not None:
        refused.append("calibration")
    if refused:
        options = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ConfigError(
            f"{args.model} is a converted network: {options} change(s) the conversion itself "
            "and cannot be applied to it. Convert the original model again with these "
            "options (`snnconv run MODEL ...`), or drop them."
        )
    sim = _config(args)
    changes = {name: getattr(sim, name) for name in Config.SIMULATION_OPTIONS}
    given = {name: getattr(args, name) for name in DYNAMICS}
    changes.update({name: value for name, value in given.items() if value is not None})
    config = network.config.replace(**changes)
    graph = to_spiking(
        network.graph,
        reset=config.reset,
        v_init=config.v_init,
        hold_per_depth=config.clamp_steps,
        rate_estimator=config.rate_estimator,
        rate_window=config.rate_window,
        rate_decay=config.rate_decay,
        binary_threshold=config.binary_threshold,
        negative_spikes=config.negative_spikes,
    )
    info = dict(network.info)
    dynamics = sorted(set(changes) & set(DYNAMICS))
    if dynamics:
        info["resimulated_with"] = {name: Config.to_dict(config)[name] for name in dynamics}
    return dataclasses.replace(network, graph=graph, config=config, info=info), config


def _progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


def _image_size(args: argparse.Namespace, spec: str) -> int | None:
    """``--image-size`` applies to image folders only."""
    return args.image_size if spec.startswith("imagefolder:") else None


def _load_data(
    spec: str,
    split: str,
    args: argparse.Namespace,
    warnings: list[str] | None,
    limit: int | None = None,
) -> Any:
    """Load a dataset with the command's data options and say where it came from, in one
    line; a fall-back to the embedded sample is also a ``warnings`` entry (unless
    ``warnings`` is None: the demo)."""
    import warnings as python_warnings

    from snnconv.data import (
        EMBEDDED,
        EmbeddedSampleWarning,
        dataset_name,
        embedded_notice,
        load_dataset,
    )

    with python_warnings.catch_warnings():
        python_warnings.simplefilter("ignore", EmbeddedSampleWarning)
        data = load_dataset(
            spec,
            split,
            data_dir=args.data_dir,
            limit=limit,
            mean=args.mean,
            std=args.std,
            image_size=_image_size(args, spec),
        )
    if data.source == EMBEDDED:
        notice = embedded_notice(spec, split, len(data))
        print(f"note: {notice}", file=sys.stderr)
        if warnings is not None:
            warnings.append(notice)
    else:
        print(
            f"data: {dataset_name(spec)} {split} split, {len(data):,} samples, from {data.source}"
        )
    return data


def _calibration(args: argparse.Namespace, config: Any, warnings: list[str]) -> tuple[Any, dict]:
    from snnconv.data import calibration_subset, dataset_name, has_train_split

    spec = args.calibration
    split = "train"
    if spec is None:
        spec = getattr(args, "dataset", None)
        if spec is None:
            raise ConfigError("convert needs --calibration DATASET (the normalization data)")
        if not has_train_split(spec):
            split = getattr(args, "split", "test")
            warnings.append(
                f"{dataset_name(spec)} has no training split and no --calibration was given: "
                "normalization statistics come from the evaluation data itself"
            )
    elif not has_train_split(spec):
        split = "test"
    data = _load_data(spec, split, args, warnings)
    subset = calibration_subset(data, config.calibration_samples, seed=config.seed)
    info = {
        "dataset": dataset_name(spec),
        "split": split,
        "num_samples": len(subset),
        "seed": config.seed,
        "source": data.source,
    }
    return subset, info


def _load_model(args: argparse.Namespace) -> Any:
    from snnconv.importers.load import load_model

    return load_model(
        args.model,
        args.weights,
        random_weights=getattr(args, "random_weights", False),
        **onnx_load_options(args),
    )


def _convert(args: argparse.Namespace, model: Any, config: Any) -> Any:
    import snnconv

    warnings: list[str] = []
    calibration, cal_info = _calibration(args, config, warnings)
    info: dict[str, Any] = {"model": args.model, "calibration": cal_info}
    if getattr(model, "snnconv_random_weights", False):
        info["model_weights"] = "random"
        warnings.append(
            f"{args.model} runs with the random weights of its factory (--random-weights): "
            "its accuracy says nothing about a trained network"
        )
    elif getattr(args, "weights", None):
        info["model_weights"] = str(args.weights)
    for w in warnings:
        if "embedded sample" not in w:
            print(f"warning: {w}", file=sys.stderr)
    info["warnings"] = warnings
    return snnconv.convert(model, calibration, config, progress=_progress(args), info=info)


def _evaluate(args: argparse.Namespace, network: Any, config: Any) -> Any:
    import snnconv
    from snnconv.data import dataset_name

    warnings: list[str] = []
    data = _load_data(args.dataset, args.split, args, warnings, limit=args.limit)
    if config.batch_size > len(data):
        print(
            f"note: --batch-size {config.batch_size:,} is larger than the {len(data):,} "
            f"samples: they run as one batch of {len(data):,}",
            file=sys.stderr,
        )
    result = snnconv.evaluate(
        network, data, args.timesteps, config, progress=_progress(args), diagnostics=True
    )
    result.warnings += [w for w in warnings if w not in result.warnings]
    result.dataset = dataset_name(args.dataset)
    result.model = str(network.info.get("model", args.model))
    print(result.table())
    print(result.operations_summary())
    print(
        f"{result.num_samples} samples, T={result.timesteps}, {result.seconds:.1f} s "
        f"on {result.device}"
    )
    return result


def _write_run(args: argparse.Namespace, out: Any, network: Any, result: Any | None = None) -> None:
    """Write a run's files into the staging directory, then put them in place together:
    results.json and arrays.safetensors, the network, and (if asked) report.html."""
    import snnconv
    from snnconv.outputs import kill_point

    staging = out.staging
    if result is not None:
        result.save(staging)
        kill_point("after-results")
    snnconv.save(network, staging)
    kill_point("after-network")
    report = None
    if result is not None and args.report:
        from snnconv.report import ReportError, write_report

        try:
            report = write_report(staging)
        except ReportError as error:
            print(f"warning: no report.html: {error}", file=sys.stderr)
        kill_point("after-report")
    out.commit()
    if result is not None:
        print(f"wrote {out.path / 'results.json'}")
    if report is not None:
        print(f"wrote {out.path / report.name}")
    print(f"saved the spiking network to {out.path}")


def _output(args: argparse.Namespace, replace: bool = False) -> Any:
    """The command's output directory, checked and locked when entered (before any work)."""
    from snnconv.outputs import OutputDirectory

    out = OutputDirectory(args.out, overwrite=args.overwrite or replace)
    return out


def cmd_convert(args: argparse.Namespace) -> int:
    from snnconv.network import SpikingNetwork

    with _output(args) as out:
        config = _config(args)
        model = _load_model(args)
        if isinstance(model, SpikingNetwork):
            raise ConfigError(f"{args.model} is already a converted network")
        network = _convert(args, model, config)
        _write_run(args, out, network)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``run`` and ``evaluate``: convert (or load a saved network), evaluate, write."""
    from snnconv.network import SpikingNetwork

    with _output(args) as out:
        config = _config(args)
        model = _load_model(args)
        if isinstance(model, SpikingNetwork):
            network, config = _resimulated(args, model)
        else:
            network = _convert(args, model, config)
        result = _evaluate(args, network, config)
        _write_run(args, out, network, result)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    import snnconv
    from snnconv import zoo
    from snnconv.data import calibration_subset

    start = time.perf_counter()
    with _output(args, replace=args.out == DEMO_OUT) as out:
        config = _config(args)
        args.mean = args.std = args.image_size = None
        train = _load_data("fashion-mnist", "train", args, None)
        test = _load_data("fashion-mnist", "test", args, None, limit=args.limit)
        if args.train:
            print("training a LeNet-style CNN on Fashion-MNIST (1 epoch)...")
            model = zoo.train(zoo.lenet("avg"), train, epochs=1, progress=_progress(args))
            name = "lenet-avg (trained now)"
        else:
            model = zoo.load_pretrained_lenet()
            name = "lenet-avg (shipped checkpoint)"
        calibration = calibration_subset(train, config.calibration_samples, seed=config.seed)
        network = snnconv.convert(
            model,
            calibration,
            config,
            progress=_progress(args),
            info={
                "model": name,
                "calibration": {
                    "dataset": "fashion-mnist",
                    "split": "train",
                    "num_samples": len(calibration),
                    "seed": config.seed,
                    "source": calibration.source,
                },
            },
        )
        print(
            f"converted {name}: {len(network.spiking_layers)} spiking layers; simulating "
            f"{len(test)} test images for T={args.timesteps} steps..."
        )
        result = snnconv.evaluate(
            network, test, args.timesteps, config, progress=_progress(args), diagnostics=True
        )
        result.dataset = "fashion-mnist"
        print(result.table())
        print(result.operations_summary())
        print(
            "firing rates: "
            + ", ".join(f"{layer['name']} {layer['mean_rate']:.3f}" for layer in result.layers)
        )
        _write_run(args, out, network, result)
    print(f"{time.perf_counter() - start:.0f} s in all")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from snnconv.outputs import check_writable, locked
    from snnconv.report import write_report

    if args.out is not None:
        check_writable(args.out, "--out")
    with locked(args.directory):
        path = write_report(args.directory, args.out)
    print(f"wrote {path}")
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "convert": cmd_convert,
    "evaluate": cmd_run,
    "demo": cmd_demo,
    "report": cmd_report,
    "export-nir": cmd_export_nir,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``snnconv`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "timesteps", 1) is not None and getattr(args, "timesteps", 1) < 1:
        parser.error(f"--timesteps must be a positive integer, got {args.timesteps}")
    try:
        return COMMANDS[args.command](args)
    except SnnconvError as error:
        message = textwrap.fill(
            str(error), width=100, break_long_words=False, break_on_hyphens=False
        )
        print(f"snnconv: error: {message}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("snnconv: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        print(
            f"snnconv: internal error: {type(error).__name__}: {error}"
            + ("" if args.debug else " (run with --debug for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
