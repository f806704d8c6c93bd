"""The conversion pipeline: the ordered passes from an imported graph to a spiking one."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from snnconv.config import Config
from snnconv.errors import SnnconvError
from snnconv.ir import Graph
from snnconv.passes.calibrate import (
    LayerStats,
    Percentile,
    collect_activation_stats,
    max_pooled_layers,
)
from snnconv.passes.fold_batchnorm import fold_batchnorm
from snnconv.passes.normalize import normalize
from snnconv.passes.shapes import infer_shapes
from snnconv.passes.simplify import (
    fold_replicating_pool,
    remove_dropout,
    remove_output_softmax,
    replace_maxpool,
)
from snnconv.passes.to_spiking import to_spiking

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


def run_passes(graph: Graph, passes: tuple[Pass, ...] | list[Pass]) -> Graph:
    """Apply ``passes`` in order. A failing pass is reported with the ones before it."""
    done: list[str] = []
    for p in passes:
        name = str(
            getattr(p, "__name__", None) or getattr(getattr(p, "func", None), "__name__", "?")
        )
        try:
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
    """The structural passes: shapes, batch-norm folding, dropout removal, folding
    of pixel-copying adaptive pools, output-softmax removal, and (if configured)
    max-pool replacement."""
    from snnconv.config import MaxPoolMode

    passes = list(DEFAULT_PIPELINE)
    if config is not None and config.maxpool is MaxPoolMode.AVERAGE:
        passes.insert(-1, replace_maxpool)
    return run_passes(graph, passes)


def convert_graph(
    graph: Graph,
    calibration: object,
    config: Config,
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[Graph, dict[str, LayerStats]]:
    """Imported graph → spiking graph, with the activation statistics used.

    ``prepare_ann`` → ``collect_activation_stats`` → ``normalize`` → ``to_spiking``.
    """
    ann = prepare_ann(graph, config)
    stats = collect_activation_stats(
        ann,
        calibration,
        Percentile(config.percentile),
        batch_size=config.batch_size,
        device=device,
        progress=progress,
        extra=[ann.output],
        pooled=max_pooled_layers(ann) if config.pool_aware_percentile else None,
    )
    readout_scale = stats.pop(ann.output).scale if ann.output in stats else 1.0
    spiking = run_passes(
        ann,
        [
            partial(normalize, stats=stats),
            partial(
                to_spiking,
                reset=config.reset,
                v_init=config.v_init,
                hold_per_depth=config.clamp_steps,
                negative_spikes=config.negative_spikes,
                rate_estimator=config.rate_estimator,
                rate_window=config.rate_window,
                rate_decay=config.rate_decay,
                binary_threshold=config.binary_threshold,
            ),
        ],
    )
    spiking = spiking.with_op(spiking.output, spiking.output_node.op, readout_scale=readout_scale)
    return spiking, stats
