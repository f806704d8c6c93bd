"""The time-chunked simulator: chunk-invariant, equal to a naive step loop, seeded Poisson input."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
import torch

import snnconv
from models import tiny_cnn
from snnconv import ConfigError, ShapeError
from snnconv.ir import (
    Add,
    Concat,
    Conv2d,
    Graph,
    IFNeuron,
    Input,
    InputEncoding,
    Linear,
    Node,
    ResetMode,
    Reshape,
)
from snnconv.passes import infer_shapes
from snnconv.sim import simulator
from snnconv.sim.simulator import BatchResult, Simulator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

CLASSES = 10


@pytest.fixture(scope="module")
def network() -> tuple[snnconv.SpikingNetwork, torch.Tensor, torch.Tensor]:
    """A converted tiny CNN, its inputs and the ANN's labels (so accuracy varies over time)."""
    torch.manual_seed(0)
    model = tiny_cnn(classes=CLASSES).eval()
    x = torch.rand(24, 1, 8, 8)
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu", percentile=99.0))
    with torch.no_grad():
        y = model(x).argmax(1)
    return snn, x, y


def naive_run(
    graph: Graph, x: torch.Tensor, y: torch.Tensor, steps: int, classes: int = CLASSES
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """One step at a time, every layer recomputed every step: the definition of the dynamics."""
    correct, spikes, potential, _ = naive_run_top5(graph, x, y, steps, classes)
    return correct, spikes, potential


def naive_run_top5(
    graph: Graph, x: torch.Tensor, y: torch.Tensor, steps: int, classes: int = CLASSES
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """:func:`naive_run`, also counting top-5 hits directly (any op arity: adds, concats)."""
    membranes: dict[str, torch.Tensor] = {}
    spikes = {n.name: torch.zeros(steps) for n in graph.nodes if isinstance(n.op, IFNeuron)}
    potential = torch.zeros(x.shape[0], classes)
    correct = torch.zeros(steps, dtype=torch.int64)
    correct5 = torch.zeros(steps, dtype=torch.int64)
    for t in range(steps):
        values = {graph.input.name: x}
        for node in graph.nodes[1:]:
            z = values[node.inputs[0]]
            op = node.op
            if isinstance(op, IFNeuron):
                v = membranes.setdefault(node.name, torch.full_like(z, op.v_init * op.threshold))
                v += z
                s = (v >= op.threshold).float()
                if op.reset is ResetMode.SUBTRACT:
                    v -= op.threshold * s
                else:
                    v *= 1 - s
                spikes[node.name][t] = s.sum()
                values[node.name] = s
            else:
                values[node.name] = op.apply(*(values[i] for i in node.inputs))
        potential = potential + values[graph.output]
        correct[t] = (potential.argmax(1) == y).sum()
        ranked = potential.argsort(1, descending=True)[:, :5]
        correct5[t] = (ranked == y[:, None]).any(1).sum()
    return correct, spikes, potential, correct5


def assert_same_result(a: BatchResult, b: BatchResult) -> None:
    assert torch.equal(a.correct_top1, b.correct_top1)
    assert torch.equal(a.correct_top5, b.correct_top5)
    assert a.spikes.keys() == b.spikes.keys()
    for name in a.spikes:
        assert torch.equal(a.spikes[name], b.spikes[name]), name
    assert torch.equal(a.output, b.output)


@pytest.mark.parametrize("reset", [ResetMode.SUBTRACT, ResetMode.ZERO])
def test_simulator_equals_naive_step_loop(network: tuple, reset: ResetMode) -> None:
    snn, x, y = network
    graph = snn.graph
    if reset is ResetMode.ZERO:
        nodes = [
            Node(n.name, IFNeuron(reset=reset, v_init=0.5), n.inputs, n.meta)
            if isinstance(n.op, IFNeuron)
            else n
            for n in graph.nodes
        ]
        graph = graph.replace_nodes(nodes)
    steps = 13
    correct, spikes, potential = naive_run(graph, x, y, steps)
    res = Simulator(graph, device="cpu", chunk=4).run(x, y, steps)
    assert torch.equal(res.correct_top1, correct)
    for name, counts in spikes.items():
        assert torch.equal(res.spikes[name], counts), name
    torch.testing.assert_close(res.output, potential, rtol=1e-6, atol=1e-5)
    assert res.correct_top1.min() < res.correct_top1.max() or steps == 1  # time matters
    assert bool((res.correct_top5 >= res.correct_top1).all())


def _with_neurons(graph: Graph, **fields: object) -> Graph:
    return graph.replace_nodes(
        [
            Node(n.name, dataclasses.replace(n.op, **fields), n.inputs, n.meta)
            if isinstance(n.op, IFNeuron)
            else n
            for n in graph.nodes
        ]
    )


@pytest.mark.parametrize("chunk", [1, 4])
def test_threshold_and_initial_potential_other_than_one(network: tuple, chunk: int) -> None:
    """θ = 0.7 and V(0) = θ/2 (not 1/2): step for step as the naive loop defines them."""
    snn, x, y = network
    graph = _with_neurons(snn.graph, threshold=0.7, v_init=0.5)
    correct, spikes, potential, correct5 = naive_run_top5(graph, x, y, 11)
    res = Simulator(graph, device="cpu", chunk=chunk).run(x, y, 11)
    assert torch.equal(res.correct_top1, correct)
    assert torch.equal(res.correct_top5, correct5)
    for name, counts in spikes.items():
        assert torch.equal(res.spikes[name], counts), name
    torch.testing.assert_close(res.output, potential, rtol=1e-6, atol=1e-5)


def test_top5_counts_the_five_highest_classes(network: tuple) -> None:
    """Against a top-5 computed directly from the potential, where top-5 exceeds top-1."""
    snn, x, y = network
    shifted = (y + 3) % CLASSES  # labels the net mostly ranks 2nd to 10th
    correct, _, _, correct5 = naive_run_top5(snn.graph, x, shifted, 9)
    res = Simulator(snn.graph, device="cpu", chunk=3).run(x, shifted, 9)
    assert torch.equal(res.correct_top5, correct5)
    assert torch.equal(res.correct_top1, correct)
    assert bool((correct5 > correct).any())  # the case where the two differ


@pytest.mark.parametrize("chunk", [1, 3])
def test_static_input_branch_meets_the_spiking_path(chunk: int) -> None:
    """A conv of the analog input (computed once) added to a spiking branch, and the input
    concatenated into the spiking path: the simulator's static-node rule against the loop."""
    torch.manual_seed(1)
    g = infer_shapes(
        Graph(
            [
                Node("x", Input((2, 6, 6))),
                Node("a", Conv2d(torch.rand(3, 2, 3, 3) / 4, padding=1), ("x",)),
                Node("s1", IFNeuron(threshold=0.9, v_init=0.3), ("a",)),
                Node("c", Conv2d(torch.randn(3, 3, 3, 3) / 3, padding=1), ("s1",)),
                Node("b", Conv2d(torch.randn(3, 2, 1, 1) / 3), ("x",)),  # static
                Node("add", Add(), ("c", "b")),
                Node("s2", IFNeuron(), ("add",)),
                Node("cat", Concat(1), ("s2", "x")),  # the input joins the spiking path
                Node("s3", IFNeuron(threshold=0.8), ("cat",)),
                Node("flat", Reshape((5 * 36,)), ("s3",)),
                Node("fc", Linear(torch.randn(CLASSES, 5 * 36) / 8), ("flat",)),
            ],
            output="fc",
        )
    )
    x = torch.rand(16, 2, 6, 6)
    y = torch.randint(0, CLASSES, (16,))
    correct, spikes, potential, correct5 = naive_run_top5(g, x, y, 12)
    res = Simulator(g, device="cpu", chunk=chunk).run(x, y, 12)
    assert all(float(counts.sum()) > 0 for counts in spikes.values())  # every layer fires
    for name, counts in spikes.items():
        assert torch.equal(res.spikes[name], counts), name
    torch.testing.assert_close(res.output, potential, rtol=1e-5, atol=1e-5)
    assert torch.equal(res.correct_top1, correct) and torch.equal(res.correct_top5, correct5)


@pytest.mark.parametrize("encoding", [InputEncoding.ANALOG, InputEncoding.POISSON])
@pytest.mark.parametrize("steps", [1, 20])
def test_results_identical_for_every_chunk_size(
    network: tuple, encoding: InputEncoding, steps: int
) -> None:
    snn, x, y = network
    results = {
        chunk: Simulator(snn.graph, device="cpu", chunk=chunk, input_encoding=encoding).run(
            x, y, steps
        )
        for chunk in (1, 3, 8, 64)  # 20 is not divisible by 3 or 8; 64 > T
    }
    for chunk in (3, 8, 64):
        assert_same_result(results[1], results[chunk])
    assert results[1].correct_top1.shape == (steps,)
    assert sum(float(s.sum()) for s in results[1].spikes.values()) > 0


def test_analog_first_layer_is_static_and_computed_once(
    network: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    snn, x, y = network
    sim = Simulator(snn.graph, device="cpu", chunk=5)
    convs = [n.name for n in snn.graph.nodes if isinstance(n.op, Conv2d)]
    assert sim.static == {snn.graph.input.name, convs[0]}
    calls: list[int] = []
    original = Conv2d.apply

    def counting_apply(self: Conv2d, *inputs: torch.Tensor) -> torch.Tensor:
        calls.append(inputs[0].shape[0])
        return original(self, *inputs)

    monkeypatch.setattr(Conv2d, "apply", counting_apply)
    sim.run(x[:4], y[:4], 12)
    # First conv once on the batch of 4; the second once per chunk of 5, 5 and 2 steps.
    assert calls == [4, 20, 20, 8]


def test_poisson_input_has_no_static_layers(network: tuple) -> None:
    snn, _, _ = network
    assert Simulator(snn.graph, device="cpu", input_encoding=InputEncoding.POISSON).static == set()


def pixel_graph(n: int) -> Graph:
    """input → identity Linear: the readout is the sum of the input spikes per pixel."""
    return infer_shapes(
        Graph(
            [Node("input", Input((n,))), Node("out", Linear(torch.eye(n)), ("input",))],
            output="out",
        )
    )


def test_poisson_rate_converges_to_pixel_value() -> None:
    pixels = torch.tensor([[0.0, 0.05, 0.3, 0.5, 0.9, 1.0, 1.7, -0.4]])
    steps = 4000
    sim = Simulator(pixel_graph(8), device="cpu", chunk=250, input_encoding="poisson", seed=3)
    res = sim.run(pixels, torch.zeros(1, dtype=torch.long), steps)
    rate = res.output[0] / steps
    expected = pixels[0].clamp(-1, 1)
    sigma = (expected.abs() * (1 - expected.abs()) / steps).sqrt()
    assert bool(((rate - expected).abs() <= 5 * sigma + 1e-12).all()), (rate, expected)
    assert rate[0] == 0 and rate[5] == 1 and rate[6] == 1  # p = 0 and p ≥ 1 are exact
    assert rate[7] < 0  # negative pixels send negative spikes


def test_poisson_input_is_seeded(network: tuple) -> None:
    snn, x, y = network

    def run(seed: int) -> BatchResult:
        sim = Simulator(snn.graph, device="cpu", chunk=4, input_encoding="poisson", seed=seed)
        return sim.run(x, y, 10)

    assert_same_result(run(5), run(5))
    a, b = run(5), run(6)
    assert not torch.equal(a.output, b.output)
    analog = Simulator(snn.graph, device="cpu", chunk=4).run(x, y, 10)
    assert not torch.equal(a.output, analog.output)


def test_record_spikes_off_gives_the_same_accuracy(network: tuple) -> None:
    snn, x, y = network
    sim = Simulator(snn.graph, device="cpu", chunk=3)
    with_spikes = sim.run(x, y, 7)
    without = sim.run(x, y, 7, record_spikes=False)
    assert without.spikes == {}
    assert torch.equal(with_spikes.correct_top1, without.correct_top1)
    assert torch.equal(with_spikes.output, without.output)


def test_invalid_runs_are_refused(network: tuple) -> None:
    snn, x, y = network
    with pytest.raises(ConfigError, match="chunk"):
        Simulator(snn.graph, device="cpu", chunk=0)
    sim = Simulator(snn.graph, device="cpu")
    with pytest.raises(ConfigError, match="timesteps"):
        sim.run(x, y, 0)
    with pytest.raises(ShapeError, match=r"\[N, 1, 8, 8\]"):
        sim.run(torch.rand(2, 3, 8, 8), y[:2], 5)


FAULTS_SCRIPT = """
import resource, torch
from snnconv.sim.simulator import keep_freed_memory
tuned = keep_freed_memory()
def step():  # like a simulation step: several multi-MiB tensors, all freed at its end
    blocks = [torch.ones(3 << 20) for _ in range(4)]
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(tuned, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_freed_tensors_are_reused_without_page_faults() -> None:
    """After :func:`keep_freed_memory` (which every CPU simulator calls), freeing 48 MiB of
    tensors and allocating them again touches no new page. With glibc's defaults the heap
    is trimmed and grown again: about 12,000 page faults per such step here."""
    env = {k: v for k, v in os.environ.items() if k != "SNNCONV_MALLOC_DEFAULTS"}
    done = subprocess.run(
        [sys.executable, "-c", FAULTS_SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    tuned, faults = done.stdout.split()
    assert tuned == "True"
    assert float(faults) < 100, f"{faults} page faults per step"


def test_cpu_simulator_tunes_malloc(network: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating a CPU simulator sets the thresholds (read before anything else could)."""
    snn, _, _ = network
    monkeypatch.setattr(simulator, "_malloc_tuned", None)
    Simulator(snn.graph, device="cpu")
    opted_out = os.environ.get("SNNCONV_MALLOC_DEFAULTS") == "1"
    assert simulator._malloc_tuned is (sys.platform.startswith("linux") and not opted_out)
