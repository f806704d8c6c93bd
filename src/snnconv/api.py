"""The public Python API: convert and evaluate."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from snnconv.checkpoint import Checkpoint
from snnconv.config import Config, MaxPoolMode
from snnconv.data.registry import data_source
from snnconv.errors import ConfigError, SnnconvError
from snnconv.evaluation import run_evaluation
from snnconv.importers import import_torch
from snnconv.ir import Graph
from snnconv.network import SpikingNetwork
from snnconv.passes.calibrate import iterate_batches
from snnconv.passes.pipeline import convert_graph
from snnconv.phases import phase
from snnconv.results import EvaluationResult

Model = nn.Module | torch.export.ExportedProgram | Graph


class _threads:
    """Set PyTorch's CPU thread count for a block (restored afterwards)."""

    def __init__(self, threads: int | None):
        self.threads = threads
        self.saved = torch.get_num_threads()

    def __enter__(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc: object) -> None:
        if self.threads:
            torch.set_num_threads(self.saved)


def _first_batch(data: object, batch_size: int) -> Tensor:
    for x in iterate_batches(data, batch_size):
        if x.shape[0] > 0:
            return x
    raise ConfigError("calibration data is empty: pass at least one sample")


def _check_runs(model: nn.Module, example: Tensor) -> None:
    """Raise ShapeError if the model cannot run on the calibration data's shape."""
    from snnconv.errors import ShapeError
    from snnconv.importers.torch_common import eval_mode

    with eval_mode(model), torch.no_grad():
        try:
            model(example)
        except (RuntimeError, ValueError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ShapeError(
                f"the model cannot process input batches of shape {list(example.shape)} "
                f"(taken from the calibration data): {first_line}. Check that the dataset "
                "matches the model (channels, image size, normalization)."
            ) from error


def convert(
    model: Model,
    calibration: object,
    config: Config | None = None,
    *,
    progress: bool = False,
    info: dict[str, Any] | None = None,
) -> SpikingNetwork:
    """Convert a trained ReLU network into a rate-coded spiking network.

    Imports the model (``torch.export``, falling back to ``torch.fx``), folds
    batch-norm, removes dropout, normalizes each layer by the chosen percentile
    of its activations on ``calibration``, and replaces ReLUs with IF neurons.

    Args:
        model: An ``nn.Module`` (train mode is fine: it is evaluated in eval
            mode and restored), an ``ExportedProgram``, or an imported graph.
        calibration: Inputs for normalization statistics: a tensor, Dataset,
            DataLoader (items ``x`` or ``(x, y)``), re-iterable.
        config: Options (default: ``Config()``, the paper's method).
        progress: Show progress bars.
        info: Extra provenance to record (e.g. ``{"model": name, "calibration": {...}}``).

    Returns:
        The spiking network.

    Raises:
        UnsupportedOpError: the model has an op that cannot be converted.
        ConfigError, ShapeError, NumericalError: bad options, data or weights.
    """
    config = config or Config()
    device = config.resolved_device()
    with _threads(config.threads):
        example = _first_batch(calibration, config.batch_size)[:2].to("cpu", torch.float32)
        if isinstance(model, nn.Module):
            _check_runs(model, example)
        with phase("capture"):
            graph = model if isinstance(model, Graph) else import_torch(model, example)
        with phase("conversion"):
            conversion = convert_graph(graph, calibration, config, device=device, progress=progress)
    spiking, stats, config = conversion.graph, conversion.stats, conversion.config
    _check_output(spiking)
    meta: dict[str, Any] = {"model": type(model).__name__, "warnings": []}
    meta.update(info or {})
    source = data_source(calibration)
    if source is not None:
        meta["calibration"] = {**meta.get("calibration", {}), "source": source}
    if config.maxpool is MaxPoolMode.AVERAGE and any(
        n.meta.get("replaced") == "MaxPool2d" for n in spiking.nodes
    ):
        meta["warnings"] = [
            *meta.get("warnings", []),
            "max-pooling was replaced by average pooling: the ANN changed, and the ANN "
            "accuracy reported is that of the replaced network",
        ]
    meta["stats"] = {
        name: {
            "scale": s.scale,
            "max": s.max,
            "positive": s.positive,
            "total": s.total,
            "percentile": config.percentile,
            "histogram": s.histogram,
        }
        for name, s in stats.items()
    }
    if conversion.low_latency is not None:
        meta["low_latency"] = conversion.low_latency
    return SpikingNetwork(spiking, config, meta)


def _check_output(graph: Graph) -> None:
    """Refuse a model whose output is not one vector of class scores per sample."""
    from snnconv.errors import ShapeError

    shape = tuple(graph.node(graph.output).meta.get("shape", ()))
    if len(shape) != 1:
        raise ShapeError(
            f"the model's output has shape [N, {', '.join(str(d) for d in shape)}], not "
            "[N, classes]: snnconv reads one score per class and sample. End the model with "
            "its classifier (flatten and a linear layer, or global pooling), or return the "
            "class scores instead of a feature map."
        )


@torch.no_grad()
def evaluate(
    network: SpikingNetwork | nn.Module,
    data: object,
    timesteps: int,
    config: Config | None = None,
    *,
    calibration: object | None = None,
    progress: bool = False,
    record_spikes: bool = True,
    diagnostics: bool = False,
    checkpoint: Checkpoint | None = None,
) -> EvaluationResult:
    """Measure ANN accuracy and SNN accuracy after every time step 1..T, and what they cost.

    With ``record_spikes`` the result also holds exact operation counts
    (:mod:`snnconv.metrics.operations`): the ANN's MACs per layer, the SNN's
    synaptic operations per source layer and step (spikes × fan-out, counted
    inside the simulator's spike-count reduction), the one-off MACs of the
    analog input pass, neuron updates, and from these the energy estimate
    (``config.energy_ac_pj``, ``config.energy_mac_pj``) and the
    error-vs-operations milestones.

    Args:
        network: A converted :class:`SpikingNetwork`, or an ``nn.Module``
            (then ``calibration`` is required and it is converted first).
        data: Labelled evaluation data: a Dataset or DataLoader of ``(x, y)``.
        timesteps: T, the number of simulated steps (≥ 1).
        config: Simulation options (device, batch size, chunk, seed, threads,
            input encoding, energies); defaults to the network's own config.
        calibration: Calibration data when ``network`` is an ``nn.Module``; with
            ``config.early_exit``, also what the exit rule is tuned on (unless
            ``exit_patience`` and ``exit_margin`` are given).
        progress: Show a progress bar.
        record_spikes: Count spikes and synaptic operations per layer and step.
        diagnostics: Also compare every neuron's rate with its normalized ANN
            activation: per-layer Pearson correlation, silent and saturated
            fractions, and a sample of (activation, rate) pairs for scatter
            plots (costs one capture of all activations per batch).
        checkpoint: Save the progress every so many batches or seconds in a
            folder, and resume from it (:class:`snnconv.checkpoint.Checkpoint`):
            a resumed evaluation returns what an uninterrupted one would.

    Under an initialised ``torch.distributed`` process group (e.g. a script
    started with ``torchrun``) each rank simulates the batches
    ``i ≡ rank (mod world size)`` and every rank returns the merged result:
    the same counts as one process (:mod:`snnconv.distributed`).

    Returns:
        An :class:`EvaluationResult`.
    """
    if not isinstance(timesteps, int) or isinstance(timesteps, bool) or timesteps < 1:
        raise ConfigError(f"timesteps must be a positive integer, got {timesteps!r}")
    if not isinstance(network, SpikingNetwork):
        if calibration is None:
            raise ConfigError(
                "evaluate() got an unconverted model: pass calibration=... (data for "
                "normalization) or convert it first with snnconv.convert"
            )
        network = convert(network, calibration, config, progress=progress)
    config = config or network.config
    with _threads(config.threads):
        return run_evaluation(
            network,
            data,
            timesteps,
            config,
            progress=progress,
            record_spikes=record_spikes,
            diagnostics=diagnostics,
            calibration=calibration,
            checkpoint=checkpoint,
        )


__all__ = ["SnnconvError", "convert", "evaluate"]
