"""An evaluation, in named parts: checks, the batch loop, and what it adds up.

:func:`run_evaluation` is what :func:`snnconv.evaluate` does once the network is
converted: check labels and memory, count the operations' fan-out maps once,
then for every batch run the ANN and the simulator and add their results into
three tallies (accuracy, events, diagnostics), and finally turn the tallies
into an :class:`~snnconv.results.EvaluationResult`. Adding a metric touches the
tally that gathers it and :class:`LayerRow` or the arrays it adds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from snnconv import distributed
from snnconv.checkpoint import Checkpoint
from snnconv.config import Config
from snnconv.data.registry import data_source
from snnconv.errors import ConfigError, DataError
from snnconv.ir import SPIKING_OPS, Graph, Node
from snnconv.metrics.diagnostics import LayerDiagnostics, spike_rates
from snnconv.metrics.operations import OperationCounts, count_operations
from snnconv.network import SpikingNetwork
from snnconv.passes.calibrate import iterate_batches
from snnconv.phases import phase
from snnconv.results import EvaluationResult
from snnconv.sim.early_exit import ExitRule, run_early_exit, trace, tune_exit_rule
from snnconv.sim.memory import (
    available_memory,
    check_memory,
    estimate_memory,
    largest_batch,
    probe_batch_size,
)
from snnconv.sim.reference import run_graph
from snnconv.sim.simulator import BatchResult, Simulator, default_chunk

__all__ = ["SCATTER_SAMPLES", "LayerRow", "auto_batch_size", "run_evaluation"]

#: Rate-vs-activation pairs kept per layer for scatter plots.
SCATTER_SAMPLES = 2000


# --- checks ------------------------------------------------------------------------------------


def num_classes(graph: Graph) -> int:
    """The number of the model's outputs (class scores)."""
    return int(graph.node(graph.output).meta["shape"][0])


def check_labels(y: Tensor, classes: int) -> None:
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
        targets = getattr(candidate, "targets", None)  # files decoded when read
        if isinstance(targets, Tensor) and candidate is data:
            return targets
    return None


def _samples(data: object) -> int | None:
    """How many samples ``data`` holds, where it says (a Dataset; not a DataLoader)."""
    return len(data) if hasattr(data, "__len__") and not hasattr(data, "batch_size") else None  # type: ignore[arg-type]


def labelled_batches(data: object, batch_size: int) -> Any:
    """``(x, y)`` batches of a Dataset or DataLoader (or any iterable of pairs)."""
    for _, x, y in indexed_batches(data, batch_size):
        yield x, y


