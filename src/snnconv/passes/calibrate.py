"""Activation statistics over a calibration set: exact percentiles in bounded memory.

The robust maximum λ of a layer is the p-th percentile of its *non-zero*
activations, pooled over all samples and neurons of the calibration set, with
linear interpolation between order statistics (numpy's default 'linear'
method): with the n positive values sorted ascending as v_0 ≤ … ≤ v_{n−1} and
h = (n − 1)·p/100, λ = v_⌊h⌋ + (h − ⌊h⌋)·(v_⌊h⌋+1 − v_⌊h⌋).

The two order statistics are found exactly without storing the activations:
pass 1 counts the positive values and finds their maximum; pass 2 builds a
histogram of ``bins`` equal-width buckets over (0, max]; each further pass
either collects the values of the bucket holding a wanted rank (when it holds
at most ``collect_limit`` values) and sorts them, or splits that bucket into
``bins`` finer buckets. Bucket membership uses the same float64 boundaries in
every pass, so no value is ever counted in two buckets: the result is exact
(equal to ``numpy.percentile`` of all positive activations, up to the float64
rounding of the interpolation), and memory is O(layers × (bins +
collect_limit)), independent of the calibration-set size. Typical cost: three
passes over the calibration data. In a data-parallel run (:mod:`snnconv.distributed`)
each rank reads its own batches and the counts, maxima, histograms and collected
values of every pass are merged across ranks, so λ is exactly one process's.

Where the positive values of every measured layer fit in ``cache_bytes``
(:data:`CACHE_BYTES` by default), the first pass keeps them and the two order
statistics are selected from them directly (``topk`` or ``kthvalue``, exact
as well): one pass over the calibration data in all. The same holds for p = 100,
which needs only the maximum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from snnconv import distributed
from snnconv.config import Config
from snnconv.errors import ConfigError, NumericalError
from snnconv.ir import Concat, Graph, IFNeuron, MaxPool2d, ReLU
from snnconv.sim.reference import run_graph

#: Memory the first calibration pass may use to keep every positive activation, so that
#: the percentile needs no further pass (1,000 Fashion-MNIST images through the VGG-style
#: net: 73 MB).
CACHE_BYTES = 512 << 20


@dataclass(frozen=True)
class Percentile:
    """The p-th percentile of non-zero activations (p in (0, 100]; 100 = max-norm).

    Its default and its check are those of ``Config.percentile``.
    """

    p: float = Config().percentile

    def __post_init__(self) -> None:
        Config(percentile=self.p)  # the one check of the option (ConfigError names it)


@dataclass
class LayerStats:
    """Statistics of one activation layer over the calibration set.

    Attributes:
        scale: The robust maximum λ (the chosen percentile), or 1.0 if the
            layer never activated. For a layer that feeds max pooling it is the
            larger of the percentile of its own values and that of its max-pooled
            values (``pooled_scale``).
        max: The largest activation seen.
        positive: How many activations were > 0.
        total: How many activations were seen.
        histogram: Counts of positive activations in ``bins`` equal buckets over (0, max].
    """

    scale: float
    max: float
    positive: int
    total: int
    histogram: list[int] = field(default_factory=list)
    pooled_scale: float | None = None


def activation_nodes(graph: Graph) -> list[str]:
    """Names of the nodes whose outputs are normalized (ReLU / IF layers)."""
    return [n.name for n in graph.nodes if isinstance(n.op, (ReLU, IFNeuron))]


def max_pooled_layers(graph: Graph) -> dict[str, list[MaxPool2d]]:
    """The max-pooling layers that pool each activation layer's values.

    ``{ReLU node: [MaxPool2d ops]}`` for every ReLU whose output reaches a
    max pool directly or as a block of a channel concatenation (pooling is
    per channel, so the pool of a concatenation, restricted to one block, is
    the pool of that block's input).
    """
    found: dict[str, list[MaxPool2d]] = {}

    def visit(name: str, op: MaxPool2d) -> None:
        node = graph.node(name)
        if isinstance(node.op, (ReLU, IFNeuron)):
            found.setdefault(name, []).append(op)
        elif isinstance(node.op, Concat) and node.op.dim == 1:
            for i in node.inputs:
                visit(i, op)

    for node in graph.nodes:
        if isinstance(node.op, MaxPool2d):
            visit(node.inputs[0], node.op)
    return found


def iterate_batches(data: object, batch_size: int = 256) -> Iterator[Tensor]:
    """Yield input batches from a tensor, a dataset, a DataLoader or any re-iterable of batches.

    Items may be tensors or ``(x, y, ...)`` tuples; only ``x`` is used.
    """
    if isinstance(data, Tensor):
        for start in range(0, data.shape[0], batch_size):
            yield data[start : start + batch_size]
        return
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(
        data, torch.utils.data.IterableDataset
    ):
        data = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    if not isinstance(data, Iterable):
        raise ConfigError(
            f"calibration data must be a tensor, a Dataset or a DataLoader, got {type(data)!r}"
        )
    if isinstance(data, Iterator):
        raise ConfigError(
            "calibration data is a one-shot iterator, but statistics need several passes; "
            "pass a tensor, a Dataset or a DataLoader instead"
        )
    for item in data:
        x = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(x, Tensor):
            raise ConfigError(f"calibration batches must be tensors, got {type(x)!r}")
        yield x


class _RankSearch:
    """Locates the value of one rank among a layer's positive activations."""

    def __init__(self, rank: int, upper: float, count: int, bins: int):
        self.rank = rank  # rank within the current interval
        self.lo = 0.0  # interval is lo < x <= hi on the first level, lo <= x < hi later
        self.hi = upper
        self.first = True
        self.count = count
        self.bins = bins
        self.value: float | None = None
        self.boundaries: Tensor | None = None
        self.histogram: Tensor | None = None
        self.collected: list[Tensor] = []
        self.seen_min = math.inf
        self.seen_max = -math.inf

    def select(self, x: Tensor) -> Tensor:
        x = x.double()  # compare in float64, exactly as bucketize does
        if self.first:
            return x[(x > self.lo) & (x <= self.hi)]
        # Later intervals may start at 0 (the first bucket): zeros are never counted.
        return x[(x >= self.lo) & (x < self.hi) & (x > 0)]

    def start_pass(self, collect_limit: int) -> None:
        self.collect = self.count <= collect_limit
        self.histogram = torch.zeros(self.bins, dtype=torch.int64)
        self.boundaries = torch.linspace(self.lo, self.hi, self.bins + 1, dtype=torch.float64)
        self.collected = []
        self.seen_min, self.seen_max = math.inf, -math.inf

    def observe(self, x: Tensor) -> None:
        sel = self.select(x)
        if sel.numel() == 0:
            return
        if self.collect:
            self.collected.append(sel.cpu())
            return
        self.seen_min = min(self.seen_min, float(sel.min()))
        self.seen_max = max(self.seen_max, float(sel.max()))
        assert self.boundaries is not None and self.histogram is not None
        # right=True: boundaries[i-1] <= x < boundaries[i]; the top edge joins the last bin.
        idx = torch.bucketize(sel.cpu(), self.boundaries, right=True) - 1
        idx.clamp_(0, self.bins - 1)
        self.histogram += torch.bincount(idx, minlength=self.bins)

    def merge(self) -> None:
        """Make this pass's observations those of all ranks together (data-parallel runs:
        every rank saw only its own batches)."""
        if not distributed.world().parallel:
            return
        mine = (
            torch.cat(self.collected).double() if self.collected else None,
            self.histogram,
            self.seen_min,
            self.seen_max,
        )
        parts = distributed.all_gather(mine)
        values = [v for v, *_ in parts if isinstance(v, Tensor)]
        self.collected = [torch.cat(values)] if values else [torch.zeros(0, dtype=torch.float64)]
        if self.histogram is not None:
            self.histogram = torch.stack([h for _, h, *_ in parts if isinstance(h, Tensor)]).sum(0)
        self.seen_min = min(p[2] for p in parts)
        self.seen_max = max(p[3] for p in parts)

    def end_pass(self) -> None:
        if self.collect:
            values = torch.cat(self.collected).double().sort().values
            self.value = float(values[self.rank])
            self.collected = []
            return
        if self.seen_min == self.seen_max:  # all values in the interval are equal
            self.value = self.seen_min
            return
        assert self.histogram is not None and self.boundaries is not None
        cumulative = self.histogram.cumsum(0)
        b = int(torch.searchsorted(cumulative, torch.tensor(self.rank), right=True))
        before = int(cumulative[b - 1]) if b > 0 else 0
        self.rank -= before
        self.count = int(self.histogram[b])
        lo, hi = float(self.boundaries[b]), float(self.boundaries[b + 1])
        if b == self.bins - 1:
            hi = math.nextafter(hi, math.inf)  # the last bucket includes its top edge
        self.lo, self.hi, self.first = lo, hi, False


@torch.no_grad()
def collect_activation_stats(
    graph: Graph,
    data: object,
    percentile: Percentile = Percentile(),
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    bins: int = 2048,
    collect_limit: int = 1 << 18,
    progress: bool = False,
    extra: list[str] | None = None,
    pooled: Mapping[str, Sequence[MaxPool2d]] | None = None,
    cache_bytes: int = CACHE_BYTES,
) -> dict[str, LayerStats]:
    """Compute λ for every ReLU layer of ``graph`` over the calibration ``data``.

    Args:
        graph: An ANN graph (batch-norm folded).
        data: Calibration inputs: a tensor, Dataset, DataLoader or re-iterable of batches.
        percentile: Which robust maximum to take.
        batch_size: Batch size when ``data`` is a tensor or dataset.
        device: Where to run the forward passes.
        bins: Buckets per histogram level.
        collect_limit: Largest number of values sorted exactly at once.
        cache_bytes: The first pass keeps the positive values while they take at most
            this much memory; if they all fit, the order statistics are selected from
            them and no further pass runs (0: always the multi-pass search).
        progress: Show a progress bar per pass.
        extra: Further nodes to measure (e.g. the output layer, for spike readouts).
        pooled: ``{activation layer: max pools of its values}`` (see
            :func:`max_pooled_layers`): λ of such a layer is at least the
            percentile of its max-pooled values, so that the values the max
            pools pass on (each pool's largest input, the likeliest to exceed
            the layer's own percentile) saturate no more often than p allows.

    Returns:
        ``{node name: LayerStats}`` for each activation node.

    Raises:
        ConfigError: empty calibration data.
        NumericalError: NaN or Inf activations (naming the layer).
    """
    layers = activation_nodes(graph)
    layers += [name for name in extra or [] if name not in layers]
    if distributed.world().parallel:
        cache_bytes = 0  # each rank holds part of the values: the searches merge histograms
    views = {
        f"{name}@maxpool{k}": (name, op)
        for name, ops in (pooled or {}).items()
        for k, op in enumerate(ops)
        if name in layers
    }
    run = _Passes(graph, data, layers, views, batch_size, device, progress)
    counts = _count(run, layers + list(views), cache_bytes if percentile.p < 100 else 0)
    searches, weights = _rank_searches(counts, percentile, bins)
    if counts.cache is not None:  # every positive value is at hand: no further pass
        histograms = _from_cache(counts, searches, bins)
    else:
        histograms = _search(run, searches, collect_limit)

    def robust_max(name: str) -> float:
        if counts.positive[name] == 0:
            return 0.0
        if percentile.p == 100:
            return counts.maximum[name]
        v0, v1 = (float(s.value) for s in (searches[name][0], searches[name][-1]))  # type: ignore[arg-type]
        return v0 + weights[name] * (v1 - v0)

    stats: dict[str, LayerStats] = {}
    for name in layers:
        scale = robust_max(name)
        pooled_values = [robust_max(v) for v, (of, _) in views.items() if of == name]
        pooled_scale = max(pooled_values) if pooled_values else None
        if pooled_scale is not None:
            scale = max(scale, pooled_scale)
        stats[name] = LayerStats(
            scale=scale if scale > 0 else 1.0,
            max=counts.maximum[name],
            positive=counts.positive[name],
            total=counts.total[name],
            histogram=histograms.get(name, []),
            pooled_scale=pooled_scale,
        )
    return stats


@dataclass
class _Passes:
    """Forward passes over the calibration data, yielding each measured node's values."""

    graph: Graph
    data: object
    layers: list[str]
    views: dict[str, tuple[str, MaxPool2d]]
    batch_size: int
    device: torch.device | str
    progress: bool

    def __post_init__(self) -> None:
        self.on_device = self.graph.to(self.device)

    def __call__(self, desc: str) -> Iterator[dict[str, Tensor]]:
        batches = iterate_batches(self.data, self.batch_size)
        progress = self.progress and distributed.is_main()
        mine = (x for i, x in enumerate(batches) if distributed.shard(i))
        for x in tqdm(mine, desc=desc, disable=not progress, leave=False, unit="batch"):
            _, acts = run_graph(
                self.on_device, x.to(self.device, torch.float32), capture=self.layers
            )
            for view, (name, op) in self.views.items():
                acts[view] = op.apply(acts[name])
            yield {name: a.reshape(-1) for name, a in acts.items()}

    def source(self, name: str) -> str:
        """The user-facing name of a measured node (a max-pooled view names its layer)."""
        return self.graph.node(self.views[name][0] if name in self.views else name).source


@dataclass
class _Counts:
    """Positive activations, all activations and the largest one, per measured node, and
    the positive values themselves where they fit (``cache``; None where they did not)."""

    positive: dict[str, int]
    total: dict[str, int]
    maximum: dict[str, float]
    cache: dict[str, list[Tensor]] | None = None


def _count(run: _Passes, measured: list[str], cache_bytes: int) -> _Counts:
    """The first pass: counts and maxima, and the positive values while they take at most
    ``cache_bytes``; refuses NaN/Inf and empty data."""
    counts = _Counts(
        dict.fromkeys(measured, 0), dict.fromkeys(measured, 0), dict.fromkeys(measured, 0.0)
    )
    cache: dict[str, list[Tensor]] | None = {name: [] for name in measured}
    held = 0
    for acts in run("calibration"):
        for name, a in acts.items():
            if a.numel() == 0:
                continue
            low, high = torch.aminmax(a)  # NaN propagates into both
            if not (math.isfinite(float(low)) and math.isfinite(float(high))):
                raise NumericalError(
                    f"layer {run.source(name)!r} produced NaN or Inf activations on the "
                    "calibration data; check the input data (range, normalization) and weights"
                )
            positive = a[a > 0]
            counts.positive[name] += positive.numel()
            counts.total[name] += a.numel()
            counts.maximum[name] = max(counts.maximum[name], float(high))
            if cache is not None:
                held += positive.numel() * positive.element_size()
                if held > cache_bytes:
                    cache = None  # too many: the multi-pass search instead
                else:
                    cache[name].append(positive.to("cpu", torch.float32))
    counts.cache = cache
    if distributed.world().parallel:  # this rank's batches only: add up all ranks'
        counts.cache = None  # every rank takes the multi-pass search, together
        parts = distributed.all_gather((counts.positive, counts.total, counts.maximum))
        for name in measured:
            counts.positive[name] = sum(p[0][name] for p in parts)
            counts.total[name] = sum(p[1][name] for p in parts)
            counts.maximum[name] = max(p[2][name] for p in parts)
    if run.layers and sum(counts.total.values()) == 0:
        raise ConfigError("calibration data is empty: pass at least one sample")
    if not run.layers:
        first = next(iterate_batches(run.data, run.batch_size), None)
        if first is None or first.shape[0] == 0:
            raise ConfigError("calibration data is empty: pass at least one sample")
    return counts


def _rank_searches(
    counts: _Counts, percentile: Percentile, bins: int
) -> tuple[dict[str, list[_RankSearch]], dict[str, float]]:
    """The order statistics each node's percentile interpolates between, to be searched."""
    searches: dict[str, list[_RankSearch]] = {}
    weights: dict[str, float] = {}
    for name, n in counts.positive.items():
        if n == 0 or percentile.p == 100:
            continue
        h = (n - 1) * percentile.p / 100.0
        lo = math.floor(h)
        weights[name] = h - lo
        searches[name] = [
            _RankSearch(r, counts.maximum[name], n, bins) for r in sorted({lo, min(lo + 1, n - 1)})
        ]
    return searches, weights


def _from_cache(
    counts: _Counts, searches: dict[str, list[_RankSearch]], bins: int
) -> dict[str, list[int]]:
    """Resolve every rank search from the cached positive values (the largest ones by
    ``topk`` when the ranks are near the top, else ``kthvalue``), and each node's
    histogram over (0, max] for the report."""
    assert counts.cache is not None
    histograms: dict[str, list[int]] = {}
    for name, ss in searches.items():
        values = torch.cat(counts.cache[name])
        n = values.numel()
        top = n - min(s.rank for s in ss)
        counts_per_bin = torch.histc(values, bins, 0.0, counts.maximum[name])
        if top <= 1 << 16:
            largest = _largest(values, top, counts_per_bin, counts.maximum[name])  # descending
            for s in ss:
                s.value = float(largest[n - 1 - s.rank])
        else:
            for s in ss:
                s.value = float(torch.kthvalue(values, s.rank + 1).values)
        histograms[name] = [int(c) for c in counts_per_bin.round().long()]
    counts.cache = None
    return histograms


def _largest(values: Tensor, k: int, histogram: Tensor, maximum: float) -> Tensor:
    """The ``k`` largest of ``values`` (descending), exactly ``torch.topk``'s: ``topk`` of
    the values at or above a threshold read off their ``histogram`` over [0, maximum],
    a few thousand instead of millions (the full ``topk`` took 0.07 s per layer of 6.6
    million values). The threshold is one bucket below the one the counts point to, so
    that a value rounded into a higher bucket is still kept; should fewer than ``k``
    values pass it all the same, every value is searched."""
    from_top = histogram.flip(0).cumsum(0)
    reached = int(torch.searchsorted(from_top, torch.tensor(float(k), dtype=from_top.dtype)))
    bucket = max(histogram.numel() - 1 - reached - 1, 0)
    threshold = bucket * maximum / histogram.numel()
    if bucket > 0:
        kept = values[values >= threshold]
        if kept.numel() >= k:
            return torch.topk(kept, k).values
    return torch.topk(values, k).values


def _search(
    run: _Passes, searches: dict[str, list[_RankSearch]], collect_limit: int
) -> dict[str, list[int]]:
    """Narrow every rank search pass by pass until exact; returns the first histograms
    (over (0, max], kept for reports)."""
    histograms: dict[str, list[int]] = {}
    level = 0
    while any(s.value is None for ss in searches.values() for s in ss):
        pending = [s for ss in searches.values() for s in ss if s.value is None]
        for s in pending:
            s.start_pass(collect_limit if level > 0 else -1)
        for acts in run(f"calibration (percentile, pass {level + 1})"):
            for name, ss in searches.items():
                for s in ss:
                    if s.value is None:
                        s.observe(acts[name])
        for s in pending:
            s.merge()
        for name, ss in searches.items():
            if level == 0 and ss[0].histogram is not None:
                histograms[name] = [int(c) for c in ss[0].histogram]
        for s in pending:
            s.end_pass()
        level += 1
    return histograms
