"""The paper's full operation set: max-pool, concat, add, bounded ReLU, global pooling,
softmax outputs, readouts and the membrane clamp — converted exactly, simulated sensibly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import snnconv
from snnconv.ir import Add, Concat, IFNeuron, MaxPool2d, Readout, Scale
from snnconv.sim.reference import run_graph
from snnconv.sim.simulator import Simulator


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.b1(self.c1(x)))
        out = self.b2(self.c2(out))
        out += x
        return F.relu(out)


class Inception(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, 4, 1)
        self.b = nn.Conv2d(c, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.a(x)), F.relu6(self.b(x)), self.pool(x)], 1)


class Mixed(nn.Module):
    """Max-pool, a residual add, an Inception-style concat, ReLU6, GAP, log-softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.block = Residual(8)
        self.inception = Inception(8)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.stem(x)))
        x = self.inception(self.block(x))
        return F.log_softmax(self.fc(x.mean((2, 3))), dim=1)


@pytest.fixture(scope="module")
def mixed() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = Mixed().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return model, torch.rand(64, 1, 12, 12)


def test_normalized_network_computes_the_same_function(mixed) -> None:
    model, x = mixed
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"))
    kinds = [n.op.kind for n in snn.graph.nodes]
    assert {"MaxPool2d", "Add", "Concat", "Scale"} <= set(kinds)
    assert "Softmax" not in kinds  # stripped at the output, recorded in meta
    assert snn.graph.output_node.meta["output_activation"] == "log_softmax"
    out, _ = run_graph(snn.graph, x)
    with torch.no_grad():
        logits = model.fc(
            model.inception(model.block(model.pool(F.relu(model.stem(x))))).mean((2, 3))
        )
    torch.testing.assert_close(out, logits, rtol=1e-4, atol=1e-5)


def test_add_inputs_share_the_scale_of_the_following_layer(mixed) -> None:
    model, x = mixed
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"))
    g = snn.graph
    add = next(n for n in g.nodes if isinstance(n.op, Add))
    relu_after = g.users(add.name)[0]
    lam = snn.info["stats"][relu_after.name]["scale"]
    # the conv branch was normalized to λ of the ReLU after the add; the identity branch
    # (spikes of the stem's layer, scale λ_stem) enters through a fixed Scale λ_stem/λ
    scale_node = next(n for n in g.nodes if isinstance(n.op, Scale))
    lam_stem = snn.info["stats"]["relu"]["scale"]
    assert float(scale_node.op.factor) == pytest.approx(lam_stem / lam, rel=1e-6)
    assert add.meta["scale"] == pytest.approx(lam)


def test_concat_keeps_each_block_scale(mixed) -> None:
    model, x = mixed
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"))
    cat = next(n for n in snn.graph.nodes if isinstance(n.op, Concat))
    # the scale recorded is the largest of the blocks' λ (bounded by 6 for ReLU6)
    stats = snn.info["stats"]
    lam_relu6 = min(stats["relu6"]["scale"], 6.0)
    expected = max(stats["relu_3"]["scale"], lam_relu6, stats["relu_2"]["scale"])
    assert cat.meta["scale"] == pytest.approx(expected)


def test_bounded_relu_saturation_is_the_bound() -> None:
    # clamp(0, c) with λ ≥ c: the IF neuron's one spike per step is exactly the bound
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU6(), nn.Linear(6, 3)).eval()
    model[0].weight.data *= 20  # activations far above 6
    x = torch.rand(200, 4)
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"))
    neuron = next(n for n in snn.graph.nodes if isinstance(n.op, IFNeuron))
    assert neuron.op.max_value == pytest.approx(1.0)  # normalized bound: λ = 6
    out, _ = run_graph(snn.graph, x)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-4)