def indexed_batches(
    data: object, batch_size: int, keep: Callable[[int], bool] = lambda index: True
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """``(index, x, y)`` for the batches whose index ``keep`` accepts. A map-style Dataset
    loads only those batches (a rank of a data-parallel run reads its own shard), with
    the loader processes it asks for (its ``workers``: files decoded in parallel); other
    iterables are read whole and the others skipped."""
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(
        data, torch.utils.data.IterableDataset
    ):
        n = len(data)  # type: ignore[arg-type]
        kept = [i for i in range(-(-n // batch_size)) if keep(i)]
        sampler = [list(range(i * batch_size, min(n, (i + 1) * batch_size))) for i in kept]
        workers = int(getattr(data, "workers", 0) or 0)
        loader = torch.utils.data.DataLoader(
            data, batch_sampler=sampler, num_workers=workers, persistent_workers=False
        )
        pairs: Any = zip(kept, loader, strict=True)
    elif hasattr(data, "__iter__"):
        pairs = ((i, item) for i, item in enumerate(data) if keep(i))  # type: ignore[attr-defined]
    else:
        raise DataError(f"evaluation data must be a Dataset or DataLoader, got {type(data)!r}")
    for index, item in pairs:
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(
                "evaluation data must yield (inputs, labels) pairs; got a single tensor. "
                "Wrap inputs and labels in a TensorDataset."
            )
        yield index, item[0], torch.as_tensor(item[1]).long()


# --- the tallies -------------------------------------------------------------------------------


@dataclass
class _Accuracy:
    """Correct top-1/top-5 counts of the ANN and of the SNN after every step, and the
    labels and predictions of each batch (under its index)."""

    timesteps: int
    device: Any
    samples: int = 0
    ann1: int = 0
    ann5: int = 0
    snn1: Tensor = field(init=False)
    snn5: Tensor = field(init=False)
    batches: list[int] = field(default_factory=list)
    labels: list[Tensor] = field(default_factory=list)
    ann_predictions: list[Tensor] = field(default_factory=list)
    predictions: list[Tensor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.snn1 = torch.zeros(self.timesteps, dtype=torch.int64, device=self.device)
        self.snn5 = torch.zeros(self.timesteps, dtype=torch.int64, device=self.device)

    def add(self, index: int, y: Tensor, ann_out: Tensor, res: BatchResult) -> None:
        ranks = ann_out.topk(min(5, ann_out.shape[-1]), dim=-1).indices
        hits = ranks == y[:, None]
        self.ann1 += int(hits[:, 0].sum())
        self.ann5 += int(hits.any(-1).sum())
        self.snn1 += res.correct_top1
        self.snn5 += res.correct_top5
        self.samples += y.shape[0]
        self.batches.append(index)
        self.labels.append(y.cpu())
        self.ann_predictions.append(ranks[:, 0].cpu())
        assert res.predictions is not None  # Simulator.run always gives them
        self.predictions.append(res.predictions.cpu())

    def state(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "ann1": self.ann1,
            "ann5": self.ann5,
            "snn1": self.snn1.cpu(),
            "snn5": self.snn5.cpu(),
            "batches": list(self.batches),
            "labels": list(self.labels),
            "ann_predictions": list(self.ann_predictions),
            "predictions": list(self.predictions),
        }

    def absorb(self, state: dict[str, Any]) -> None:
        """Add another tally's :meth:`state` (a checkpoint's, another rank's): the batches
        stay in index order."""
        self.samples += state["samples"]
        self.ann1 += state["ann1"]
        self.ann5 += state["ann5"]
        self.snn1 += state["snn1"].to(self.device)
        self.snn5 += state["snn5"].to(self.device)
        rows = sorted(
            zip(
                [*self.batches, *state["batches"]],
                [*self.labels, *state["labels"]],
                [*self.ann_predictions, *state["ann_predictions"]],
                [*self.predictions, *state["predictions"]],
                strict=True,
            ),
            key=lambda row: row[0],
        )
        self.batches = [r[0] for r in rows]
        self.labels = [r[1] for r in rows]
        self.ann_predictions = [r[2] for r in rows]
        self.predictions = [r[3] for r in rows]


@dataclass
class _Events:
    """Events and synaptic operations per spike source and step, summed over samples."""

    spikes: dict[str, Tensor] = field(default_factory=dict)
    sops: dict[str, Tensor] = field(default_factory=dict)

    def add(self, res: BatchResult) -> None:
        self._add({**res.spikes, **res.events}, res.sops)

    def state(self) -> dict[str, Any]:
        return {
            "spikes": {k: v.cpu() for k, v in self.spikes.items()},
            "sops": {k: v.cpu() for k, v in self.sops.items()},
        }

    def absorb(self, state: dict[str, Any]) -> None:
        """Add another tally's :meth:`state` (exact: the counts are whole numbers)."""
        self._add(state["spikes"], state["sops"])

    def _add(self, spikes: dict[str, Tensor], sops: dict[str, Tensor]) -> None:
        for into, values in ((self.spikes, spikes), (self.sops, sops)):
            for name, counts in values.items():
                if name in into:
                    into[name] += counts.to(into[name].device, torch.float64)
                else:
                    into[name] = counts.double().clone()

    def per_sample(self, n: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        spikes = {name: (c / n).tolist() for name, c in self.spikes.items()}
        return spikes, {name: (c / n).tolist() for name, c in self.sops.items()}


@dataclass
class _Diagnostics:
    """Per-layer rate-vs-activation statistics and a seeded sample of pairs for plots.

    Each batch's sums are kept under the batch's index and added up in index order, so
    that the figures do not depend on which process simulated which batch."""

    layers: list[str]
    seed: int
    batches: dict[str, list[tuple[int, LayerDiagnostics]]] = field(init=False)
    scatter: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.batches = {name: [] for name in self.layers}
        self.generator = np.random.default_rng(self.seed)

    @property
    def stats(self) -> dict[str, LayerDiagnostics]:
        """Each layer's statistics over all batches (added in batch order)."""
        totals = {}
        for name, rows in self.batches.items():
            total = LayerDiagnostics()
            for _, part in sorted(rows, key=lambda row: row[0]):
                for key, value in dataclasses.asdict(part).items():
                    setattr(total, key, getattr(total, key) + value)
            totals[name] = total
        return totals

    def add(
        self, index: int, activations: dict[str, Tensor], res: BatchResult, timesteps: int
    ) -> None:
        for name, neuron_spikes in res.totals.items():
            rates = spike_rates(neuron_spikes, timesteps)
            part = LayerDiagnostics()
            part.update(activations[name], rates)
            self.batches[name].append((index, part))
            if index == 0:  # the plots' sample comes from the first batch
                self.scatter[name] = self._sample(activations[name], rates)

    def state(self) -> dict[str, Any]:
        return {
            "batches": {
                name: [[index, dataclasses.asdict(part)] for index, part in rows]
                for name, rows in self.batches.items()
            },
            "scatter": {k: list(v) for k, v in self.scatter.items()},
        }

    def absorb(self, state: dict[str, Any]) -> None:
        for name, rows in state["batches"].items():
            self.batches[name] += [(index, LayerDiagnostics(**part)) for index, part in rows]
        for name, (a, r) in state["scatter"].items():
            self.scatter[name] = (a, r)

    def _sample(self, activation: Tensor, rate: Tensor) -> tuple[Tensor, Tensor]:
        a = activation.reshape(-1).float().cpu()
        r = rate.reshape(-1).float().cpu()
        if a.numel() > SCATTER_SAMPLES:  # drawn without replacement in O(samples), not O(n)
            drawn = self.generator.choice(a.numel(), SCATTER_SAMPLES, replace=False)
            index = torch.from_numpy(np.sort(drawn))
            a, r = a[index], r[index]
        return a.contiguous(), r.contiguous()


# --- the per-layer rows --------------------------------------------------------------------------


@dataclass
class LayerRow:
    """One spiking layer in ``results.json``'s ``layers`` (absent figures are left out)."""

    name: str
    op: str
    source: str
    neurons: int
    scale: float
    mean_rate: float
    activation_max: float | None = None
    sops_per_sample: float | None = None
    fan_out_mean: float | None = None
    silent_fraction: float | None = None
    saturated_fraction: float | None = None
    correlation: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _layer_row(
    node: Node,
    timesteps: int,
    spikes: dict[str, list[float]],
    sops: dict[str, list[float]],
    stats: dict[str, Any],
    fan_outs: dict[str, Tensor],
    diagnostics: dict[str, LayerDiagnostics] | None,
) -> LayerRow:
    neurons = 1
    for d in node.meta.get("shape", ()):
        neurons *= int(d)
    total = float(sum(spikes[node.name])) if node.name in spikes else None
    row = LayerRow(
        name=node.name,
        op=node.op.kind,
        source=node.source,
        neurons=neurons,
        scale=float(node.meta.get("scale", 1.0)),
        mean_rate=total / (neurons * timesteps) if total is not None else float("nan"),
    )
    if node.name in stats:
        row.activation_max = float(stats[node.name].get("max", float("nan")))
    if node.name in sops:
        row.sops_per_sample = float(sum(sops[node.name]))
    if node.name in fan_outs:
        row.fan_out_mean = float(fan_outs[node.name].mean())
    if diagnostics is not None:
        d = diagnostics[node.name]
        row.silent_fraction = d.silent_fraction
        row.saturated_fraction = d.saturated_fraction
        row.correlation = d.correlation
    return row


def _dead_layer_warnings(layers: list[dict[str, Any]], timesteps: int, n: int) -> list[str]:
    """A warning for each spiking layer that never fired."""
    return [
        f"layer {layer['name']} never fired in {timesteps} steps on {n} samples: it passes "
        "nothing on (its rate-activation correlation is undefined: null). Check its inputs "
        "and its λ (activation_max), or simulate longer"
        for layer in layers
        if layer.get("mean_rate") == 0.0
    ]


def _arrays(
    accuracy: _Accuracy, diagnostics: _Diagnostics | None, stats: dict[str, Any]
) -> dict[str, Tensor]:
    """What ``arrays.safetensors`` holds besides the per-step events."""
    arrays: dict[str, Tensor] = {"labels": torch.cat(accuracy.labels).to(torch.int64)}
    arrays["ann_predictions"] = torch.cat(accuracy.ann_predictions).to(torch.int64)
    arrays["predictions"] = torch.cat(accuracy.predictions).to(torch.int64)
    for name, (a, r) in (diagnostics.scatter if diagnostics is not None else {}).items():
        arrays[f"scatter/{name}/activation"] = a
        arrays[f"scatter/{name}/rate"] = r
    for name, s in stats.items():
        if s.get("histogram"):
            arrays[f"histogram/{name}"] = torch.tensor(s["histogram"], dtype=torch.int64)
    return arrays


# --- the run -------------------------------------------------------------------------------------


def _prepare(
    network: SpikingNetwork, data: object, timesteps: int, config: Config, record_spikes: bool
) -> tuple[OperationCounts | None, Tensor | None]:
    """Check the labels (all at once where the data holds them) and the memory; count the
    operations' static part."""
    labels = _all_labels(data)
    if labels is not None:
        check_labels(labels, num_classes(network.graph))
    with phase("counting"):
        counts = count_operations(network.graph, config.input_encoding) if record_spikes else None
    samples = _samples(data)
    check_memory(
        estimate_memory(
            network.graph,
            timesteps,
            min(config.batch_size, samples or config.batch_size),
            config.chunk or default_chunk(config.resolved_device()),
            len(counts.sources) if counts is not None else len(network.spiking_layers),
        )
    )
    return counts, labels


@dataclass
class _Tallies:
    """What an evaluation adds up, batch by batch: accuracy, events, diagnostics."""

    accuracy: _Accuracy
    events: _Events
    diagnostics: _Diagnostics | None

    def state(self) -> dict[str, Any]:
        """Everything added so far, as CPU tensors and plain values (for a checkpoint or
        for the other ranks)."""
        return {
            "accuracy": self.accuracy.state(),
            "events": self.events.state(),
            "diagnostics": self.diagnostics.state() if self.diagnostics else None,
        }

    def absorb(self, state: dict[str, Any]) -> None:
        self.accuracy.absorb(state["accuracy"])
        self.events.absorb(state["events"])
        if self.diagnostics is not None and state["diagnostics"] is not None:
            self.diagnostics.absorb(state["diagnostics"])


def network_digest(network: SpikingNetwork) -> str:
    """sha256 of the converted network's layers, thresholds and scales (a checkpoint's
    fingerprint: a resumed run must simulate the same network)."""
    h = hashlib.sha256()
    for node in network.graph.nodes:
        h.update(f"{node.name}|{node.op.kind}|{node.inputs}|{node.meta.get('scale')}".encode())
        for f in dataclasses.fields(node.op):
            value = getattr(node.op, f.name)
            if isinstance(value, Tensor):
                h.update(
                    value.detach()
                    .cpu()
                    .contiguous()
                    .reshape(-1)
                    .view(torch.uint8)
                    .numpy()
                    .tobytes()
                )
            else:
                h.update(f"{f.name}={value!r}".encode())
    return h.hexdigest()


def _fingerprint(
    network: SpikingNetwork, data: object, timesteps: int, config: Config, diagnostics: bool
) -> dict[str, Any]:
    """What a checkpoint's run must share with the evaluation resuming it, besides what
    the caller put in the :class:`~snnconv.checkpoint.Checkpoint`."""
    options = {k: v for k, v in config.to_dict().items() if k != "threads"}
    return json.loads(
        json.dumps(
            {
                "timesteps": timesteps,
                "samples": _samples(data),
                "network": network_digest(network),
                "evaluation": {"config": options, "diagnostics": diagnostics},
            },
            default=str,
        )
    )


def run_evaluation(
    network: SpikingNetwork,
    data: object,
    timesteps: int,
    config: Config,
    *,
    progress: bool = False,
    record_spikes: bool = True,
    diagnostics: bool = False,
    calibration: object = None,
    checkpoint: Checkpoint | None = None,
) -> EvaluationResult:
    """Evaluate a converted network (see :func:`snnconv.evaluate`); ``calibration`` tunes
    the early exit's rule where it is on and not given; ``checkpoint`` saves the progress
    (and resumes from it). Under an initialised process group each rank simulates its
    shard of the batches and every rank returns the merged result."""
    counts, labels_checked = _prepare(network, data, timesteps, config, record_spikes)
    device = config.resolved_device()
    fan_outs = {s.name: s.fan_out for s in counts.sources} if counts is not None else {}
    sim = Simulator(
        network.graph,
        device=device,
        chunk=config.chunk,
        precision=config.precision,
        input_encoding=config.input_encoding,
        seed=config.seed,
        readout=config.readout,
        fan_out=fan_outs if counts is not None else None,
    )
    diag = _Diagnostics(network.spiking_layers, config.seed) if diagnostics else None
    tallies = _Tallies(_Accuracy(timesteps, device), _Events(), diag)
    fingerprint: dict[str, Any] = {}
    if checkpoint is not None:
        fingerprint = _fingerprint(network, data, timesteps, config, diagnostics)
        restored = checkpoint.restore(fingerprint)
        if restored is not None:
            tallies.absorb(restored)
        checkpoint.restored = (len(tallies.accuracy.batches), tallies.accuracy.samples)
    done = set(tallies.accuracy.batches)
    classes = num_classes(network.graph)
    start = time.perf_counter()
    parallel = distributed.world().parallel
    bar = tqdm(
        total=None if parallel else _samples(data),
        initial=tallies.accuracy.samples,
        disable=not (progress and distributed.is_main()),
        unit="sample",
        desc=f"simulating T={timesteps}",
    )
    mine = indexed_batches(
        data, config.batch_size, lambda i: distributed.shard(i) and i not in done
    )
    for index, x, y in mine:
        if labels_checked is None:
            check_labels(y, classes)
        x, y = x.to(device, torch.float32), y.to(device)
        with phase("ann"):
            out, activations = run_graph(sim.graph, x, capture=diag.layers if diag else ())
        with phase("simulation"):
            res = sim.run(
                x, y, timesteps, record_spikes=record_spikes, batch_index=index,
                record_rates=bool(diag),
            )  # fmt: skip
        with phase("results"):
            tallies.accuracy.add(index, y, out, res)
            tallies.events.add(res)
            if diag is not None:
                diag.add(index, activations, res, timesteps)
        bar.update(x.shape[0])
        if checkpoint is not None and checkpoint.due():
            with phase("saving"):
                checkpoint.save(tallies.state, fingerprint)
    bar.close()
    if checkpoint is not None and checkpoint.saved:
        with phase("saving"):
            checkpoint.save(tallies.state, fingerprint)  # this rank is done
    if parallel:
        with phase("results"):
            tallies = _merged(tallies, timesteps, device, network.spiking_layers, config.seed)
    accuracy, events, diag = tallies.accuracy, tallies.events, tallies.diagnostics
    if accuracy.samples == 0:
        raise DataError("evaluation data is empty: pass at least one labelled sample")
    seconds = time.perf_counter() - start
    with phase("results"):
        result = _result(
            network, data, config, timesteps, accuracy, events, diag, counts, seconds=seconds
        )  # fmt: skip
    if config.early_exit:
        with phase("early exit"):
            result.early_exit = _early_exit(sim, data, timesteps, config, calibration, counts)
    return result


def _merged(
    tallies: _Tallies, timesteps: int, device: Any, layers: list[str], seed: int
) -> _Tallies:
    """Every rank's tallies added up (the same on every rank)."""
    merged = _Tallies(
        _Accuracy(timesteps, device),
        _Events(),
        _Diagnostics(layers, seed) if tallies.diagnostics is not None else None,
    )
    for state in distributed.all_gather(tallies.state()):
        merged.absorb(state)
    return merged


def auto_batch_size(
    network: SpikingNetwork,
    data: object,
    timesteps: int,
    config: Config,
    log: Callable[[str], object] = print,
) -> int:
    """The largest batch that fits (``--batch-size auto``).

    On the CPU, from the run's memory estimate (:func:`~snnconv.sim.memory.estimate_memory`)
    against the memory available, shared among the ranks of a node; on CUDA, from the
    estimate against the device's free memory, then tried on the first batch and halved
    (with a message) until it does not run out of memory. The ranks of a data-parallel
    run take the smallest of their choices, so that batch indices agree.
    """
    device = config.resolved_device()
    chunk = config.chunk or default_chunk(device)
    samples = _samples(data)
    sources = 2 * len(network.spiking_layers) + 1
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        start = largest_batch(network.graph, timesteps, chunk, sources, free, samples, 0.8)
        _, x, y = next(indexed_batches(data, start))
        sim = Simulator(
            network.graph, device=device, chunk=config.chunk, precision=config.precision,
            input_encoding=config.input_encoding, seed=config.seed, readout=config.readout,
        )  # fmt: skip
        x, y = x.to(device, torch.float32), y.to(device)
        steps = min(timesteps, 2 * chunk)
        batch = probe_batch_size(lambda b: sim.run(x[:b], y[:b], steps), x.shape[0], log)
    else:
        ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        available = (available_memory() or 1 << 30) // max(1, ranks_here)
        batch = largest_batch(network.graph, timesteps, chunk, sources, available, samples)
    return int(min(distributed.all_gather(batch)))


def _exit_rule(sim: Simulator, timesteps: int, config: Config, calibration: object) -> ExitRule:
    """The configured rule, or one tuned on (up to 1,000 of) the calibration inputs."""
    if config.exit_patience is not None and config.exit_margin is not None:
        return ExitRule(config.exit_patience, config.exit_margin)
    if calibration is None:
        raise ConfigError(
            "early exit needs its rule: give exit_patience and exit_margin, or calibration "
            "data to tune them on (evaluate(..., calibration=...))"
        )
    x = torch.cat([b for b, _ in zip(iterate_batches(calibration, 1000), range(1), strict=False)])
    classes, margins = trace(sim, x[:1000], timesteps)
    tuned = tune_exit_rule(classes, margins)
    return ExitRule(
        config.exit_patience if config.exit_patience is not None else tuned.patience,
        config.exit_margin if config.exit_margin is not None else tuned.margin,
    )


def _early_exit(
    sim: Simulator,
    data: object,
    timesteps: int,
    config: Config,
    calibration: object,
    counts: OperationCounts | None,
) -> dict[str, Any]:
    """The second simulation, each sample until it exits: ``results.json``'s ``early_exit``."""
    rule = _exit_rule(sim, timesteps, config, calibration)
    start = time.perf_counter()
    steps, correct1, correct5, sops = [], 0, 0, 0.0
    for index, x, y in indexed_batches(data, config.batch_size, distributed.shard):
        batch = run_early_exit(sim, x, y, timesteps, rule, batch_index=index)
        steps.append((index, batch.steps.cpu()))
        correct1 += batch.correct_top1
        correct5 += batch.correct_top5
        sops += sum(batch.sops.values())
    parts = distributed.all_gather((steps, correct1, correct5, sops))
    steps = sorted(s for part in parts for s in part[0])
    correct1, correct5 = sum(p[1] for p in parts), sum(p[2] for p in parts)
    sops = sum(p[3] for p in parts)
    seconds = time.perf_counter() - start
    exits = torch.cat([s for _, s in steps])
    n = exits.numel()
    input_macs = float(counts.input_macs_total) if counts is not None else 0.0
    return {
        "criterion": {
            "patience": rule.patience,
            "margin": rule.margin,
            "rule": "top-1 unchanged for `patience` steps and top-1 - top-2 accumulated "
            "readout >= `margin`",
            "tuned": config.exit_patience is None or config.exit_margin is None,
        },
        "mean_steps": float(exits.double().mean()),
        "steps_histogram": torch.bincount(exits - 1, minlength=timesteps).tolist(),
        "top1": correct1 / n,
        "top5": correct5 / n,
        "ops_per_sample": input_macs + sops / n if counts is not None else None,
        "seconds": seconds,
    }


def _result(
    network: SpikingNetwork,
    data: object,
    config: Config,
    timesteps: int,
    accuracy: _Accuracy,
    events: _Events,
    diag: _Diagnostics | None,
    counts: OperationCounts | None,
    *,
    seconds: float,
) -> EvaluationResult:
    """The tallies as an :class:`EvaluationResult`."""
    n = accuracy.samples
    spikes, sops = events.per_sample(n)
    cumulative = torch.zeros(timesteps, dtype=torch.float64)
    for c in events.sops.values():
        cumulative += c.cpu() / n
    info = network.info
    stats = info.get("stats", {})
    fan_outs = {s.name: s.fan_out for s in counts.sources} if counts is not None else {}
    diag_stats = diag.stats if diag is not None else None
    layers = [
        _layer_row(node, timesteps, spikes, sops, stats, fan_outs, diag_stats).to_dict()
        for node in network.graph.nodes
        if isinstance(node.op, SPIKING_OPS)
    ]
    as_floats = (lambda d: {k: float(v) for k, v in d.items()}) if counts else (lambda d: {})
    return EvaluationResult(
        ann_top1=accuracy.ann1 / n,
        ann_top5=accuracy.ann5 / n,
        snn_top1=(accuracy.snn1.double() / n).tolist(),
        snn_top5=(accuracy.snn5.double() / n).tolist(),
        num_samples=n,
        timesteps=timesteps,
        seconds=seconds,
        device=str(config.resolved_device()),
        config=config.to_dict(),
        model=str(info.get("model", "")),
        calibration=dict(info.get("calibration", {})),
        data_source=data_source(data),
        model_weights=info.get("model_weights"),
        low_latency=info.get("low_latency"),
        layers=layers,
        warnings=[*info.get("warnings", []), *_dead_layer_warnings(layers, timesteps, n)],
        ann_macs=as_floats(counts.ann_macs) if counts else {},
        ann_other_ops=as_floats(counts.ann_other) if counts else {},
        input_macs=as_floats(counts.input_macs) if counts else {},
        sops=cumulative.cumsum(0).tolist() if counts else [],
        sops_per_source=sops,
        spikes_per_step=spikes,
        neuron_updates=as_floats(counts.neuron_updates(timesteps)) if counts else {},
        arrays=_arrays(accuracy, diag, stats),
    )
