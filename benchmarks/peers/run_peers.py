"""Peer simulators on the speed benchmark's networks: SpikingJelly and sinabs.

Runs inside the peer environment (``bash benchmarks/peers/setup.sh`` makes
``benchmarks/.peer-venv``), never in snnconv's own: neither peer is a
dependency of snnconv. ``benchmarks/speed.py`` starts it with the settings of
its own run and merges the JSON object this prints (its last line on stdout).

Each network is the one ``benchmarks/common.py: benchmark_net`` builds for
snnconv (same weights, calibration images, evaluation images and labels).
Every tool is timed on the same batches by ``common.timed_run`` and reports its
accuracy after every step (the output layer's input current accumulated over
the steps, as snnconv's readout), so speed is never shown without accuracy.

* ``spikingjelly-single``, ``spikingjelly-multi``: ``ann2snn.Converter`` with
  ``RateCodingRecipe(mode="99.9%")`` (the documented robust normalization;
  conv-BN fused, layer-wise threshold scaling around ``IFNode(v_reset=None)``,
  i.e. reset by subtraction). Single-step mode calls the net once per step;
  multi-step mode (``functional.set_step_mode(net, "m")``) takes input
  chunks ``[K, B, ...]`` of ``--chunk`` steps. ``functional.reset_net``
  between batches.
* ``sinabs``: batch-norm folded into the preceding convolution, weights
  scaled layer by layer so that the chosen percentile of each ReLU's output is
  1, then ``from_torch.from_model`` with its defaults (``IAFSqueeze``,
  threshold 1, ``MultiSpike``, ``MembraneSubtract``, ``min_v_mem=-1``) and
  ``--chunk`` steps per call (input ``[B·K, ...]``); states reset between
  batches. ``--sinabs-normalize rueckauer`` (default) is the data-based
  percentile scaling of Rueckauer et al. (2017) with biases compensated;
  ``sinabs`` calls ``sinabs.utils.normalize_weights``, which divides weights and
  biases by each layer's measured percentile and so leaves the biases of
  biased nets mis-scaled (LeNet and VGG here have biases).

A tool that cannot convert a network is reported as
``{"error": "cannot convert: ..."}`` rather than failing the run.

Usage: benchmarks/.peer-venv/bin/python benchmarks/peers/run_peers.py
       [--nets lenet_avg vgg_bn] [--timesteps 32 256] [--batch 256] [--images 1000]
       [--threads 2] [--device cpu] [--chunk 32] [--percentile 99.9]
       [--sinabs-spike multi|single] [--sinabs-normalize rueckauer|sinabs]
       [--tools ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from itertools import pairwise
from pathlib import Path

# No progress bars from SpikingJelly's calibration: tqdm reads this when first imported
# (torch imports it).
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import BenchmarkNet, add_speed_arguments, benchmark_net, timed_run

TOOLS = ("spikingjelly-single", "spikingjelly-multi", "sinabs")
RunBatch = Callable[[Tensor, Tensor, int], Tensor]

#: Calibration batch size for SpikingJelly's hooks (its MNIST example's).
SJ_CALIBRATION_BATCH = 100


class CannotConvertError(Exception):
    """A peer cannot convert a network; the message says why."""


# --- SpikingJelly --------------------------------------------------------------------------


def spikingjelly_convert(
    bench: BenchmarkNet, percentile: float, device: torch.device
) -> tuple[nn.Module, dict]:
    """``Converter(RateCodingRecipe(mode="P%"))`` on a copy of the ANN."""
    from spikingjelly.activation_based import ann2snn

    recipe = ann2snn.RateCodingRecipe(
        dataloader=list(bench.calibration.split(SJ_CALIBRATION_BATCH)), mode=f"{percentile}%"
    )
    net = ann2snn.Converter(recipe=recipe, device=device).convert(copy.deepcopy(bench.model))
    details = {
        "api": "spikingjelly.activation_based.ann2snn.Converter(RateCodingRecipe)",
        "mode": f"{percentile}%",
        "calibration_batch": SJ_CALIBRATION_BATCH,
        "threshold_statistic": "per-batch percentile, averaged with momentum 0.1 (recipe default)",
        "neuron": "IFNode(v_reset=None): threshold 1, reset by subtraction, between scalers",
        "conv_bn_fused": True,
    }
    return net.eval(), details


def spikingjelly_single(net: nn.Module) -> RunBatch:
    """One call per step; accumulated output after every step."""
    from spikingjelly.activation_based import functional

    functional.set_step_mode(net, "s")

    @torch.no_grad()
    def run(x: Tensor, y: Tensor, timesteps: int) -> Tensor:
        functional.reset_net(net)
        correct = torch.empty(timesteps, dtype=torch.int64, device=x.device)
        total: Tensor | None = None
        for t in range(timesteps):
            out = net(x)
            total = out if total is None else total + out
            correct[t] = (total.argmax(1) == y).sum()
        return correct

    return run


def spikingjelly_multi(net: nn.Module, chunk: int) -> RunBatch:
    """Chunks of ``chunk`` steps as ``[K, B, ...]`` inputs (multi-step mode)."""
    from spikingjelly.activation_based import functional

    functional.set_step_mode(net, "m")

    @torch.no_grad()
    def run(x: Tensor, y: Tensor, timesteps: int) -> Tensor:
        functional.reset_net(net)
        correct = torch.empty(timesteps, dtype=torch.int64, device=x.device)
        total = torch.zeros((), device=x.device)
        for start in range(0, timesteps, chunk):
            k = min(chunk, timesteps - start)
            cumulative = net(x.unsqueeze(0).expand(k, *x.shape)).cumsum(0) + total
            total = cumulative[-1]
            correct[start : start + k] = (cumulative.argmax(-1) == y).sum(1)
        return correct

    return run


# --- sinabs --------------------------------------------------------------------------------


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d in an ``nn.Sequential``."""
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in pairwise(names):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
    remaining = [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if remaining:
        raise CannotConvertError(
            f"batch norm outside conv-BN pairs of an nn.Sequential ({remaining[:3]}...); "
            "sinabs has no batch-norm folding of its own"
        )
    return model


def _run_with_hooks(
    model: nn.Module, sample: Tensor, names: list[str], hook: Callable[[str, Tensor], None]
) -> None:
    """One forward pass of ``model`` calling ``hook(name, output)`` after each named module."""
    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: hook(name, out))
        for name in names
    ]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()


