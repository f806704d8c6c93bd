"""The spiking max-pool gate, against its documented rules on hand-made spike trains."""

from __future__ import annotations

import pytest
import torch

from snnconv.ir import MaxPool2d, RateEstimator
from snnconv.sim.maxpool import MaxPoolGate


def gate(estimator: RateEstimator = RateEstimator.COUNT, **kw: object) -> MaxPoolGate:
    op = MaxPool2d(kw.pop("kernel", (1, 2)), kw.pop("stride", (1, 2)), estimator=estimator, **kw)
    return MaxPoolGate(op, (1, 1, 1, 2), torch.device("cpu"))


def run(g: MaxPoolGate, trains: list[tuple[int, int]]) -> list[float]:
    """Feed per-step spikes of the two inputs of one 1×2 window; return the window's output."""
    block = torch.tensor(trains, dtype=torch.float32).reshape(len(trains), 1, 1, 1, 2)
    return g.scan(block).reshape(-1).tolist()


def test_count_estimator_passes_the_spikes_of_the_most_active_input() -> None:
    # input a: spikes at t=1,2,3 ; input b: spikes at t=3,4,5,6
    trains = [(1, 0), (1, 0), (1, 1), (0, 1), (0, 1), (0, 1)]
    # counts after each step (current step included): a 1,2,3,3,3,3 ; b 0,0,1,2,3,4
    # winner: a,a,a,a, tie at t=5 -> a (first in window), b at t=6
    assert run(gate(), trains) == [1, 1, 1, 0, 0, 1]


def test_before_any_spike_the_first_input_is_selected() -> None:
    # nobody has spiked at t=1,2: window selects input a, whose spike (0) passes
    # at t=3 b spikes first: its count includes this step, so b wins and its spike passes
    assert run(gate(), [(0, 0), (0, 0), (0, 1), (0, 0)]) == [0, 0, 1, 0]


def test_current_step_counts_toward_the_estimate() -> None:
    # a single spike of b at t=1 makes b the winner in that very step
    assert run(gate(), [(0, 1)]) == [1]


def test_moving_average_forgets_old_spikes() -> None:
    # a fires early and stops; b fires later. Window of 2 steps.
    trains = [(1, 0), (1, 0), (0, 1), (0, 1), (1, 0)]
    # windowed sums: a 1,2,1,0,1 ; b 0,0,1,2,1 -> winners a,a,a(tie),b,a(tie)
    out = run(gate(RateEstimator.MOVING_AVERAGE, window=2), trains)
    assert out == [1, 1, 0, 1, 1]


def test_exponential_estimator() -> None:
    # e <- 0.5 e + s: a: 1, 0.5, 0.25 ; b: 0, 0, 1 -> winners a, a, b
    out = run(gate(RateEstimator.EXPONENTIAL, decay=0.5), [(1, 0), (0, 0), (0, 1)])
    assert out == [1, 0, 1]


def test_overlapping_windows_and_padding() -> None:
    op = MaxPool2d((1, 3), (1, 1), padding=(0, 1))
    g = MaxPoolGate(op, (1, 1, 1, 3), torch.device("cpu"))
    # inputs x0, x1, x2; x2 spikes every step, x0 at t=1 only
    block = torch.tensor([[1, 0, 1], [0, 0, 1], [0, 0, 1]], dtype=torch.float32)
    out = g.scan(block.reshape(3, 1, 1, 1, 3)).reshape(3, 3)
    # windows: [pad,x0,x1], [x0,x1,x2], [x1,x2,pad]
    # t=1 counts x0=1,x1=0,x2=1 -> w0: x0 (1) ; w1: tie x0/x2 -> x0 (1) ; w2: x2 (1)
    # t=2 counts 1,0,2 -> w0: x0 (0) ; w1: x2 (1) ; w2: x2 (1)
    assert out.tolist() == [[1, 1, 1], [0, 1, 1], [0, 1, 1]]


def test_gate_rate_converges_to_max_rate() -> None:
    torch.manual_seed(0)
    rates = torch.tensor([0.2, 0.7, 0.4, 0.1])
    g = MaxPoolGate(MaxPool2d((2, 2), (2, 2)), (1, 1, 2, 2), torch.device("cpu"))
    steps = 2000
    spikes = (torch.rand(steps, 1, 1, 2, 2) < rates.reshape(1, 1, 1, 2, 2)).float()
    out = g.scan(spikes)
    assert out.mean().item() == pytest.approx(0.7, abs=0.03)


def test_count_gate_is_unbiased_for_alternating_inputs() -> None:
    # a fires on odd steps, b on even steps: both at rate 1/2. Passing the current leader's
    # spike would fire every step (rate 1); selecting on past counts only would never fire.
    trains = [(1, 0), (0, 1)] * 8
    out = run(gate(), trains)
    assert sum(out) == 8
    assert out == [1, 0] * 8


def test_count_gate_output_count_is_the_largest_input_count() -> None:
    torch.manual_seed(1)
    g = MaxPoolGate(MaxPool2d((2, 2), (2, 2)), (2, 3, 4, 4), torch.device("cpu"))
    spikes = (torch.rand(50, 2, 3, 4, 4) < 0.3).float()
    out = g.scan(spikes)
    counts = spikes.cumsum(0)
    lead = torch.nn.functional.max_pool2d(counts.reshape(-1, 4, 4), 2).reshape(50, 2, 3, 2, 2)
    assert torch.equal(out.cumsum(0), lead)
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_window_max_is_max_pool2d_exactly() -> None:
    """The strided-slice maximum the gate and the ANN use gives max_pool2d's values and
    shapes for every kernel, stride, padding, dilation and ceil mode, odd sizes included,
    and PyTorch's own error where the sizes do not fit."""
    import itertools

    import torch.nn.functional as F

    from snnconv.ir.ops import window_max

    generator = torch.Generator().manual_seed(0)
    checked = 0
    cases = itertools.product(
        [(1, 1), (2, 2), (3, 3), (2, 3), (4, 4), (5, 5)],  # 5×5: max_pool2d itself
        [(1, 1), (2, 2), (3, 3), (1, 2)],
        [(0, 0), (1, 1), (1, 0)],
        [(1, 1), (2, 2)],
        [False, True],
        [(7, 9), (8, 8), (3, 3), (1, 4)],
    )
    for kernel, stride, padding, dilation, ceil, (h, w) in cases:
        if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
            continue
        x = torch.randn(2, 3, h, w, generator=generator)
        x[0, 0, 0, 0] = -torch.inf
        args = (kernel, stride, padding, dilation, ceil)
        try:
            expected = F.max_pool2d(x, *args)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                window_max(x, *args)
            continue
        got = window_max(x, *args)
        assert got.shape == expected.shape and torch.equal(got, expected), args
        assert torch.equal(window_max(x[0], *args), F.max_pool2d(x[0], *args)), args  # [C, H, W]
        checked += 1
    assert checked > 500
