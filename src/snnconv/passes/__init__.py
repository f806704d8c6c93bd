"""Graph passes: functions from graph to graph; :func:`build_flow` lists a conversion's."""

from snnconv.passes.calibrate import LayerStats, Percentile, collect_activation_stats
from snnconv.passes.fold_batchnorm import fold_batchnorm
from snnconv.passes.normalize import normalize
from snnconv.passes.pipeline import (
    DEFAULT_PIPELINE,
    build_flow,
    convert_graph,
    describe,
    prepare_ann,
    run_passes,
)
from snnconv.passes.shapes import infer_shapes
from snnconv.passes.simplify import remove_dropout
from snnconv.passes.to_spiking import respike, to_spiking

__all__ = [
    "DEFAULT_PIPELINE",
    "LayerStats",
    "Percentile",
    "build_flow",
    "collect_activation_stats",
    "convert_graph",
    "describe",
    "fold_batchnorm",
    "infer_shapes",
    "normalize",
    "prepare_ann",
    "remove_dropout",
    "respike",
    "run_passes",
    "to_spiking",
]