def _call_order(model: nn.Module, sample: Tensor) -> tuple[list[str], dict[str, nn.Module]]:
    """Names of the ReLU, conv and linear modules in the order one forward pass runs them.

    Raises:
        CannotConvertError: A ReLU module runs more than once per forward pass:
            sinabs replaces each module by one stateful layer, so its call sites
            would share one membrane state.
    """
    order: list[str] = []
    modules = dict(model.named_modules())
    layers = [n for n, m in modules.items() if isinstance(m, (nn.ReLU, nn.Conv2d, nn.Linear))]
    _run_with_hooks(model, sample, layers, lambda name, _out: order.append(name))
    relus = [name for name in order if isinstance(modules[name], nn.ReLU)]
    shared = sorted({name for name in relus if relus.count(name) > 1})
    if shared:
        raise CannotConvertError(
            "from_model replaces each nn.ReLU module by one stateful IAF layer, and "
            f"ReLU module(s) {', '.join(shared[:3])} run at several call sites per forward "
            "(residual blocks), which would then share one membrane state"
        )
    return order, modules


def _layer_pairs(order: list[str], modules: dict[str, nn.Module]) -> list[tuple[str, str]]:
    """(conv/linear, the ReLU right after it) in call order: the layers a chain normalizes."""
    pairs = []
    for previous, name in pairwise(order):
        if isinstance(modules[name], nn.ReLU):
            if isinstance(modules[previous], nn.ReLU):
                raise CannotConvertError(f"ReLU {name} does not follow a conv or linear layer")
            pairs.append((previous, name))
    return pairs


