"""The architectures users bring (VGG, ResNet, GoogLeNet, Inception-v3) convert exactly and run."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

import snnconv
from snnconv import architectures as arch
from snnconv.sim.reference import run_graph

CASES = [
    pytest.param("resnet18", arch.resnet18, 32, id="resnet18"),
    pytest.param("resnet20", arch.resnet20_cifar, 32, id="resnet20"),
    pytest.param("googlenet", arch.googlenet, 32, id="googlenet"),
    pytest.param("inception_v3", arch.inception_v3, 75, id="inception_v3"),
    pytest.param("vgg16_bn", arch.vgg16_bn, 32, id="vgg16_bn", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "factory", "size"), CASES)
def test_architecture_converts_exactly_and_simulates(name, factory, size) -> None:
    torch.manual_seed(0)
    model = factory(num_classes=10).eval()
    x = torch.rand(8, 3, size, size)
    arch.recalibrate_batchnorm(model, x)
    config = snnconv.Config(device="cpu", batch_size=8)
    snn = snnconv.convert(model, x, config)
    kinds = {n.op.kind for n in snn.graph.nodes}
    if name.startswith("resnet"):
        assert {"Add", "Scale"} <= kinds
    if name in ("googlenet", "inception_v3"):
        assert "Concat" in kinds
    with torch.no_grad():
        expected = model(x)
    # Folding and normalization are exact in real arithmetic; in float32 the error of a deep
    # net is of the order of float32's own (Inception-v3's fp32 output differs from its fp64
    # output by 2e-4 of the output range), so the tolerance is relative to that range.
    atol = 1e-3 * float(expected.abs().max())
    torch.testing.assert_close(run_graph(snn.graph, x)[0], expected, rtol=0, atol=atol)
    result = snnconv.evaluate(snn, TensorDataset(x, expected.argmax(1)), 4, config)
    assert result.ann_top1 == 1.0
    assert len(result.snn_top1) == 4
    # every spiking layer is listed with its neurons and its spikes per sample and step
    assert [layer["name"] for layer in result.layers] == snn.spiking_layers
    for layer in result.layers:
        spikes = sum(result.spikes_per_step[layer["name"]])
        assert layer["mean_rate"] == pytest.approx(spikes / (layer["neurons"] * 4), rel=1e-12)


#: The settings for deep nets: max-norm (no clipping at λ), V(0) = θ/2, negative spikes.
DEEP = {"percentile": 100.0, "v_init": 0.5, "negative_spikes": True}


@pytest.mark.parametrize(
    ("name", "options"),
    [
        pytest.param("resnet20", {}, id="resnet20-defaults"),
        pytest.param("googlenet", DEEP, id="googlenet-deep-settings"),
    ],
)
def test_fidelity_without_trained_weights(name: str, options: dict) -> None:
    """Random weights, batch-norm statistics from real images: at T = 512 every layer's rates
    follow the normalized ANN (correlation ≥ 0.9, and within 0.02 of what an ideal 512-step
    rate code scores) and the SNN's top-1 equals the ANN's above the median margin."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from fidelity import fidelity

    report = fidelity(name, timesteps=512, images=16, calibration=200, options=options)
    assert report["min_correlation"] >= 0.9, report["layers"]
    for layer in report["layers"]:
        assert layer["correlation"] >= layer["ideal_code_correlation"] - 0.02, layer
    assert report["agreement_above_median_margin"] == 1.0