def test_readouts_rank_correctly_when_all_output_currents_are_negative() -> None:
    # output = -10 + (small positive, class-dependent) for every class: all currents negative
    weight = torch.eye(3)
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3)).eval()
    model[0].weight.data = weight.clone()
    model[0].bias.data.zero_()
    model[2].weight.data = weight.clone()
    model[2].bias.data.fill_(-10.0)
    x = torch.tensor([[0.9, 0.1, 0.2], [0.1, 0.8, 0.3], [0.2, 0.3, 0.7]])
    y = torch.tensor([0, 1, 2])
    assert (model(x) < 0).all()
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"))
    for readout in (Readout.POTENTIAL, Readout.SPIKES):
        res = Simulator(snn.graph, readout=readout).run(x, y, 64)
        # output neurons never spike, yet the ranking is right from step 1 on
        assert res.correct_top1[-1].item() == 3, readout


def test_membrane_clamp_holds_deeper_layers_longer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)
    ).eval()
    model[0].bias.data.fill_(1.0)
    model[2].bias.data.fill_(1.0)
    x = torch.rand(16, 4)
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu", clamp_steps=3))
    holds = [n.op.hold_steps for n in snn.graph.nodes if isinstance(n.op, IFNeuron)]
    assert holds == [3, 6]
    res = Simulator(snn.graph).run(x, torch.zeros(16, dtype=torch.long), 20)
    first, second = (res.spikes[n] for n in snn.spiking_layers)
    assert first[:3].sum() == 0 and first[3:].sum() > 0
    assert second[:6].sum() == 0 and second[6:].sum() > 0


def test_average_pool_replacement_changes_the_ann_and_says_so() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)
    ).eval()
    x = torch.rand(32, 1, 8, 8)
    config = snnconv.Config(device="cpu", maxpool="average")
    snn = snnconv.convert(model, x, config)
    assert not any(isinstance(n.op, MaxPool2d) for n in snn.graph.nodes)
    assert any("replaced by average pooling" in w for w in snn.info["warnings"])
    res = snnconv.evaluate(snn, TensorDataset(x, model(x).argmax(1)), 8, config)
    assert res.warnings and res.ann_top1 < 1.0  # the replaced ANN differs from the original


def test_gated_network_is_simulated_with_the_gate() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)
    ).eval()
    x = torch.rand(32, 1, 8, 8)
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"))
    sim = Simulator(snn.graph)
    assert [n.name for n in sim.gated] == ["max_pool2d"]
    res = snnconv.evaluate(snn, TensorDataset(x, model(x).argmax(1)), 256)
    assert res.snn_top1[-1] >= 0.9


def test_saved_network_with_new_ops_round_trips(mixed, tmp_path) -> None:
    model, x = mixed
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu", rate_estimator="exponential"))
    snnconv.save(snn, tmp_path)
    back = snnconv.load(tmp_path)
    pool = next(n for n in back.graph.nodes if isinstance(n.op, MaxPool2d))
    assert pool.op.estimator.value == "exponential"
    y = torch.zeros(len(x), dtype=torch.long)
    a = Simulator(snn.graph).run(x, y, 16)
    b = Simulator(back.graph).run(x, y, 16)
    assert torch.equal(a.output, b.output)


@pytest.mark.parametrize(
    ("module", "fragment"),
    [
        (lambda: _Lambda(lambda x: torch.cat([x, x], 0)), "batch axis"),
        (lambda: _Lambda(lambda x: x + x.amax((2, 3), keepdim=True)), "different shapes"),
        (lambda: _Lambda(torch.sigmoid), "sigmoid"),
        (lambda: _Lambda(lambda x: x.clamp(-1, 1)), "lower bound of 0"),
        (lambda: _Lambda(lambda x: torch.softmax(x, 1).flatten(1)), "softmax"),
    ],
)
def test_inexpressible_ops_are_refused_clearly(module, fragment) -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), module(), nn.Flatten(), nn.LazyLinear(3))
    x = torch.rand(4, 1, 6, 6)
    model(x)  # materialize the lazy layer
    with pytest.raises(snnconv.UnsupportedOpError, match=fragment):
        snnconv.convert(model.eval(), x, snnconv.Config(device="cpu"))


class _Lambda(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)