def normalize_rueckauer(model: nn.Module, sample: Tensor, percentile: float) -> None:
    """Data-based percentile scaling (Rueckauer et al., 2017), biases included.

    With λ_l the ``percentile`` of ReLU l's output in the original ANN, the
    layer feeding ReLU l gets ``W ← W·λ_prev/λ_l``, ``b ← b/λ_l`` (λ_prev of the
    ReLU before it, 1 for the input) and the output layer ``W ← W·λ_last``, so
    every ReLU's ``percentile`` is 1 and the logits are unchanged. Valid for
    chains (pooling, flatten and dropout in between commute with the scaling).
    """
    order, modules = _call_order(model, sample[:2])
    pairs = _layer_pairs(order, modules)
    scale: dict[str, float] = {}

    def record(relu: str, out: Tensor) -> None:
        scale[relu] = float(np.percentile(out.cpu().numpy(), percentile))

    _run_with_hooks(model, sample, [relu for _, relu in pairs], record)
    following = dict(pairs)
    previous = 1.0
    with torch.no_grad():
        for name in order:
            module = modules[name]
            if isinstance(module, nn.ReLU):
                previous = scale[name]
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                new = scale[following[name]] if name in following else 1.0
                module.weight.mul_(previous / new)
                if module.bias is not None:
                    module.bias.div_(new)


def normalize_sinabs(model: nn.Module, sample: Tensor, percentile: float) -> None:
    """``sinabs.utils.normalize_weights`` (top-level layers of an ``nn.Sequential``).

    It divides weights *and* biases of each layer by the percentile measured
    after the earlier layers were scaled, so biases are not compensated for the
    earlier layers' scales: exact only for nets without biases.
    """
    from sinabs.utils import normalize_weights

    order, modules = _call_order(model, sample[:2])
    pairs = _layer_pairs(order, modules)
    top_level = dict(model.named_children())
    if not isinstance(model, nn.Sequential) or any(
        p not in top_level or r not in top_level for p, r in pairs
    ):
        raise CannotConvertError("normalize_weights takes the top-level layers of an nn.Sequential")
    normalize_weights(
        model,
        sample,
        output_layers=[relu for _, relu in pairs],
        param_layers=[param for param, _ in pairs],
        percentile=percentile,
    )


NORMALIZERS = {"rueckauer": normalize_rueckauer, "sinabs": normalize_sinabs}
NORMALIZATION = {
    "rueckauer": "data-based percentile scaling (Rueckauer et al., 2017), biases compensated",
    "sinabs": "sinabs.utils.normalize_weights (biases not compensated)",
}


def sinabs_convert(
    bench: BenchmarkNet, args: argparse.Namespace, device: torch.device
) -> tuple[nn.Module, dict]:
    """Fold batch norm, normalize weights, ``from_torch.from_model``."""
    import sinabs.activation
    from sinabs.from_torch import from_model

    ann = copy.deepcopy(bench.model).eval().to(device)
    calibration = bench.calibration.to(device)
    _call_order(ann, calibration[:2])  # refuses shared ReLU modules before anything else
    ann = fold_batchnorm(ann)
    NORMALIZERS[args.sinabs_normalize](ann, calibration, args.percentile)
    spike_fn = {"multi": sinabs.activation.MultiSpike, "single": sinabs.activation.SingleSpike}[
        args.sinabs_spike
    ]
    network = from_model(ann, num_timesteps=args.chunk, spike_fn=spike_fn, add_spiking_output=False)
    details = {
        "api": "sinabs.from_torch.from_model",
        "normalization": f"{NORMALIZATION[args.sinabs_normalize]}, percentile {args.percentile}",
        "batchnorm": "folded into the preceding conv (torch.nn.utils.fusion.fuse_conv_bn_eval)",
        "neuron": f"IAFSqueeze, threshold 1, {spike_fn.__name__}, MembraneSubtract, min_v_mem=-1",
        "steps_per_call": args.chunk,
    }
    return network.spiking_model.eval(), details


