"""Cross-check snnconv's NIR export in an independent consumer: snnTorch.

Converts the Fashion-MNIST reference nets, writes each as NIR, reads the file
back with ``nir.read`` and imports it with snnTorch's NIR importer (through
nirtorch), configured to snnconv's semantics as far as snnTorch allows:

* snnTorch 1.0.0 maps ``nir.IF`` to ``snn.Leaky(beta=0.9)`` (a leaky neuron); we
  set ``beta = 1`` (no leak). Its default reset is by subtraction, like ours.
* It builds that Leaky with ``init_hidden=False``, so it returns (spikes, membrane)
  and the next layer fails on the tuple; we set ``init_hidden = True`` (state kept
  in the module, spikes returned).
* It maps ``nir.Flatten`` to ``nn.Flatten(start_dim, end_dim)`` applied to batched
  tensors, while NIR's dims exclude the batch axis; we shift them by one.
* It has no mapping for ``nir.I``; we register a running sum ``v += r·I`` (dt = 1).

* It fires on v > θ (NIR's rule); snnTorch accepts a custom spike function, so we
  also run it with s = [v − θ ≥ 0], snnconv's rule.

Both simulators get the same analog input (the image as a constant current at
every step) for T steps; we compare the predictions (argmax of the integrator),
the output potentials and every IF layer's total spike count.

    python benchmarks/nir_interop.py nir --samples 1000 --timesteps 64

``onnx`` instead of ``nir`` compares each net converted from PyTorch with the same
net exported to ONNX (TorchScript exporter) and converted from the ``.onnx`` file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = Path(__file__).resolve().parent / "nir_interop.json"


class Integrator(nn.Module):
    """nir.I in discrete time with dt = 1: v ← v + r·I; outputs v."""

    def __init__(self, r: Any):
        super().__init__()
        self.register_buffer("r", torch.as_tensor(r, dtype=torch.float32))
        self.v: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.v = self.r * x if self.v is None else self.v + self.r * x
        return self.v

    def reset_mem(self) -> None:
        self.v = None


def fire_at_threshold(x: torch.Tensor) -> torch.Tensor:
    """snnconv's firing rule as an snnTorch spike function: s = [v − θ ≥ 0]."""
    return (x >= 0).to(x.dtype)


def import_into_snntorch(graph: Any, at_threshold: bool = True) -> nn.Module:
    """snnTorch's own NIR node mapping (``snntorch.import_nir``) plus ``nir.I``,
    reconfigured to snnconv's IF semantics where snnTorch allows.

    Args:
        graph: The NIR graph.
        at_threshold: Fire at v ≥ θ like snnconv (snnTorch accepts a custom spike
            function); False keeps snnTorch's (and NIR's) v > θ.
    """
    import nir
    import nirtorch
    import snntorch as snn
    from snntorch.import_nir import _nir_to_snntorch_module

    def own(node: Any) -> nn.Module:
        return _nir_to_snntorch_module(node, init_hidden=True)

    node_map = {
        t: own for t in (nir.Affine, nir.Linear, nir.Conv2d, nir.Flatten, nir.AvgPool2d, nir.IF)
    }
    node_map[nir.I] = lambda node: Integrator(node.r)
    module = nirtorch.nir_to_torch(graph, node_map)
    for sub in module.modules():
        if isinstance(sub, snn.Leaky):
            sub.beta = torch.ones_like(sub.beta)  # IF: no leak (snnTorch maps IF to beta 0.9)
            # snnTorch builds IF's Leaky with init_hidden=False: it then returns (spikes,
            # membrane) and the next layer fails on the tuple. Keep the state inside.
            sub.init_hidden = True
            # reset_delay=True subtracts θ at the step after a spike, before integrating;
            # spike times and counts then follow V ← V + z; s = [V > θ]; V ← V − θ·s.
            # (snnTorch's importer sets False, whose "avoid double reset" needs 2θ to
            # fire again while the membrane is still above θ after a spike.)
            sub.reset_delay = True
            if at_threshold:
                sub.spike_grad = fire_at_threshold
            if sub.reset_mechanism != "subtract":
                sub.reset_mechanism = "subtract"
        elif isinstance(sub, nn.Flatten):  # NIR dims exclude the batch axis
            sub.start_dim = sub.start_dim + 1 if sub.start_dim >= 0 else sub.start_dim
            sub.end_dim = sub.end_dim + 1 if sub.end_dim >= 0 else sub.end_dim
    return module


