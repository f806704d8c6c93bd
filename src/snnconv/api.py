"""The public Python API: convert and evaluate."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from snnconv.config import Config, MaxPoolMode
from snnconv.data.registry import data_source
from snnconv.errors import ConfigError, DataError, SnnconvError
from snnconv.importers import import_torch
from snnconv.ir import SPIKING_OPS, Graph
from snnconv.metrics.diagnostics import LayerDiagnostics, spike_rates
from snnconv.network import SpikingNetwork
from snnconv.passes.calibrate import iterate_batches
from snnconv.passes.pipeline import convert_graph
from snnconv.results import EvaluationResult
from snnconv.sim.memory import check_memory, estimate_memory
from snnconv.sim.reference import run_graph
from snnconv.sim.simulator import Simulator, default_chunk

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


def _num_classes(graph: Graph) -> int:
    return int(graph.node(graph.output).meta["shape"][0])


def _check_labels(y: Tensor, classes: int) -> None:
    """Refuse labels that are not class indices of the model's outputs."""
    bad = (y < 0) | (y >= classes)
    if bool(bad.any()):
        found = sorted({int(v) for v in y[bad].tolist()})
        shown = ", ".join(str(v) for v in found[:5]) + (", ..." if len(found) > 5 else "")
        raise DataError(
            f"{int(bad.sum()):,} of {y.numel():,} labels lie outside 0..{classes - 1}, the "
            f"classes of the model's {classes} outputs (found {shown}). Labels must be class "
            "indices of the model's outputs: check that the dataset matches the model."
        )


def _all_labels(data: object) -> Tensor | None:
    """Every label of a TensorDataset (or a DataLoader over one), to check them at once."""
    for candidate in (data, getattr(data, "dataset", None)):
        tensors = getattr(candidate, "tensors", None)
        if isinstance(tensors, tuple) and len(tensors) >= 2:
            return torch.as_tensor(tensors[1])
    return None


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


