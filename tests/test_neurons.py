"""Integrate-and-fire theory, exactly: spike counts are floors of T·x (steps and Simulator)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from snnconv.ir import Graph, IFNeuron, Input, Linear, Node, ResetMode
from snnconv.passes import infer_shapes
from snnconv.sim.neurons import IFParams, IFState, if_scan, if_step_subtract, if_step_zero
from snnconv.sim.simulator import Simulator

T_MAX = 1024


def count(x: float, steps: int, reset: ResetMode, threshold: float = 1.0, v0: float = 0.0) -> int:
    """Spikes of one IF neuron driven by the constant current ``x`` for ``steps`` steps."""
    state = IFState(torch.full((1,), v0 * threshold))
    spikes = if_scan(state, IFParams(threshold, reset), torch.tensor([x]), steps, constant=True)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    return int(spikes.sum())


dyadic = st.integers(0, 10).flatmap(
    lambda m: st.tuples(st.integers(0, 2**m), st.just(m))  # x = k / 2^m in [0, 1]
)


# -- step functions on hand-computed values ------------------------------------
def test_step_subtract_by_hand() -> None:
    v = torch.tensor([0.5, 0.75, 1.0])
    spikes = torch.empty(3)
    if_step_subtract(v, torch.tensor([0.75, 0.125, -0.5]), 1.0, spikes)
    assert spikes.tolist() == [1.0, 0.0, 0.0]
    assert v.tolist() == [0.25, 0.875, 0.5]
    if_step_subtract(v, torch.tensor([2.0, 0.125, 0.5]), 1.0, spikes)
    assert spikes.tolist() == [1.0, 1.0, 1.0]  # V ≥ θ is inclusive; one spike per step at most
    assert v.tolist() == [1.25, 0.0, 0.0]


def test_step_zero_by_hand() -> None:
    v = torch.tensor([0.5, 0.75])
    spikes = torch.empty(2)
    if_step_zero(v, torch.tensor([0.75, 0.125]), 1.0, spikes)
    assert spikes.tolist() == [1.0, 0.0]
    assert v.tolist() == [0.0, 0.875]  # the surplus 0.25 is discarded


def test_threshold_scales_the_comparison_and_the_reset() -> None:
    v = torch.tensor([1.5, 2.5])
    spikes = torch.empty(2)
    if_step_subtract(v, torch.tensor([0.25, 0.25]), 2.0, spikes)
    assert spikes.tolist() == [0.0, 1.0]
    assert v.tolist() == [1.75, 0.75]


def test_if_scan_with_time_varying_input() -> None:
    z = torch.tensor([[0.75], [0.75], [-0.5], [1.0]])
    state = IFState(torch.zeros(1))
    spikes = if_scan(state, IFParams(1.0), z, 4, constant=False)
    # V: 0.75 → 1.5 (spike) → 0.5 → 0.0 → 1.0 (spike) → 0.0
    assert spikes.reshape(-1).tolist() == [0.0, 1.0, 0.0, 1.0]
    assert state.v.tolist() == [0.0]
    # held steps count from step 0: a scan from step 2 with 3 held steps holds its first
    # step (z = 0.75 ignored), then V: 0.75 → 0.25 → 1.25 (spike) → 0.25
    held = IFState(torch.zeros(1))
    spikes = if_scan(held, IFParams(1.0, held=3), z, 4, constant=False, start=2)
    assert spikes.reshape(-1).tolist() == [0.0, 0.0, 0.0, 1.0]
    assert held.v.tolist() == [0.25]


# -- exact theory (properties) ----------------------------------------------------
@given(km=dyadic, steps=st.integers(1, T_MAX))
@example(km=(1023, 10), steps=T_MAX)
@example(km=(1, 10), steps=T_MAX - 1)
@example(km=(1, 0), steps=T_MAX)
@example(km=(0, 3), steps=T_MAX)
def test_subtract_count_is_floor_for_dyadic_input(km: tuple[int, int], steps: int) -> None:
    k, m = km
    x = k / 2**m
    assert count(x, steps, ResetMode.SUBTRACT) == (steps * k) // 2**m


@given(km=dyadic, steps=st.integers(1, T_MAX))
def test_half_threshold_start_rounds_to_nearest(km: tuple[int, int], steps: int) -> None:
    # V(0) = θ/2: the count is ⌊T·x + 1/2⌋, within half a spike of T·x.
    k, m = km
    n = count(k / 2**m, steps, ResetMode.SUBTRACT, v0=0.5)
    assert n == math.floor(steps * k / 2**m + 0.5)


@given(km=dyadic, steps=st.integers(1, T_MAX), log_theta=st.integers(-2, 2))
def test_count_scales_with_threshold(km: tuple[int, int], steps: int, log_theta: int) -> None:
    # ⌊T·x/θ⌋ for x = k/2^m ≤ θ (x scaled into [0, θ]).
    k, m = km
    theta = 2.0**log_theta
    x = k / 2**m * theta
    assert count(x, steps, ResetMode.SUBTRACT, threshold=theta) == (steps * k) // 2**m


@given(x=st.floats(0.0, 1.0), steps=st.integers(1, T_MAX))
@example(x=0.1, steps=T_MAX)
@example(x=1 / 3, steps=T_MAX)
@example(x=0.999999, steps=T_MAX)
def test_subtract_count_within_one_spike_of_t_x(x: float, steps: int) -> None:
    x32 = float(torch.tensor(x, dtype=torch.float32))  # the current the neuron actually gets
    n = count(x32, steps, ResetMode.SUBTRACT)
    assert abs(n - steps * x32) <= 1.0


@given(km=dyadic, steps=st.integers(1, T_MAX))
@example(km=(3, 10), steps=T_MAX)
@example(km=(683, 10), steps=T_MAX)
def test_reset_to_zero_never_exceeds_the_floor(km: tuple[int, int], steps: int) -> None:
    k, m = km
    x = k / 2**m
    n_zero = count(x, steps, ResetMode.ZERO)
    assert n_zero <= (steps * k) // 2**m
    if k:  # period ⌈1/x⌉ steps: the count is ⌊T / ⌈1/x⌉⌋ exactly
        assert n_zero == steps // math.ceil(2**m / k)


@given(x=st.floats(0.0, 1.0), steps=st.integers(1, T_MAX))
@example(x=0.1, steps=T_MAX)
@example(x=1 / 3, steps=T_MAX)
def test_reset_to_zero_any_input(x: float, steps: int) -> None:
    x32 = float(torch.tensor(x, dtype=torch.float32))
    assert count(x32, steps, ResetMode.ZERO) <= math.floor(steps * x32)


# -- the same theory through the Simulator ------------------------------------------
def single_neuron(reset: ResetMode = ResetMode.SUBTRACT, v_init: float = 0.0) -> Graph:
    """input x → Linear(identity) → IF → Linear(identity): the readout is the spike count."""
    one = torch.ones(1, 1)
    graph = Graph(
        [
            Node("input", Input((1,))),
            Node("fc", Linear(one), ("input",)),
            Node("if", IFNeuron(reset=reset, v_init=v_init), ("fc",)),
            Node("out", Linear(one.clone()), ("if",)),
        ],
        output="out",
    )
    return infer_shapes(graph)


def simulate(graph: Graph, x: torch.Tensor, steps: int, chunk: int = 1) -> torch.Tensor:
    """Per-sample spike counts of the single neuron after ``steps`` steps."""
    sim = Simulator(graph, device="cpu", chunk=chunk)
    res = sim.run(x.reshape(-1, 1), torch.zeros(x.numel(), dtype=torch.long), steps)
    assert res.output is not None
    assert float(res.spikes["if"].sum()) == float(res.output.sum())
    return res.output[:, 0]


@pytest.mark.parametrize("chunk", [1, 7])
@pytest.mark.parametrize("steps", [1, 100, 1024])
def test_simulator_counts_are_floors(steps: int, chunk: int) -> None:
    k = torch.arange(0, 1025)
    x = k / 1024.0
    counts = simulate(single_neuron(), x, steps, chunk)
    assert torch.equal(counts, ((steps * k) // 1024).float())


@pytest.mark.parametrize("steps", [10, 333])
def test_simulator_reset_to_zero_and_half_start(steps: int) -> None:
    k = torch.arange(1, 257)
    x = k / 256.0
    zero = simulate(single_neuron(ResetMode.ZERO), x, steps)
    period = torch.ceil(256.0 / k)
    assert torch.equal(zero, torch.floor(steps / period))
    assert bool((zero <= (steps * k) // 256).all())
    half = simulate(single_neuron(v_init=0.5), x, steps)
    assert torch.equal(half, torch.floor(steps * x + 0.5))


def test_simulator_rate_is_relu_clipped_to_one() -> None:
    x = torch.tensor([-3.0, -0.5, -1e-6, 0.0, 1.0, 1.5, 7.0])
    steps = 64
    counts = simulate(single_neuron(), x, steps, chunk=5)
    assert counts.tolist() == [0, 0, 0, 0, steps, steps, steps]  # ReLU(z), saturating at 1/step