@torch.no_grad()
def run_snntorch(module: nn.Module, x: torch.Tensor, timesteps: int) -> dict[str, Any]:
    """Simulate ``timesteps`` steps on batch ``x``: final output potential and spike
    counts per IF layer (keyed by NIR node name)."""
    import snntorch as snn

    counts: dict[str, torch.Tensor] = {}
    hooks = []
    for name, sub in module.named_modules():
        if isinstance(sub, (snn.Leaky, Integrator)):
            sub.reset_mem()
        if isinstance(sub, snn.Leaky):
            counts[name] = torch.zeros(())

            def hook(_m: nn.Module, _i: Any, out: Any, key: str = name) -> None:
                spikes = out[0] if isinstance(out, tuple) else out
                counts[key] += spikes.sum()

            hooks.append(sub.register_forward_hook(hook))
    try:
        out: torch.Tensor | None = None
        state = None
        for _ in range(timesteps):
            out, state = module(x, state)
    finally:
        for h in hooks:
            h.remove()
    assert out is not None
    return {"potential": out, "spikes": {k: float(v) for k, v in counts.items()}}


@torch.no_grad()
def run_snnconv(network: Any, x: torch.Tensor, y: torch.Tensor, timesteps: int) -> dict[str, Any]:
    """snnconv's simulator on the same batch: final output potential, spikes per IF layer."""
    from snnconv.sim.simulator import Simulator

    sim = Simulator(network.graph, readout=network.config.readout)
    res = sim.run(x, y, timesteps, record_spikes=True)
    return {
        "potential": res.output,
        "spikes": {k: float(v.sum()) for k, v in res.spikes.items()},
    }


def crosscheck(
    network: Any,
    data: Any,
    timesteps: int,
    batch_size: int = 250,
    strict: bool = True,
    **export: Any,
) -> dict[str, Any]:
    """Export ``network`` to NIR, read it back, run snnconv and snnTorch on ``data``.

    snnTorch runs configured to fire at v ≥ θ like snnconv (``snntorch``) and, if
    ``strict``, also with its own (NIR's) strict v > θ (``snntorch_strict``).
    """
    import nir

    from snnconv.exporters.nir import export_nir

    with tempfile.TemporaryDirectory() as tmp:
        path = export_nir(network, Path(tmp) / "net.nir", **export)
        graph = nir.read(path)
    modules = {"snntorch": import_into_snntorch(graph, at_threshold=True)}
    if strict:
        modules["snntorch_strict"] = import_into_snntorch(graph, at_threshold=False)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    n = ours_correct = 0
    stats = {
        k: {"same": 0, "correct": 0, "max_diff": 0.0, "spikes": {}, "seconds": 0.0} for k in modules
    }
    spikes_ours: dict[str, float] = {}
    t_ours = 0.0
    for x, y in loader:
        start = time.perf_counter()
        a = run_snnconv(network, x, y, timesteps)
        t_ours += time.perf_counter() - start
        pa = a["potential"].argmax(1)
        ours_correct += int((pa == y).sum())
        for k, v in a["spikes"].items():
            spikes_ours[k] = spikes_ours.get(k, 0.0) + v
        for key, module in modules.items():
            start = time.perf_counter()
            b = run_snntorch(module, x, timesteps)
            st = stats[key]
            st["seconds"] += time.perf_counter() - start
            pb = b["potential"].argmax(1)
            st["same"] += int((pa == pb).sum())
            st["correct"] += int((pb == y).sum())
            diff = float((a["potential"] - b["potential"]).abs().max())
            st["max_diff"] = max(st["max_diff"], diff)
            for k, v in b["spikes"].items():
                st["spikes"][k] = st["spikes"].get(k, 0.0) + v
        n += x.shape[0]
    result: dict[str, Any] = {
        "samples": n,
        "timesteps": timesteps,
        "snnconv_top1": ours_correct / n,
        "snnconv_spikes": dict(sorted(spikes_ours.items())),
        "snnconv_seconds": t_ours,
    }
    for key, st in stats.items():
        result[key] = {
            "prediction_agreement": st["same"] / n,
            "top1": st["correct"] / n,
            "max_abs_potential_difference": st["max_diff"],
            "spikes": dict(sorted(st["spikes"].items())),
            "seconds": st["seconds"],
        }
    return result


