"""NIR export run in an independent consumer (snnTorch, through nirtorch) against
snnconv's simulator: predictions, output potentials and spike counts per layer.

snnTorch is configured to our semantics where it allows (see
benchmarks/nir_interop.py and docs/interop.md), including our firing rule v ≥ θ.
What remains is float32 rounding order: snnTorch (reset_delay) subtracts θ one
step later, so its running sums round differently and a membrane within an ulp
of θ may fire a step apart (a few spikes in 10⁸ on LeNet). With its own v > θ
(NIR's rule) a membrane landing exactly on θ also fires a step later.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("nir")
pytest.importorskip(
    "snntorch",
    reason="snnTorch (the independent NIR consumer) is not installed: pip install 'snnconv[test]'",
)
pytest.importorskip("nirtorch", reason="nirtorch (snnTorch's NIR importer) is not installed")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import snnconv
from models import tiny_cnn
from nir_interop import crosscheck

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning"
)


def labelled(n: int, seed: int) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.TensorDataset(
        torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)
    )


def test_snntorch_reproduces_our_spikes_on_a_small_cnn() -> None:
    """Conv, avg-pool, batch-norm folded, biases: same spikes and readout in snnTorch."""
    network = snnconv.convert(tiny_cnn(seed=3), labelled(64, 1).tensors[0])
    result = crosscheck(network, labelled(32, 2), timesteps=24, batch_size=32)
    same = result["snntorch"]
    assert same["prediction_agreement"] == 1.0
    assert same["spikes"].keys() == result["snnconv_spikes"].keys()
    for layer, ours in result["snnconv_spikes"].items():
        assert ours > 0
        assert abs(same["spikes"][layer] - ours) <= 1e-5 * ours, layer
    strict = result["snntorch_strict"]
    assert strict["prediction_agreement"] == 1.0
    for layer, ours in result["snnconv_spikes"].items():
        assert abs(strict["spikes"][layer] - ours) <= 1e-3 * ours, layer


@pytest.mark.slow
def test_snntorch_agrees_on_fashion_mnist_lenet() -> None:
    """The shipped Fashion-MNIST LeNet at T = 64: ≥ 99 % identical predictions."""
    from snnconv import zoo
    from snnconv.data import calibration_subset, load_dataset

    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test", limit=100)
    network = snnconv.convert(zoo.load_pretrained_lenet(), calibration_subset(train, 500, seed=0))
    result = crosscheck(network, test, timesteps=64, batch_size=100, strict=False)
    assert result["snntorch"]["prediction_agreement"] >= 0.99
    for layer, ours in result["snnconv_spikes"].items():
        assert abs(result["snntorch"]["spikes"][layer] - ours) <= 1e-5 * ours, layer