#: Rate-vs-activation pairs kept per layer for scatter plots.
SCATTER_SAMPLES = 2000


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
        calibration: Calibration data when ``network`` is an ``nn.Module``.
        progress: Show a progress bar.
        record_spikes: Count spikes and synaptic operations per layer and step.
        diagnostics: Also compare every neuron's rate with its normalized ANN
            activation: per-layer Pearson correlation, silent and saturated
            fractions, and a sample of (activation, rate) pairs for scatter
            plots (costs one capture of all activations per batch).

    Returns:
        An :class:`EvaluationResult`.
    """
    from snnconv.metrics.operations import count_operations

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
    classes = _num_classes(network.graph)
    labels_at_once = _all_labels(data)
    if labels_at_once is not None:
        _check_labels(labels_at_once, classes)
    counts = count_operations(network.graph, config.input_encoding) if record_spikes else None
    fan_out = {s.name: s.fan_out for s in counts.sources} if counts is not None else None
    total = len(data) if hasattr(data, "__len__") and not hasattr(data, "batch_size") else None
    check_memory(
        estimate_memory(
            network.graph,
            timesteps,
            min(config.batch_size, total or config.batch_size),
            config.chunk or default_chunk(device),
            len(counts.sources) if counts is not None else len(network.spiking_layers),
        )
    )
    start = time.perf_counter()
    with _threads(config.threads):
        sim = Simulator(
            network.graph,
            device=device,
            chunk=config.chunk,
            precision=config.precision,
            input_encoding=config.input_encoding,
            seed=config.seed,
            readout=config.readout,
            fan_out=fan_out,
        )
        ann = sim.graph
        n = 0
        ann1 = ann5 = 0
        snn1 = torch.zeros(timesteps, dtype=torch.int64, device=device)
        snn5 = torch.zeros(timesteps, dtype=torch.int64, device=device)
        spikes: dict[str, Tensor] = {}
        sops: dict[str, Tensor] = {}
        predictions: list[Tensor] = []
        ann_predictions: list[Tensor] = []
        labels: list[Tensor] = []
        scatter: dict[str, tuple[Tensor, Tensor]] = {}
        generator = torch.Generator().manual_seed(config.seed)
        batches = _labelled_batches(data, config.batch_size)
        bar = tqdm(
            total=total, disable=not progress, unit="sample", desc=f"simulating T={timesteps}"
        )
        layer_stats = {name: LayerDiagnostics() for name in network.spiking_layers}
        for index, (x, y) in enumerate(batches):
            if labels_at_once is None:
                _check_labels(y, classes)
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
                if name not in scatter:
                    scatter[name] = _scatter_sample(activations[name], rates, generator)
            snn1 += res.correct_top1
            snn5 += res.correct_top5
            for name, step_counts in {**res.spikes, **res.events}.items():
                _accumulate(spikes, name, step_counts)
            for name, step_sops in res.sops.items():
                _accumulate(sops, name, step_sops)
            if res.predictions is not None:
                predictions.append(res.predictions.cpu())
            ann_predictions.append(ranks[:, 0].cpu())
            labels.append(y.cpu())
            n += x.shape[0]
            bar.update(x.shape[0])
        bar.close()
    if n == 0:
        raise DataError("evaluation data is empty: pass at least one labelled sample")
    seconds = time.perf_counter() - start
    per_sample = {name: (c / n).tolist() for name, c in spikes.items()}
    sops_per_source = {name: (c / n).tolist() for name, c in sops.items()}
    cumulative = torch.zeros(timesteps, dtype=torch.float64)
    for c in sops.values():
        cumulative += c.cpu() / n
    cumulative = cumulative.cumsum(0)
    stats = network.info.get("stats", {})
    layers = []
    for node in network.graph.nodes:
        if isinstance(node.op, SPIKING_OPS):
            neurons = 1
            for d in node.meta.get("shape", ()):
                neurons *= int(d)
            spike_total = float(sum(per_sample[node.name])) if node.name in per_sample else None
            layer: dict[str, Any] = {
                "name": node.name,
                "op": node.op.kind,
                "source": node.source,
                "neurons": neurons,
                "scale": float(node.meta.get("scale", 1.0)),
                "mean_rate": (
                    spike_total / (neurons * timesteps) if spike_total is not None else float("nan")
                ),
            }
            if node.name in stats:
                layer["activation_max"] = float(stats[node.name].get("max", float("nan")))
            if node.name in sops_per_source:
                layer["sops_per_sample"] = float(sum(sops_per_source[node.name]))
            if counts is not None:
                source = next((s for s in counts.sources if s.name == node.name), None)
                if source is not None:
                    layer["fan_out_mean"] = float(source.fan_out.mean())
            if diagnostics:
                d = layer_stats[node.name]
                layer.update(
                    silent_fraction=d.silent_fraction,
                    saturated_fraction=d.saturated_fraction,
                    correlation=d.correlation,
                )
            layers.append(layer)
    arrays: dict[str, Tensor] = {"labels": torch.cat(labels).to(torch.int64)}
    arrays["ann_predictions"] = torch.cat(ann_predictions).to(torch.int64)
    if predictions:
        arrays["predictions"] = torch.cat(predictions).to(torch.int64)
    for name, (a, r) in scatter.items():
        arrays[f"scatter/{name}/activation"] = a
        arrays[f"scatter/{name}/rate"] = r
    for name, s in stats.items():
        if s.get("histogram"):
            arrays[f"histogram/{name}"] = torch.tensor(s["histogram"], dtype=torch.int64)
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
        data_source=data_source(data),
        model_weights=info.get("model_weights"),
        layers=layers,
        warnings=[*info.get("warnings", []), *_dead_layer_warnings(layers, timesteps, n)],
        ann_macs={k: float(v) for k, v in counts.ann_macs.items()} if counts else {},
        ann_other_ops={k: float(v) for k, v in counts.ann_other.items()} if counts else {},
        input_macs={k: float(v) for k, v in counts.input_macs.items()} if counts else {},
        sops=cumulative.tolist() if counts else [],
        sops_per_source=sops_per_source,
        spikes_per_step=per_sample,
        neuron_updates=(
            {k: float(v) for k, v in counts.neuron_updates(timesteps).items()} if counts else {}
        ),
        arrays=arrays,
    )


def _dead_layer_warnings(layers: list[dict[str, Any]], timesteps: int, n: int) -> list[str]:
    """A warning for each spiking layer that never fired."""
    return [
        f"layer {layer['name']} never fired in {timesteps} steps on {n} samples: it passes "
        "nothing on (its rate-activation correlation is undefined: null). Check its inputs "
        "and its λ (activation_max), or simulate longer"
        for layer in layers
        if layer.get("mean_rate") == 0.0
    ]


def _accumulate(into: dict[str, Tensor], name: str, values: Tensor) -> None:
    """Add one batch's per-step counts into float64 totals."""
    if name in into:
        into[name] += values.double()
    else:
        into[name] = values.double().clone()


def _scatter_sample(
    activation: Tensor, rate: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """A seeded sample of (normalized activation, rate) pairs of one batch, for scatter plots."""
    a = activation.reshape(-1).float().cpu()
    r = rate.reshape(-1).float().cpu()
    if a.numel() > SCATTER_SAMPLES:
        index = torch.randperm(a.numel(), generator=generator)[:SCATTER_SAMPLES]
        a, r = a[index], r[index]
    return a.contiguous(), r.contiguous()


__all__ = ["SnnconvError", "convert", "evaluate"]
