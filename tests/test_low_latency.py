"""Low-latency techniques: each one's defining property, and ``target_timesteps``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import snnconv
from models import tiny_cnn
from snnconv.config import Config
from snnconv.errors import ConfigError, UnsupportedOpError
from snnconv.importers import import_torch
from snnconv.ir import IFNeuron
from snnconv.modes import ResetMode
from snnconv.passes import prepare_ann
from snnconv.passes.current_calibration import CalibrateCurrents, CurrentCalibration
from snnconv.passes.low_latency import CANDIDATES
from snnconv.passes.pipeline import CollectStatistics, build_flow, describe
from snnconv.passes.threshold_search import SEARCH_GRID, SearchThresholds, quantization_error
from snnconv.sim.neurons import IFParams, IFState, if_scan

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


# --- negative spikes with h = 0: the exact quantized ReLU --------------------------------------


@settings(max_examples=200)
@given(
    st.lists(st.integers(-16, 16), min_size=1, max_size=64),  # z = k/16 θ, |z| ≤ θ
    st.sampled_from([0.0, 0.5]),
    st.sampled_from([1.0, 0.5]),
)
def test_zero_margin_counts_are_the_floor_of_the_integrated_input(
    ks: list[int], v_init: float, theta: float
) -> None:
    """After every step, c = max(0, ⌊(X + V(0))/θ⌋) exactly (dyadic inputs)."""
    z = torch.tensor(ks, dtype=torch.float32).mul(theta / 16).reshape(-1, 1)
    state = IFState(torch.full((1,), v_init * theta), count=torch.zeros(1))
    spikes = if_scan(state, IFParams(theta, signed=True, margin=0.0), z, len(ks), constant=False)
    integral = torch.cumsum(z[:, 0].double(), 0) + v_init * theta
    counts = torch.cumsum(spikes[:, 0].double(), 0)
    assert torch.equal(counts, torch.floor(integral / theta).clamp(min=0))


def test_the_default_margin_may_keep_one_spike_too_many() -> None:
    z = torch.tensor([[1.0], [-0.5]])  # X = 0.5: the quantized ReLU is 0 spikes
    for margin, expected in ((1.0, 1.0), (0.0, 0.0)):
        state = IFState(torch.zeros(1), count=torch.zeros(1))
        spikes = if_scan(state, IFParams(1.0, signed=True, margin=margin), z, 2, constant=False)
        assert float(spikes.sum()) == expected


# --- threshold search ---------------------------------------------------------------------------


@given(st.lists(st.floats(0.001, 10.0), min_size=1, max_size=200), st.integers(1, 32))
def test_searched_error_never_exceeds_the_percentiles(values: list[float], steps: int) -> None:
    a = torch.tensor(values, dtype=torch.float64)
    scale = float(a.max())
    search = SearchThresholds(None, steps)
    factor = search.best_factor(a, scale)
    assert factor in SEARCH_GRID
    assert quantization_error(a, factor * scale, steps) <= quantization_error(a, scale, steps)


def test_quantization_error_by_hand() -> None:
    # λ = 1, T = 2: levels 0, 0.5, 1; 0.3 → 0.5 (error 0.04), 0.7 → 0.5 (0.04), 2 → 1 (1)
    values = torch.tensor([0.3, 0.7, 2.0], dtype=torch.float64)
    assert quantization_error(values, 1.0, 2) == pytest.approx((0.04 + 0.04 + 1.0) / 3)


@pytest.fixture(scope="module")
def measured() -> tuple[object, torch.Tensor]:
    """tiny_cnn's graph with its statistics, and its calibration inputs."""
    torch.manual_seed(0)
    x = torch.rand(96, 1, 8, 8)
    graph = prepare_ann(import_torch(tiny_cnn(classes=10).eval(), x[:2]))
    return CollectStatistics(x, 99.9, True, 32)(graph), x


def test_search_replaces_lambda_and_records_the_factor(measured: tuple) -> None:
    graph, x = measured
    searched = SearchThresholds(x, 4)(graph)
    for before, after in zip(graph.nodes, searched.nodes, strict=True):
        if "stats" in before.meta:
            factor = after.meta["threshold_search"]
            assert after.meta["stats"].scale == pytest.approx(factor * before.meta["stats"].scale)


# --- bias and potential calibration -------------------------------------------------------------


def _layer_errors(network: snnconv.SpikingNetwork, x: torch.Tensor, steps: int) -> list[float]:
    """Mean |per-channel mean error| of every IF layer at T steps (the quantity calibrated)."""
    calibrate = CalibrateCurrents(x, steps, samples=len(x))
    layers = [n.name for n in network.graph.nodes if isinstance(n.op, IFNeuron)]
    from snnconv.sim.reference import run_graph

    _, acts = run_graph(network.graph, x, capture=layers)
    return [
        float(calibrate._mean_error(network.graph, x, name, acts[name].clamp(max=1)).abs().mean())
        for name in layers
    ]


