"""Graph passes: functions from graph to graph."""

from snnconv.passes.calibrate import LayerStats, Percentile, collect_activation_stats
from snnconv.passes.fold_batchnorm import fold_batchnorm
from snnconv.passes.normalize import normalize
from snnconv.passes.pipeline import DEFAULT_PIPELINE, convert_graph, prepare_ann, run_passes
from snnconv.passes.shapes import infer_shapes
from snnconv.passes.simplify import remove_dropout
from snnconv.passes.to_spiking import to_spiking

__all__ = [
    "DEFAULT_PIPELINE",
    "LayerStats",
    "Percentile",
    "collect_activation_stats",
    "convert_graph",
    "fold_batchnorm",
    "infer_shapes",
    "normalize",
    "prepare_ann",
    "remove_dropout",
    "run_passes",
    "to_spiking",
]
