"""Per-layer diagnostics: correlation, silent and saturated fractions, exact on theory cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import snnconv
from snnconv.metrics.diagnostics import LayerDiagnostics


def test_streaming_statistics_match_direct_computation() -> None:
    torch.manual_seed(0)
    a, r = torch.rand(1000), torch.rand(1000)
    r[:100] = 0
    r[100:150] = 1
    d = LayerDiagnostics()
    for chunk in range(0, 1000, 300):
        d.update(a[chunk : chunk + 300], r[chunk : chunk + 300])
    assert d.correlation == pytest.approx(float(torch.corrcoef(torch.stack([a, r]))[0, 1]))
    assert d.silent_fraction == pytest.approx(0.1)
    assert d.saturated_fraction == pytest.approx(0.05)


def test_rates_of_a_dyadic_layer_match_the_ann_exactly() -> None:
    # one IF layer driven by constant currents k/8: rate = floor(T·k/8)/T = k/8 for T = 64
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 2)).eval()
    model[0].weight.data = torch.eye(4)
    x = torch.tensor([[0.125, 0.5, 1.0, 0.0], [0.25, 0.75, 0.375, 0.625]])
    config = snnconv.Config(device="cpu", percentile=100)
    snn = snnconv.convert(model, x, config)
    result = snnconv.evaluate(
        snn, TensorDataset(x, torch.zeros(2, dtype=torch.long)), 64, diagnostics=True
    )
    (layer,) = result.layers
    assert layer["correlation"] == pytest.approx(1.0, abs=1e-12)
    assert layer["silent_fraction"] == pytest.approx(1 / 8)  # the single zero input
    assert layer["saturated_fraction"] == pytest.approx(1 / 8)  # the single λ-valued input
    assert layer["mean_rate"] == pytest.approx(float(x.mean()))


@pytest.mark.slow
def test_every_layer_of_the_trained_lenet_correlates_above_0_95_at_t512() -> None:
    from snnconv import zoo
    from snnconv.data import calibration_subset, load_dataset

    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test", limit=200)
    config = snnconv.Config(device="cpu")
    snn = snnconv.convert(
        zoo.load_pretrained_lenet(), calibration_subset(train, 500, seed=0), config
    )
    result = snnconv.evaluate(snn, test, 512, diagnostics=True)
    correlations = {layer["name"]: layer["correlation"] for layer in result.layers}
    assert len(correlations) == 3
    assert all(c >= 0.95 for c in correlations.values()), correlations
    # rates of a converged net: few silent-by-error or saturated neurons
    for layer in result.layers:
        assert layer["saturated_fraction"] < 0.01
        assert 0 < layer["mean_rate"] < 0.5