@pytest.mark.parametrize("mode", list(CurrentCalibration))
def test_calibration_reduces_each_layers_mean_error(mode: CurrentCalibration) -> None:
    """Each layer's correction, made with the earlier ones in place, shrinks its own mean error.

    The net is feed-forward, so a layer's error in the final network is its error just
    after its own correction; ``meta['current_calibration']`` records it and the error
    just before.
    """
    torch.manual_seed(1)
    x = torch.rand(128, 1, 8, 8)
    network = snnconv.convert(tiny_cnn(classes=10).eval(), x, Config(device="cpu", v_init=0.5))
    graph = CalibrateCurrents(x, 4, mode, samples=len(x))(network.graph)
    after = _layer_errors(snnconv.SpikingNetwork(graph, network.config, network.info), x, 4)
    records = [n.meta["current_calibration"] for n in graph.nodes if isinstance(n.op, IFNeuron)]
    assert records[0]["before"] == pytest.approx(_layer_errors(network, x, 4)[0])
    assert after == pytest.approx([r["after"] for r in records])
    assert all(r["after"] <= r["before"] for r in records)
    assert sum(after) < 0.5 * sum(r["before"] for r in records), (records, after)
    field = "bias_offset" if mode is CurrentCalibration.BIAS else "v_offset"
    assert all(getattr(n.op, field) is not None for n in graph.nodes if isinstance(n.op, IFNeuron))
    # the ANN is unchanged: the corrections act on the spiking network only
    from snnconv.sim.reference import run_graph

    torch.testing.assert_close(run_graph(graph, x)[0], run_graph(network.graph, x)[0])


# --- target_timesteps ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tuned() -> tuple[snnconv.SpikingNetwork, torch.Tensor]:
    torch.manual_seed(2)
    x = torch.rand(200, 1, 8, 8)
    model = tiny_cnn(classes=10).eval()
    return snnconv.convert(model, x, Config(device="cpu", target_timesteps=4)), x


def test_target_timesteps_records_its_choice(tuned: tuple) -> None:
    network, _ = tuned
    record = network.info["low_latency"]
    assert record["target_timesteps"] == 4 and record["seconds"] > 0
    assert record["calibration_samples"] == {"fit": 100, "choose": 100}
    best = max(c["agreement"] for c in record["candidates"])
    chosen = next(c for c in record["candidates"] if c["name"] == record["chosen"])
    assert chosen["agreement"] == best
    for name, value in record["techniques"].items():
        assert network.config.to_dict()[name] == value  # the network carries the choice


def test_explicit_options_win(tuned: tuple) -> None:
    _, x = tuned
    config = Config(
        device="cpu", target_timesteps=4, negative_spikes=False, keep=("negative_spikes",)
    )
    network = snnconv.convert(tiny_cnn(classes=10).eval(), x, config)
    assert network.config.negative_spikes is False
    assert not any(n.op.negative_spikes for n in network.graph.nodes if isinstance(n.op, IFNeuron))
    fixed = Config(device="cpu", target_timesteps=4, threshold_search=False)
    network = snnconv.convert(tiny_cnn(classes=10).eval(), x, fixed)
    assert network.info["low_latency"]["techniques"]["threshold_search"] is False


def test_techniques_need_a_target_and_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="target_timesteps"):
        Config(bias_calibration=True)
    with pytest.raises(ConfigError, match="choose one"):
        Config(target_timesteps=8, bias_calibration=True, potential_calibration=True)
    flow = [describe(p) for p in build_flow(Config(target_timesteps=8))]
    assert flow[-1].startswith("tune_low_latency(timesteps=8, candidates: percentile | ")
    assert flow[-1].count(" | ") == len(CANDIDATES) - 1
    every = ("v_init", "negative_spikes", "negative_threshold")
    explicit = Config(target_timesteps=8, threshold_search=True, bias_calibration=True, keep=every)
    assert describe(build_flow(explicit)[-1]) == (
        "tune_low_latency(timesteps=8, candidates: threshold search + bias calibration + V(0) = 0θ)"
    )
    zero = Config(target_timesteps=8, reset=ResetMode.ZERO)  # no negative spikes with it
    assert "negative spikes" not in describe(build_flow(zero)[-1])


def test_tuned_network_survives_saving_and_nir(tuned: tuple, tmp_path: Path) -> None:
    network, x = tuned
    loaded = snnconv.load(snnconv.save(network, tmp_path / "net"))
    assert loaded.info["low_latency"] == json.loads(json.dumps(network.info["low_latency"]))
    for a, b in zip(network.graph.nodes, loaded.graph.nodes, strict=True):
        for name, tensor in a.op.tensors().items():
            assert torch.equal(tensor, b.op.tensors()[name]), (a.name, name)
    y = torch.zeros(len(x), dtype=torch.long)
    from snnconv.sim.simulator import Simulator

    first = Simulator(network.graph).run(x, y, 4)
    again = Simulator(loaded.graph).run(x, y, 4)
    assert torch.equal(first.output, again.output)


def test_nir_folds_the_bias_calibration_and_refuses_the_potential_one() -> None:
    pytest.importorskip("nir")
    from snnconv.exporters.nir import to_nir

    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.rand(64, 1, 4, 4)
    base = snnconv.convert(model, x, Config(device="cpu"))
    exported = to_nir(base)
    fixed = {"device": "cpu", "target_timesteps": 4, "keep": ("v_init",)}  # NIR: V(0) = 0
    bias = Config(**fixed, bias_calibration=True, threshold_search=False)
    calibrated = snnconv.convert(model, x, bias)
    layer = next(n.op for n in calibrated.graph.nodes if isinstance(n.op, IFNeuron))
    folded = to_nir(calibrated)
    affine = next(k for k, v in folded.nodes.items() if type(v).__name__ == "Affine")
    shift = folded.nodes[affine].bias - exported.nodes[affine].bias
    assert torch.allclose(torch.as_tensor(shift), layer.bias_offset, atol=1e-6)
    potential = Config(**fixed, potential_calibration=True)
    with pytest.raises(UnsupportedOpError, match="potential calibration"):
        to_nir(snnconv.convert(model, x, potential))
