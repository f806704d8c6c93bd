"""The public Python API: convert and evaluate."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from snnconv.config import Config, MaxPoolMode
from snnconv.errors import ConfigError, DataError, SnnconvError
from snnconv.importers import import_torch
from snnconv.ir import SPIKING_OPS, Graph
from snnconv.metrics.diagnostics import LayerDiagnostics, spike_rates
from snnconv.network import SpikingNetwork
from snnconv.passes.calibrate import iterate_batches
from snnconv.passes.pipeline import convert_graph
from snnconv.results import EvaluationResult
from snnconv.sim.reference import run_graph
from snnconv.sim.simulator import Simulator

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
        config: Options (defaults: percentile 99.9, reset by subtraction, analog input).
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
        graph = model if isinstance(model, Graph) else import_torch(model, example)
        spiking, stats = convert_graph(graph, calibration, config, device=device, progress=progress)
    meta: dict[str, Any] = {"model": type(model).__name__, "warnings": []}
    meta.update(info or {})
    if config.maxpool is MaxPoolMode.AVERAGE and any(
        n.meta.get("replaced") == "MaxPool2d" for n in spiking.nodes
    ):
        meta["warnings"] = [
            *meta.get("warnings", []),
            "max-pooling was replaced by average pooling: the ANN changed, and the ANN "
            "accuracy reported is that of the replaced network",
        ]
    meta["stats"] = {
        name: {"scale": s.scale, "max": s.max, "positive": s.positive, "total": s.total}
        for name, s in stats.items()
    }
    return SpikingNetwork(spiking, config, meta)


def _labelled_batches(data: object, batch_size: int) -> Any:
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(
        data, torch.utils.data.IterableDataset
    ):
        data = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    if not hasattr(data, "__iter__"):
        raise DataError(f"evaluation data must be a Dataset or DataLoader, got {type(data)!r}")
    for item in data:  # type: ignore[attr-defined]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(
                "evaluation data must yield (inputs, labels) pairs; got a single tensor. "
                "Wrap inputs and labels in a TensorDataset."
            )
        x, y = item[0], item[1]
        yield x, torch.as_tensor(y).long()


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
) -> EvaluationResult:
    """Measure ANN accuracy and SNN accuracy after every time step 1..T.

    Args:
        network: A converted :class:`SpikingNetwork`, or an ``nn.Module``
            (then ``calibration`` is required and it is converted first).
        data: Labelled evaluation data: a Dataset or DataLoader of ``(x, y)``.
        timesteps: T, the number of simulated steps (≥ 1).
        config: Simulation options (device, batch size, chunk, seed, threads,
            input encoding); defaults to the network's own config.
        calibration: Calibration data when ``network`` is an ``nn.Module``.
        progress: Show a progress bar.
        record_spikes: Count spikes per layer and step (for firing rates).
        diagnostics: Also compare every neuron's rate with its normalized ANN
            activation: per-layer Pearson correlation, silent and saturated
            fractions (costs one capture of all activations per batch).

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
    device = config.resolved_device()
    start = time.perf_counter()
    with _threads(config.threads):
        sim = Simulator(
            network.graph,
            device=device,
            chunk=config.chunk,
            input_encoding=config.input_encoding,
            seed=config.seed,
            readout=config.readout,
        )
        ann = sim.graph
        n = 0
        ann1 = ann5 = 0
        snn1 = torch.zeros(timesteps, dtype=torch.int64, device=device)
        snn5 = torch.zeros(timesteps, dtype=torch.int64, device=device)
        spikes = {name: torch.zeros(timesteps, device=device) for name in network.spiking_layers}
        batches = _labelled_batches(data, config.batch_size)
        total = len(data) if hasattr(data, "__len__") and not hasattr(data, "batch_size") else None
        bar = tqdm(
            total=total, disable=not progress, unit="sample", desc=f"simulating T={timesteps}"
        )
        layer_stats = {name: LayerDiagnostics() for name in network.spiking_layers}
        for index, (x, y) in enumerate(batches):
            x = x.to(device, torch.float32)
            y = y.to(device)
            capture = network.spiking_layers if diagnostics else ()
            out, activations = run_graph(ann, x, capture=capture)
            ranks = out.topk(min(5, out.shape[-1]), dim=-1).indices
            hits = ranks == y[:, None]
            ann1 += int(hits[:, 0].sum())
            ann5 += int(hits.any(-1).sum())
            res = sim.run(
                x,
                y,
                timesteps,
                record_spikes=record_spikes,
                batch_index=index,
                record_rates=diagnostics,
            )
            for name, neuron_spikes in res.totals.items():
                rates = spike_rates(neuron_spikes, timesteps)
                layer_stats[name].update(activations[name], rates)
            snn1 += res.correct_top1
            snn5 += res.correct_top5
            for name, counts in res.spikes.items():
                spikes[name] += counts
            n += x.shape[0]
            bar.update(x.shape[0])
        bar.close()
    if n == 0:
        raise DataError("evaluation data is empty: pass at least one labelled sample")
    seconds = time.perf_counter() - start
    layers = []
    for node in network.graph.nodes:
        if isinstance(node.op, SPIKING_OPS):
            neurons = 1
            for d in node.meta.get("shape", ()):
                neurons *= int(d)
            spike_total = float(spikes[node.name].sum()) if record_spikes else float("nan")
            layers.append(
                {
                    "name": node.name,
                    "op": node.op.kind,
                    "source": node.source,
                    "neurons": neurons,
                    "scale": float(node.meta.get("scale", 1.0)),
                    "mean_rate": spike_total / (neurons * n * timesteps),
                }
            )
            if diagnostics:
                d = layer_stats[node.name]
                layers[-1].update(
                    silent_fraction=d.silent_fraction,
                    saturated_fraction=d.saturated_fraction,
                    correlation=d.correlation,
                )
    info = network.info
    return EvaluationResult(
        ann_top1=ann1 / n,
        ann_top5=ann5 / n,
        snn_top1=(snn1.double() / n).tolist(),
        snn_top5=(snn5.double() / n).tolist(),
        num_samples=n,
        timesteps=timesteps,
        seconds=seconds,
        device=str(device),
        config=config.to_dict(),
        model=str(info.get("model", "")),
        calibration=dict(info.get("calibration", {})),
        layers=layers,
        warnings=list(info.get("warnings", [])),
    )


__all__ = ["SnnconvError", "convert", "evaluate"]