def sinabs_run(net: nn.Module, chunk: int) -> RunBatch:
    """Chunks of ``chunk`` steps as ``[B·K, ...]`` inputs (sinabs' squeezed layout)."""
    import sinabs.layers
    import sinabs.utils

    squeeze = [m for m in net.modules() if isinstance(m, sinabs.layers.SqueezeMixin)]

    @torch.no_grad()
    def run(x: Tensor, y: Tensor, timesteps: int) -> Tensor:
        sinabs.utils.reset_states(net)
        correct = torch.empty(timesteps, dtype=torch.int64, device=x.device)
        total = torch.zeros((), device=x.device)
        b = x.shape[0]
        for start in range(0, timesteps, chunk):
            k = min(chunk, timesteps - start)
            for module in squeeze:
                module.num_timesteps = k
            steps = x.unsqueeze(1).expand(b, k, *x.shape[1:]).reshape(b * k, *x.shape[1:])
            cumulative = net(steps).reshape(b, k, -1).cumsum(1) + total
            total = cumulative[:, -1:]
            correct[start : start + k] = (cumulative.argmax(-1) == y.unsqueeze(1)).sum(0)
        return correct

    return run


# --- the run -------------------------------------------------------------------------------


def _convert(
    tool: str, bench: BenchmarkNet, args: argparse.Namespace, device: torch.device
) -> tuple[RunBatch, dict]:
    """The tool's converted net as a batch runner, and how it was converted."""
    if tool == "sinabs":
        net, details = sinabs_convert(bench, args, device)
        return sinabs_run(net, args.chunk), details
    net, details = spikingjelly_convert(bench, args.percentile, device)
    if tool == "spikingjelly-single":
        return spikingjelly_single(net), details
    return spikingjelly_multi(net, args.chunk), details | {"steps_per_call": args.chunk}


def _reason(error: Exception) -> str:
    if isinstance(error, CannotConvertError):
        return str(error)
    return f"{type(error).__name__}: {error}".splitlines()[0]


def tool_results(
    tool: str, bench: BenchmarkNet, args: argparse.Namespace, device: torch.device
) -> dict:
    """Convert with one tool and time it at every T, or say why it could not.

    A peer's own exception is a result ("cannot convert: ..." or "failed while
    simulating: ..."), not a crash of the suite.
    """
    start = time.perf_counter()
    try:
        run, details = _convert(tool, bench, args, device)
    except Exception as error:
        return {"error": f"cannot convert: {_reason(error)}"}
    convert_seconds = time.perf_counter() - start
    try:
        runs = {
            str(t): timed_run(run, bench.x, bench.y, t, args.batch, device) for t in args.timesteps
        }
    except Exception as error:
        return {"error": f"failed while simulating: {_reason(error)}", "conversion": details}
    return {"conversion": details, "convert_seconds": convert_seconds, "runs": runs}


def versions() -> dict[str, str]:
    names = ("torch", "spikingjelly", "sinabs", "nir", "nirtorch", "numpy", "snnconv")
    return {"python": platform.python_version(), **{name: version(name) for name in names}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_speed_arguments(parser)
    parser.add_argument("--chunk", type=int, default=32, help="steps per call (multi-step modes)")
    parser.add_argument("--sinabs-spike", choices=["multi", "single"], default="multi")
    parser.add_argument("--sinabs-normalize", choices=list(NORMALIZERS), default="rueckauer")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--json", type=Path, help="also write the object to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(
            f"run_peers: --device cuda, but the peer environment's torch {torch.__version__} "
            "has no CUDA: install a CUDA build of the same torch version in benchmarks/.peer-venv"
        )
    report: dict = {"versions": versions(), "settings": vars(args) | {"json": None}, "nets": {}}
    for name in args.nets:
        bench = benchmark_net(name, args.images, args.seed)
        tools = {}
        for tool in args.tools:
            print(f"[peers] {name}: {tool}", file=sys.stderr, flush=True)
            tools[tool] = tool_results(tool, bench, args, device)
        report["nets"][name] = {
            "ann_top1": bench.ann_top1,
            "labels_from_ann": bench.labels_from_ann,
            "tools": tools,
        }
    text = json.dumps(report)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
