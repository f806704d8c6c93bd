"""The conversion flow: every step from an imported graph to a spiking one, as one list.

:func:`build_flow` is the table of contents of a conversion::

    infer_shapes → fold_batchnorm → remove_dropout → fold_replicating_pool
    → remove_output_softmax → [replace_maxpool] → infer_shapes
    → collect_statistics → normalize → to_spiking

Each step is a pass, a callable from graph to graph; analysis results travel in
the graph: :class:`CollectStatistics` records each activation layer's
:class:`~snnconv.passes.calibrate.LayerStats` in ``meta['stats']`` and the
readout's robust maximum in the output node's ``meta['readout_scale']``,
which the later passes read. ``snnconv convert MODEL --dry-run`` prints the
flow with its parameters (:func:`describe`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snnconv.config import Config, MaxPoolMode
from snnconv.errors import SnnconvError
from snnconv.ir import Graph, IFNeuron, ReLU
from snnconv.passes.calibrate import (
    LayerStats,
    Percentile,
    collect_activation_stats,
    max_pooled_layers,
)
from snnconv.passes.current_calibration import CalibrateCurrents, CurrentCalibration
from snnconv.passes.fold_batchnorm import fold_batchnorm
from snnconv.passes.low_latency import TuneLowLatency, tune
from snnconv.passes.normalize import normalize
from snnconv.passes.shapes import infer_shapes
from snnconv.passes.simplify import (
    fold_replicating_pool,
    remove_dropout,
    remove_output_softmax,
    replace_maxpool,
)
from snnconv.passes.threshold_search import SearchThresholds
from snnconv.passes.to_spiking import respike
from snnconv.phases import phase

__all__ = [
    "DEFAULT_PIPELINE",
    "CollectStatistics",
    "Conversion",
    "Pass",
    "PassError",
    "build_flow",
    "convert_graph",
    "describe",
    "prepare_ann",
    "run_passes",
    "spiking_passes",
    "structural_passes",
]

Pass = Callable[[Graph], Graph]

#: Structural passes applied to every imported graph, in order.
DEFAULT_PIPELINE: tuple[Pass, ...] = (
    infer_shapes,
    fold_batchnorm,
    remove_dropout,
    fold_replicating_pool,
    remove_output_softmax,
    infer_shapes,
)


class PassError(RuntimeError):
    """An internal failure inside a pass; names the passes that ran before it."""


def describe(step: Pass) -> str:
    """A pass's name, with its parameters where it has any (for ``--dry-run``)."""
    if dataclasses.is_dataclass(step):
        return step.describe() if hasattr(step, "describe") else repr(step)
    return str(getattr(step, "__name__", repr(step)))


@dataclass(frozen=True)
class CollectStatistics:
    """Measure every activation layer on the calibration data (the robust maximum λ and
    its histogram) and record it in the graph: ``meta['stats']`` of each activation node,
    ``meta['readout_scale']`` of the output node.

    A QCFS layer (a ReLU with ``levels``) keeps its trained λ: its ``scale`` is its
    bound, whatever the percentile says (the network was trained for that λ).

    Attributes:
        calibration: The calibration inputs (tensor, Dataset or DataLoader).
        percentile: p of the robust maximum.
        pool_aware: Take the percentile of max-pooled values into account.
        batch_size: Samples per forward pass.
        device: Where the passes run.
        progress: Show progress bars.
    """

    calibration: object
    percentile: float
    pool_aware: bool
    batch_size: int
    device: Any = "cpu"
    progress: bool = False

    def __call__(self, graph: Graph) -> Graph:
        stats = collect_activation_stats(
            graph,
            self.calibration,
            Percentile(self.percentile),
            batch_size=self.batch_size,
            device=self.device,
            progress=self.progress,
            extra=[graph.output],
            pooled=max_pooled_layers(graph) if self.pool_aware else None,
        )
        readout = stats.pop(graph.output).scale if graph.output in stats else 1.0
        nodes = []
        for n in graph.nodes:
            meta = dict(n.meta)
            if n.name in stats:
                meta["stats"] = stats[n.name]
                op = n.op
                if isinstance(op, (ReLU, IFNeuron)) and op.levels and op.max_value:
                    meta["stats"] = dataclasses.replace(stats[n.name], scale=op.max_value)
            if n.name == graph.output:
                meta["readout_scale"] = readout
            nodes.append(dataclasses.replace(n, meta=meta))
        return graph.replace_nodes(nodes)

    def describe(self) -> str:
        return (
            f"collect_statistics(percentile={self.percentile}, pool_aware={self.pool_aware}, "
            f"batch_size={self.batch_size})"
        )


def normalize_by_statistics(graph: Graph) -> Graph:
    """:func:`~snnconv.passes.normalize.normalize` with the λ that
    :class:`CollectStatistics` recorded in the graph."""
    return normalize(graph, statistics(graph))


normalize_by_statistics.__name__ = "normalize"


