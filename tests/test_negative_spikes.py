"""IF neurons with negative spikes: the net count tracks max(0, integrated input / θ)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import snnconv
from models import tiny_cnn
from snnconv.cli import build_parser
from snnconv.config import Config
from snnconv.errors import ConfigError, UnsupportedOpError
from snnconv.ir import Add, Graph, IFNeuron, Input, Linear, Node, ResetMode
from snnconv.passes import infer_shapes
from snnconv.sim.neurons import IFParams, IFState, if_scan, if_step_signed
from snnconv.sim.simulator import Simulator


def test_step_by_hand() -> None:
    # Two spikes, then inhibition: both are taken back; plain IF keeps them.
    z = torch.tensor([[1.0], [1.0], [-1.5], [-1.5], [0.2]])
    state = IFState(torch.zeros(1), count=torch.zeros(1))
    spikes = if_scan(state, IFParams(1.0, signed=True), z, 5, constant=False)
    assert spikes[:, 0].tolist() == [1.0, 1.0, -1.0, -1.0, 0.0]
    assert state.count is not None and state.count.tolist() == [0.0]
    assert state.v.tolist() == [pytest.approx(-0.8)]
    plain = if_scan(IFState(torch.zeros(1)), IFParams(1.0), z, 5, constant=False)
    assert plain[:, 0].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_no_negative_spike_without_a_positive_count() -> None:
    v, count, spikes = torch.tensor([0.0, 0.5]), torch.tensor([0.0, 1.0]), torch.empty(2)
    if_step_signed(v, torch.tensor([-3.0, -1.5]), 1.0, spikes, count)
    assert spikes.tolist() == [0.0, -1.0]
    assert v.tolist() == [-3.0, 0.0] and count.tolist() == [0.0, 0.0]


@given(
    st.lists(st.integers(-16, 16), min_size=1, max_size=200),  # z = k/16 θ, |z| ≤ θ
    st.sampled_from([0.0, 0.5]),
    st.sampled_from([1.0, 0.25]),
)
def test_invariants_for_any_input_within_threshold(
    ks: list[int], v_init: float, theta: float
) -> None:
    """With |z| ≤ θ: X + V(0) = θ·c + V exactly at every step; c ≥ 0; while c > 0,
    −θ < V < θ, and at c = 0, V < θ. Hence |c − max(0, (X + V(0))/θ)| < 1."""
    z = torch.tensor(ks, dtype=torch.float32).mul(theta / 16).reshape(-1, 1)
    state = IFState(torch.full((1,), v_init * theta), count=torch.zeros(1))
    spikes = if_scan(state, IFParams(theta, signed=True), z, len(ks), constant=False)
    integral = torch.cumsum(z[:, 0].double(), 0) + v_init * theta
    c = torch.cumsum(spikes[:, 0].double(), 0)
    membrane = integral - theta * c  # exact: dyadic values
    assert bool((c >= 0).all())
    assert bool((membrane < theta).all())
    assert bool((membrane[c > 0] > -theta).all())
    assert bool(((c - (integral / theta).clamp(min=0)).abs() < 1).all())
    assert state.count is not None and float(state.count) == float(c[-1])


def transient_graph(negative_spikes: bool) -> Graph:
    """x → IF1; IF1 excites IF3 directly (+1) and inhibits it through IF2 (−2, via a
    0.5 synapse, so IF2 fires every second IF1 spike). The ANN input of IF3 is
    x − 2·(x/2) = 0, but IF1's first spike arrives at IF3 before any inhibition."""
    one = torch.ones(1, 1)
    neuron = IFNeuron(negative_spikes=negative_spikes)
    graph = Graph(
        [
            Node("input", Input((1,))),
            Node("fc1", Linear(one), ("input",)),
            Node("if1", neuron, ("fc1",)),
            Node("excite", Linear(one.clone()), ("if1",)),
            Node("fc2", Linear(0.5 * one), ("if1",)),
            Node("if2", neuron, ("fc2",)),
            Node("inhibit", Linear(-2 * one), ("if2",)),
            Node("sum", Add(), ("excite", "inhibit")),
            Node("if3", neuron, ("sum",)),
            Node("out", Linear(one.clone()), ("if3",)),
        ],
        output="out",
    )
    return infer_shapes(graph)


@pytest.mark.parametrize("chunk", [1, 3])
def test_transient_spike_is_taken_back_in_the_simulator(chunk: int) -> None:
    x, y, steps = torch.tensor([[0.5]]), torch.zeros(1, dtype=torch.long), 400
    # IF1 fires at t = 2, 4, ...; IF2 at t = 4, 8, ...; IF3's input is +1 at t ≡ 2 (mod 4)
    # and −1 at t ≡ 0 (mod 4).
    plain = Simulator(transient_graph(False), chunk=chunk).run(x, y, steps, record_rates=True)
    assert float(plain.totals["if3"].sum()) == 1.0  # the first spike is never undone
    signed = Simulator(transient_graph(True), chunk=chunk).run(x, y, steps, record_rates=True)
    assert float(signed.totals["if3"].sum()) == 0.0  # net count = ANN activation · T
    assert signed.output is not None and float(signed.output[0, 0]) == 0.0
    # Events: +1 at t ≡ 2, −1 at t ≡ 0 (mod 4): each one counted.
    assert float(signed.spikes["if3"].sum()) == steps / 2
    assert signed.spikes["if3"][:8].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]


def test_config_and_conversion() -> None:
    with pytest.raises(ConfigError, match="negative_spikes needs reset='subtract'"):
        Config(negative_spikes=True, reset="zero")
    with pytest.raises(ValueError, match="negative_spikes needs reset by subtraction"):
        IFNeuron(negative_spikes=True, reset=ResetMode.ZERO)
    calibration = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    net = snnconv.convert(tiny_cnn(), calibration, Config(device="cpu", negative_spikes=True))
    neurons = [n.op for n in net.graph.nodes if isinstance(n.op, IFNeuron)]
    assert neurons and all(op.negative_spikes for op in neurons)


def test_saved_round_trip_cli_flag_and_nir_refusal(tmp_path: Path) -> None:
    calibration = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    net = snnconv.convert(tiny_cnn(), calibration, Config(device="cpu", negative_spikes=True))
    loaded = snnconv.load(snnconv.save(net, tmp_path / "net"))
    assert next(n.op for n in loaded.graph.nodes if isinstance(n.op, IFNeuron)).negative_spikes
    assert loaded.config.negative_spikes
    args = build_parser().parse_args(["convert", "m.pt", "--negative-spikes", "--out", "x"])
    assert args.negative_spikes is True
    pytest.importorskip("nir")
    from snnconv.exporters.nir import to_nir

    with pytest.raises(UnsupportedOpError, match="negative_spikes"):
        to_nir(net)
