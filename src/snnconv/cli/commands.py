"""What each command does: convert, evaluate, write a run directory, rebuild a report.

Each ``cmd_*`` takes the parsed arguments (options the user did not give already
filled with their defaults) and returns the exit status; user errors raise
:class:`~snnconv.errors.SnnconvError` and the entry point turns them into exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from snnconv.cli.config_file import write_config_file
from snnconv.cli.options import config_from, given
from snnconv.config import Config, Stage
from snnconv.errors import ConfigError
from snnconv.phases import phase

__all__ = [
    "DEMO_OUT",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_USER",
    "cmd_demo",
    "cmd_export_nir",
    "cmd_report",
    "cmd_run",
]

EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2

#: The demo's own output directory, which it replaces at every run.
DEMO_OUT = "runs/demo"


def _progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


def _load_data(
    spec: str,
    split: str,
    args: argparse.Namespace,
    warnings: list[str] | None,
    limit: int | None = None,
    draw: tuple[int, int] | None = None,
) -> Any:
    """Load a dataset with the command's data options and say where it came from, in one
    line; a fall-back to the embedded sample is also a ``warnings`` entry (unless
    ``warnings`` is None: the demo). With ``draw`` = (samples, seed): the calibration
    subset drawn from it (only those images are scaled)."""
    import warnings as python_warnings

    from snnconv.data import (
        EmbeddedSampleWarning,
        ImageFiles,
        calibration_subset,
        load_calibration,
        load_dataset,
    )

    images = spec.startswith("imagefolder:")
    with python_warnings.catch_warnings(), phase("data"):
        python_warnings.simplefilter("ignore", EmbeddedSampleWarning)
        if draw is not None and not images:
            drawn, count = load_calibration(
                spec, split, draw[0], draw[1], data_dir=args.data_dir,
                mean=getattr(args, "mean", None), std=getattr(args, "std", None),
            )  # fmt: skip
            _say_source(spec, split, drawn.source, count, warnings)
            return drawn
        size = getattr(args, "image_size", None)
        crop = getattr(args, "crop", None) or size
        data = load_dataset(
            spec,
            split,
            data_dir=args.data_dir,
            limit=limit,
            mean=getattr(args, "mean", None),
            std=getattr(args, "std", None),
            image_size=crop if images else None,
            resize=(getattr(args, "resize", None) or size) if images else None,
            labels=getattr(args, "labels", None)
            if spec == getattr(args, "dataset", None)
            else None,
            workers=getattr(args, "workers", None) or 0 if images else 0,
        )
        if isinstance(data, ImageFiles) and getattr(args, "workers", None) is None:  # by size
            data.workers = min(4, os.cpu_count() or 1) if len(data) >= 512 else 0
    _say_source(spec, split, data.source, len(data), warnings)
    return data if draw is None else calibration_subset(data, draw[0], seed=draw[1])


def _say_source(
    spec: str, split: str, source: str | None, count: int, warnings: list[str] | None
) -> None:
    """The one line that says where a dataset was read from (see :func:`_load_data`)."""
    from snnconv.data import EMBEDDED, dataset_name, embedded_notice

    if source == EMBEDDED:
        notice = embedded_notice(spec, split, count)
        print(f"note: {notice}", file=sys.stderr)
        if warnings is not None:
            warnings.append(notice)
    else:
        print(f"data: {dataset_name(spec)} {split} split, {count:,} samples, from {source}")


def _calibration(args: argparse.Namespace, config: Config, warnings: list[str]) -> tuple[Any, dict]:
    from snnconv.data import dataset_name, has_train_split

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
    subset = _load_data(spec, split, args, warnings, draw=(config.calibration_samples, config.seed))
    info = {
        "dataset": dataset_name(spec),
        "split": split,
        "num_samples": len(subset),
        "seed": config.seed,
        "source": subset.source,
    }
    return subset, info


def _load_model(args: argparse.Namespace) -> Any:
    with phase("import"):
        from snnconv.importers.load import load_model

    with phase("load"):
        return load_model(
            args.model,
            args.weights,
            random_weights=args.random_weights,
            input_layout=args.input_layout,
            input_shape=args.input_shape,
        )


def _convert(args: argparse.Namespace, model: Any, config: Config) -> Any:
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
    elif args.weights:
        info["model_weights"] = str(args.weights)
    for w in warnings:
        if "embedded sample" not in w:
            print(f"warning: {w}", file=sys.stderr)
    info["warnings"] = warnings
    network = snnconv.convert(model, calibration, config, progress=_progress(args), info=info)
    chosen = network.info.get("low_latency")
    if chosen is not None:
        best = next(c for c in chosen["candidates"] if c["name"] == chosen["chosen"])
        print(
            f"low latency at T={chosen['target_timesteps']}: {chosen['chosen']} (agreement "
            f"with the ANN {100 * best['agreement']:.1f} % on held-out calibration samples; "
            f"{len(chosen['candidates'])} candidates tried in {chosen['seconds']:.1f} s)"
        )
    return network


def _resimulated(args: argparse.Namespace, network: Any) -> tuple[Any, Config]:
    """A saved network with the options given for this evaluation: simulation options and
    neuron dynamics are applied; options that need a new conversion are refused."""
    from snnconv.cli.options import flag
    from snnconv.passes.to_spiking import respike

    refused = [flag(name) for name in given(args, Config.names(Stage.CONVERSION))]
    if args.calibration is not None:
        refused.append("--calibration")
    if refused:
        raise ConfigError(
            f"{args.model} is a converted network: {', '.join(refused)} change(s) the "
            "conversion itself and cannot be applied to it. Convert the original model again "
            "with these options (`snnconv run MODEL ...`), or drop them."
        )
    changes = given(args, Config.names(Stage.SIMULATION) + Config.names(Stage.DYNAMICS))
    config = network.config.replace(**changes)
    info = dict(network.info)
    dynamics = sorted(set(changes) & set(Config.names(Stage.DYNAMICS)))
    if dynamics:
        info["resimulated_with"] = {name: config.to_dict()[name] for name in dynamics}
    graph = respike(network.graph, config)
    return dataclasses.replace(network, graph=graph, config=config, info=info), config


def _evaluate(
    args: argparse.Namespace,
    network: Any,
    config: Config,
    checkpoint: Any = None,
    auto_batch: bool = False,
) -> Any:
    import snnconv
    from snnconv.data import dataset_name

    warnings: list[str] = []
    data = _load_data(args.dataset, args.split, args, warnings, limit=args.limit)
    if auto_batch:
        config = _auto_batch(args, network, data, config, checkpoint)
    if config.batch_size > len(data):
        print(
            f"note: --batch-size {config.batch_size:,} is larger than the {len(data):,} "
            f"samples: they run as one batch of {len(data):,}",
            file=sys.stderr,
        )
    calibration = None
    if config.early_exit and (config.exit_patience is None or config.exit_margin is None):
        calibration, _ = _calibration(args, config, [])
    result = snnconv.evaluate(
        network,
        data,
        args.timesteps,
        config,
        progress=_progress(args),
        diagnostics=True,
        calibration=calibration,
        checkpoint=checkpoint,
    )
    result.warnings += [w for w in warnings if w not in result.warnings]
    if checkpoint is not None and checkpoint.restored[0]:
        batches, samples = checkpoint.restored
        print(f"resumed: {batches:,} batches ({samples:,} samples) came from the checkpoint")
    from snnconv.cli.finetune import ann_original

    result.ann_original = ann_original(str(args.model), data, config.batch_size)
    if result.ann_original is not None:
        print(
            f"original ANN (before fine-tuning): top-1 {100 * result.ann_original['top1']:.2f}% "
            f"({result.ann_original['model']})"
        )
    result.dataset = dataset_name(args.dataset)
    result.model = str(network.info.get("model", args.model))
    print(result.table())
    print(result.operations_summary())
    print(
        f"{result.num_samples} samples, T={result.timesteps}, {result.seconds:.1f} s "
        f"on {result.device}"
    )
    if result.early_exit is not None:
        e = result.early_exit
        print(
            f"early exit (patience {e['criterion']['patience']}, margin "
            f"{e['criterion']['margin']:.3g}): top-1 {100 * e['top1']:.2f}% after "
            f"{e['mean_steps']:.1f} steps on average, {e['seconds']:.1f} s"
        )
    return result


def _write_run(args: argparse.Namespace, out: Any, network: Any, result: Any | None = None) -> None:
    """Write a run's files into the staging directory, then put them in place together:
    results.json and arrays.safetensors, the network, config.toml, and report.html.
    (Nothing on ranks other than 0 of a data-parallel job: ``out`` is None there.)"""
    import snnconv
    from snnconv.outputs import kill_point

    if out is None:
        return
    staging = out.staging
    with phase("saving"):
        if result is not None:
            result.save(staging)
            kill_point("after-results")
        snnconv.save(network, staging)
        write_config_file(staging, network.config, args, args.parser)
        kill_point("after-network")
    report = None
    if result is not None and args.report:
        with phase("report"):
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
    """The command's output directory, checked and locked when entered (before any work).
    In a data-parallel job only rank 0 checks, locks and writes it; its verdict is
    shared, so that a bad ``--out`` ends every rank with the same error."""
    from snnconv.outputs import OutputDirectory

    out = OutputDirectory(
        args.out, overwrite=args.overwrite or replace, resume=getattr(args, "resume", False)
    )
    from snnconv.distributed import in_launcher

    return _RankOutput(out) if in_launcher() else out


class _RankOutput:
    """An :class:`~snnconv.outputs.OutputDirectory` entered by rank 0 of a data-parallel
    job; the other ranks get None (they write nothing)."""

    def __init__(self, out: Any):
        self.out = out

    def __enter__(self) -> Any:
        from snnconv import distributed
        from snnconv.errors import SnnconvError
        from snnconv.outputs import OutputError

        main = distributed.is_main()
        message = None
        if main:
            try:
                self.out.__enter__()
            except SnnconvError as error:
                message = str(error)
                distributed.broadcast(message)
                raise
        message = distributed.broadcast(message)
        if message is not None:
            shared = OutputError(message)
            shared.shared = True  # type: ignore[attr-defined]
            raise shared
        return self.out if main else None

    def __exit__(self, *exc: object) -> None:
        from snnconv import distributed

        if distributed.is_main():
            self.out.__exit__(*exc)


def _print_flow(config: Config) -> int:
    from snnconv.passes.pipeline import build_flow, describe

    print("the conversion would run these passes, in order:")
    for number, step in enumerate(build_flow(config), 1):
        print(f"{number:>3}. {describe(step)}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``run``, ``evaluate`` and ``convert``: convert MODEL (or, to evaluate, load a saved
    network), evaluate it unless converting, and write the run directory
    (``--dry-run``: list the conversion's passes instead)."""
    if args.dry_run:
        return _print_flow(config_from(args))
    evaluating = args.command != "convert"
    from snnconv import distributed

    if distributed.in_launcher():
        world = distributed.init_from_env(str(getattr(args, "device", "auto")))
        if world.backend == "nccl" and getattr(args, "device", "auto") in ("auto", "cuda"):
            args.device = f"cuda:{world.local_rank}"
        print(f"data-parallel: {world.size} processes ({world.backend})")
    auto_batch = getattr(args, "batch_size", None) == "auto"
    if auto_batch:
        del args.batch_size  # conversion takes the default; the evaluation, the one that fits
    with _output(args) as out:
        if evaluating and getattr(args, "resume", False):
            _checkpoint(args).verify()  # a different run is refused before any work
        _prefetch_data(args, evaluating)  # decompressed on another core while torch imports
        with phase("import"):
            import snnconv.api  # noqa: F401  (torch and the converter)
            from snnconv.network import SpikingNetwork
        if evaluating and args.report and out is not None:
            from snnconv.report.plots import preload_matplotlib

            preload_matplotlib()  # ready by the time the report is drawn
        config = config_from(args)
        model = _load_model(args)
        if isinstance(model, SpikingNetwork):
            if not evaluating:
                raise ConfigError(f"{args.model} is already a converted network")
            network, config = _resimulated(args, model)
        else:
            network = _convert(args, model, config)
            config = network.config  # with the techniques --target-timesteps chose
        checkpoint = _checkpoint(args) if evaluating else None
        result = _evaluate(args, network, config, checkpoint, auto_batch) if evaluating else None
        _write_run(args, out, network, result)
    return EXIT_OK