@dataclass(frozen=True)
class ToSpiking:
    """Replace every ReLU (binary activation) with IF (binary) neurons of the configured
    dynamics: :func:`~snnconv.passes.to_spiking.respike`."""

    config: Config

    def __call__(self, graph: Graph) -> Graph:
        return respike(graph, self.config)

    def describe(self) -> str:
        c = self.config
        return (
            f"to_spiking(reset={c.reset.value}, v_init={c.v_init}, "
            f"negative_spikes={c.negative_spikes}, clamp_steps={c.clamp_steps}, "
            f"rate_estimator={c.rate_estimator.value}, binary_threshold={c.binary_threshold})"
        )


def structural_passes(config: Config | None = None) -> list[Pass]:
    """Shapes, batch-norm folding, dropout removal, folding of pixel-copying adaptive
    pools, output-softmax removal, and (if configured) max-pool replacement."""
    passes = list(DEFAULT_PIPELINE)
    if config is not None and config.maxpool is MaxPoolMode.AVERAGE:
        passes.insert(-1, replace_maxpool)
    return passes


def build_flow(
    config: Config,
    calibration: object = None,
    *,
    device: Any = "cpu",
    progress: bool = False,
) -> list[Pass]:
    """Every pass of a conversion with ``config``, in order.

    With ``config.target_timesteps`` the passes after the statistics are chosen by
    :func:`~snnconv.passes.low_latency.tune`, listed as one step.

    Args:
        config: The options.
        calibration: The calibration data (only needed to run the flow, not to list it).
        device: Where calibration runs.
        progress: Show progress bars.
    """
    measure = CollectStatistics(
        calibration,
        config.percentile,
        config.pool_aware_percentile,
        config.batch_size,
        device,
        progress,
    )
    if config.target_timesteps is not None:
        return [*structural_passes(config), measure, TuneLowLatency.of(config)]
    return [*structural_passes(config), measure, *spiking_passes(config, calibration, device)]


def spiking_passes(config: Config, calibration: object = None, device: Any = "cpu") -> list[Pass]:
    """From the statistics to the spiking graph: [threshold search], normalization, the
    spiking layers, [bias or potential calibration]."""
    passes: list[Pass] = []
    timesteps = config.target_timesteps
    if config.threshold_search and timesteps is not None:
        passes.append(SearchThresholds(calibration, timesteps, config.batch_size, device))
    passes += [normalize_by_statistics, ToSpiking(config)]
    if timesteps is not None and (config.bias_calibration or config.potential_calibration):
        mode = CurrentCalibration.BIAS if config.bias_calibration else CurrentCalibration.POTENTIAL
        passes.append(CalibrateCurrents(calibration, timesteps, mode, device=device))
    return passes


def run_passes(graph: Graph, passes: tuple[Pass, ...] | list[Pass]) -> Graph:
    """Apply ``passes`` in order. A failing pass is reported with the ones before it."""
    done: list[str] = []
    for p in passes:
        name = describe(p).split("(")[0]
        try:
            with phase("calibration" if isinstance(p, CollectStatistics) else "conversion"):
                graph = p(graph)
        except SnnconvError:
            raise
        except Exception as error:
            raise PassError(
                f"pass {name} failed after [{', '.join(done)}]: {type(error).__name__}: {error}"
            ) from error
        done.append(name)
    return graph


def prepare_ann(graph: Graph, config: Config | None = None) -> Graph:
    """Run the structural passes (see :func:`structural_passes`)."""
    return run_passes(graph, structural_passes(config))


def statistics(graph: Graph) -> dict[str, LayerStats]:
    """The statistics :class:`CollectStatistics` recorded, by activation node."""
    return {n.name: n.meta["stats"] for n in graph.nodes if "stats" in n.meta}


@dataclass
class Conversion:
    """What a conversion gives: the spiking graph, the statistics it used (taken out of
    the graph, whose node metadata keep only what the saved format holds), the options
    it used (with ``target_timesteps``: those chosen), and the record of that choice."""

    graph: Graph
    stats: dict[str, LayerStats]
    config: Config
    low_latency: dict[str, Any] | None = None


def convert_graph(
    graph: Graph,
    calibration: object,
    config: Config,
    *,
    device: Any = "cpu",
    progress: bool = False,
) -> Conversion:
    """Run the flow (:func:`build_flow`) on an imported graph."""
    flow = build_flow(config, calibration, device=device, progress=progress)
    record = None
    if isinstance(flow[-1], TuneLowLatency):
        measured = run_passes(graph, flow[:-1])

        def finish(g: Graph, c: Config) -> Graph:
            return run_passes(g, [normalize_by_statistics, ToSpiking(c)])

        spiking, config, record = tune(measured, calibration, config, finish, device=device)
    else:
        spiking = run_passes(graph, flow)
    stats = statistics(spiking)
    nodes = [
        dataclasses.replace(n, meta={k: v for k, v in n.meta.items() if k != "stats"})
        for n in spiking.nodes
    ]
    return Conversion(spiking.replace_nodes(nodes), stats, config, record)