def predictions(network: Any, data: Any, timesteps: int, batch_size: int = 250) -> torch.Tensor:
    """snnconv's SNN prediction (argmax of the readout after T steps) for every sample."""
    from snnconv.sim.simulator import Simulator

    sim = Simulator(network.graph, readout=network.config.readout)
    out = []
    for x, y in torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False):
        out.append(sim.run(x, y, timesteps, record_spikes=False).output.argmax(1))
    return torch.cat(out)


def onnx_parity(model: nn.Module, calibration: Any, data: Any, timesteps: int, config: Any) -> dict:
    """Convert ``model`` from PyTorch and from its ONNX export (TorchScript exporter);
    compare op sequences, ANN outputs and SNN predictions on ``data``."""
    import snnconv
    from snnconv.importers.onnx import import_onnx
    from snnconv.sim.reference import run_graph

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, 1, 28, 28),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N"}},
            dynamo=False,
            opset_version=17,
        )
        graph = import_onnx(path)
    from_torch = snnconv.convert(model, calibration, config)
    from_onnx = snnconv.convert(graph, calibration, config)
    kinds = [[n.op.kind for n in net.graph.nodes] for net in (from_torch, from_onnx)]
    x = torch.stack([data[i][0] for i in range(min(len(data), 500))])
    ann_diff = float(
        (run_graph(from_torch.graph, x)[0] - run_graph(from_onnx.graph, x)[0]).abs().max()
    )
    labels = torch.tensor([int(data[i][1]) for i in range(len(data))])
    pt, po = predictions(from_torch, data, timesteps), predictions(from_onnx, data, timesteps)
    return {
        "same_op_sequence": kinds[0] == kinds[1],
        "ops": kinds[1],
        "max_abs_normalized_ann_difference": ann_diff,
        "samples": len(data),
        "timesteps": timesteps,
        "snn_top1_pytorch": float((pt == labels).float().mean()),
        "snn_top1_onnx": float((po == labels).float().mean()),
        "prediction_agreement": float((pt == po).float().mean()),
    }


def main(argv: list[str] | None = None) -> int:
    from importlib.metadata import version

    import snnconv
    from common import fashion_mnist, reference_net
    from snnconv.config import Config, MaxPoolMode

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["nir", "onnx"], help="NIR cross-check or ONNX parity")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--timesteps", "-T", type=int, default=64)
    parser.add_argument("--nets", nargs="+", default=["lenet_avg", "lenet_max", "vgg_bn"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or RESULTS.with_name(f"nir_interop_{args.part}.json")

    calibration, test = fashion_mnist()
    subset = torch.utils.data.Subset(test, range(args.samples))
    results: dict[str, Any] = {"nir": version("nir"), "onnx": version("onnx"), "nets": {}}
    if args.part == "nir":
        results["consumer"] = f"snntorch {version('snntorch')} (nirtorch {version('nirtorch')})"
    for name in args.nets:
        model = reference_net(name)
        if args.part == "onnx":  # the default conversion (max-pool gate for lenet_max)
            result = onnx_parity(model, calibration, subset, args.timesteps, Config())
            results["nets"][name] = result
            print(
                f"{name}: same ops {result['same_op_sequence']}, SNN top-1 PyTorch "
                f"{result['snn_top1_pytorch']:.2%} vs ONNX {result['snn_top1_onnx']:.2%}, "
                f"predictions agree on {result['prediction_agreement']:.2%}",
                flush=True,
            )
            continue
        # NIR cannot express the max-pool gate: lenet_max is converted with average pooling.
        config = Config(maxpool=MaxPoolMode.AVERAGE) if name == "lenet_max" else Config()
        network = snnconv.convert(model, calibration, config)
        result = crosscheck(network, subset, args.timesteps)
        results["nets"][name] = result
        print(f"{name}: snnconv top-1 {result['snnconv_top1']:.2%}", flush=True)
        for key in ("snntorch", "snntorch_strict"):
            r = result[key]
            print(
                f"  {key}: predictions agree on {r['prediction_agreement']:.2%} of "
                f"{result['samples']}, top-1 {r['top1']:.2%}, max |Δ potential| "
                f"{r['max_abs_potential_difference']:.3g}",
                flush=True,
            )
            for layer, count in result["snnconv_spikes"].items():
                theirs = r["spikes"].get(layer, float("nan"))
                print(f"    {layer}: snnconv {count:.0f} spikes, {key} {theirs:.0f}", flush=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