def _prefetch_data(args: argparse.Namespace, evaluating: bool) -> None:
    """Start reading the IDX files this run will load (the calibration split unless MODEL
    is a saved network, then the evaluated split) in a background thread."""
    from snnconv.data.idx import prefetch_idx

    dataset = getattr(args, "dataset", None)
    wanted: list[tuple[str, str]] = []
    calibration = getattr(args, "calibration", None) or dataset
    if calibration and not Path(args.model).is_dir():  # a saved network needs no calibration
        wanted.append((calibration, "train"))
    if evaluating and dataset:
        wanted.append((dataset, getattr(args, "split", None) or "test"))
    prefetch_idx(wanted, getattr(args, "data_dir", None))


def _auto_batch(
    args: argparse.Namespace, network: Any, data: Any, config: Config, checkpoint: Any
) -> Config:
    """``--batch-size auto``: the batch of the checkpoint being resumed, or the largest
    that fits in memory."""
    from snnconv.evaluation import auto_batch_size

    resumed = checkpoint.saved_option("batch_size") if checkpoint is not None else None
    if resumed is not None:
        print(f"batch size: {resumed:,} (that of the run being resumed)")
        return config.replace(batch_size=int(resumed))
    batch = auto_batch_size(
        network, data, args.timesteps, config, log=lambda m: print(m, file=sys.stderr)
    )
    print(f"batch size: {batch:,} (auto: the largest that fits in memory)")
    return config.replace(batch_size=batch)


def _checkpoint(args: argparse.Namespace) -> Any:
    """Where and how often the evaluation saves its progress (``--out/checkpoint``), and
    the run's fingerprint: what a resumed run must share with it."""
    from snnconv.checkpoint import Checkpoint, file_digest
    from snnconv.outputs import CHECKPOINT_DIR

    def digest(path: Any) -> str | None:
        return file_digest(path) if path is not None and Path(path).exists() else None

    options = {k: v for k, v in config_from(args).to_dict().items() if k != "threads"}
    fingerprint = {
        "model": str(args.model),
        "model_sha256": digest(args.model),
        "weights_sha256": digest(args.weights),
        "data": {
            "dataset": args.dataset,
            "split": args.split,
            "limit": args.limit,
            "calibration": args.calibration,
            "mean": args.mean,
            "std": args.std,
            "image_size": args.image_size,
            "resize": args.resize,
            "crop": args.crop,
            "labels": args.labels,
            "labels_sha256": digest(args.labels),
        },
        "options": options,
    }
    return Checkpoint(
        Path(args.out).expanduser() / CHECKPOINT_DIR,
        every=args.checkpoint_every,
        fingerprint=fingerprint,
        resume=args.resume,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: the shipped LeNet on Fashion-MNIST, end to end."""
    import snnconv
    from snnconv import zoo
    from snnconv.data import calibration_subset

    start = time.perf_counter()
    with _output(args, replace=args.out == DEMO_OUT) as out:
        config = config_from(args)
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
        info = {
            "model": name,
            "calibration": {
                "dataset": "fashion-mnist",
                "split": "train",
                "num_samples": len(calibration),
                "seed": config.seed,
                "source": calibration.source,
            },
        }
        network = snnconv.convert(model, calibration, config, progress=_progress(args), info=info)
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
        rates = ", ".join(f"{layer['name']} {layer['mean_rate']:.3f}" for layer in result.layers)
        print(f"firing rates: {rates}")
        _write_run(args, out, network, result)
    print(f"{time.perf_counter() - start:.0f} s in all")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """``report``: rebuild DIR/report.html (under DIR's lock)."""
    from snnconv.outputs import check_writable, locked
    from snnconv.report import write_report

    if args.out is not None:
        check_writable(args.out, "--out")
    with locked(args.directory):
        path = write_report(args.directory, args.out)
    print(f"wrote {path}")
    return EXIT_OK


def cmd_export_nir(args: argparse.Namespace) -> int:
    """``export-nir``: write a saved network as NIR."""
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
    out = export_nir(directory, target, pooling=args.pooling, substitutes=tuple(args.substitute))
    print(f"wrote {out}")
    return EXIT_OK
