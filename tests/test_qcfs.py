"""QCFS activations, replace_relu, their conversion (exact IF theory) and fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

import snnconv
from snnconv import zoo
from snnconv.cli import main
from snnconv.ir import IFNeuron, ReLU
from snnconv.nn import QCFS, qcfs_modules, relu_nodes, replace_relu, to_graph_module
from snnconv.sim.reference import run_graph
from snnconv.sim.simulator import Simulator

CHECKPOINT = Path(zoo.__file__).parent / "models" / "weights" / "lenet_avg_fmnist.safetensors"


def _closed_form(x: torch.Tensor, lam: float, levels: int) -> torch.Tensor:
    """λ/L · clip(⌊x·L/λ + ½⌋, 0, L), in float64 from the equation."""
    x64 = x.double()
    steps = torch.floor(x64 * levels / lam + 0.5).clamp(0, levels)
    return steps * lam / levels


@pytest.mark.parametrize("levels", [1, 2, 4, 8, 16])
def test_forward_is_the_quantized_clipped_shifted_activation(levels: int) -> None:
    lam = 1.7
    x = torch.linspace(-1, 3, 4001)
    y = QCFS(levels, lam)(x)
    assert torch.allclose(y.double(), _closed_form(x, lam, levels), atol=1e-6)
    # L + 1 values: 0, λ/L, ..., λ
    assert len(torch.unique(y)) == levels + 1
    assert float(y.max()) == pytest.approx(lam) and float(y.min()) == 0.0
    # the step from 0 to λ/L is at half a step: the shift ½
    half = lam / (2 * levels)
    assert float(QCFS(levels, lam)(torch.tensor(half * 0.999))) == 0.0
    assert float(QCFS(levels, lam)(torch.tensor(half * 1.001))) == pytest.approx(lam / levels)


def test_gradient_passes_straight_through_inside_zero_lambda() -> None:
    lam, levels = 2.0, 4
    module = QCFS(levels, lam)
    x = torch.tensor([-0.5, 0.1, 0.3, 1.0, 1.9, 2.0, 3.5], requires_grad=True)
    y = module(x)
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    y.backward(g)
    inside = (x > 0) & (x < lam)
    assert torch.equal(x.grad, g * inside)  # 1 inside (0, λ), 0 outside
    # ∂y/∂λ: 1 above λ, the quantization residual (y − x)/λ inside, 0 below 0
    with torch.no_grad():
        residual = torch.where(inside, (y - x) / lam, (x >= lam).float())
    assert float(module.lam.grad) == pytest.approx(float((g * residual).sum()), rel=1e-6)


def test_levels_and_lambda_are_checked() -> None:
    with pytest.raises(ValueError, match="levels"):
        QCFS(0, 1.0)
    with pytest.raises(ValueError, match="λ"):
        QCFS(4, -1.0)
    with pytest.raises(ValueError, match="levels"):
        replace_relu(nn.Sequential(nn.ReLU()), 0, torch.rand(4, 3))


@pytest.mark.parametrize("levels", [1, 2, 4, 8])
def test_if_neuron_from_half_threshold_reproduces_qcfs_after_l_steps(levels: int) -> None:
    """Theory: V(t) = θ/2 + t·u − n(t) stays in [0, θ) with reset by subtraction, so after L
    steps of constant input u the count is n = clip(⌊L·u/θ + ½⌋, 0, L): QCFS exactly.
    Dyadic weights and inputs keep every sum exact in float32 (ties included)."""
    torch.manual_seed(levels)
    lam = 2.0
    first = nn.Linear(6, 12)
    with torch.no_grad():
        first.weight.copy_(torch.randint(-8, 9, (12, 6)) / 8)
        first.bias.copy_(torch.randint(-8, 9, (12,)) / 8)
    model = nn.Sequential(first, QCFS(levels, lam), nn.Linear(12, 3)).eval()
    x = torch.randint(0, 17, (64, 6)) / 16
    network = snnconv.convert(model, x, snnconv.Config(device="cpu", v_init=0.0))
    neurons = [n for n in network.graph.nodes if isinstance(n.op, IFNeuron)]
    assert len(neurons) == 1 and neurons[0].op.levels == levels
    assert neurons[0].op.v_init == 0.5  # θ/2, whatever the global --v-init says
    result = Simulator(network.graph, chunk=3).run(
        x, torch.zeros(64, dtype=torch.long), levels, record_rates=True
    )
    counts = result.totals[neurons[0].name]
    with torch.no_grad():
        expected = model[1](first(x))
    assert torch.equal(counts * (lam / levels), expected)
    assert (counts > 0).any() and (counts < levels).any() and (counts == levels).any()


def _every_spelling() -> nn.Module:
    class Spellings(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.ModuleList(nn.Linear(8, 8) for _ in range(10))
            self.relu, self.six, self.hard = nn.ReLU(), nn.ReLU6(), nn.Hardtanh(0.0, 2.0)
            self.signed = nn.Hardtanh(-1.0, 1.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.fc
            x = self.relu(f[0](x))
            x = F.relu(f[1](x))
            x = torch.relu(f[2](x))
            x = f[3](x).relu()
            x = self.six(f[4](x))
            x = torch.clamp(f[5](x), min=0, max=3.0)
            x = f[6](x).clamp(0)
            x = self.hard(f[7](x))
            x = F.relu6(f[8](x))
            return self.signed(f[9](x))  # not a ReLU: left alone

    return Spellings().eval()


def test_replace_relu_finds_every_spelling_and_respects_bounds() -> None:
    model = _every_spelling()
    x = torch.randn(256, 8)
    gm = replace_relu(model, 4, x)
    found = qcfs_modules(gm)
    assert len(found) == 9
    bounds = [None, None, None, None, 6.0, 3.0, None, 2.0, 6.0]
    for (name, module), bound in zip(
        sorted(found.items(), key=lambda kv: int(kv[0][5:])), bounds, strict=True
    ):
        assert module.levels == 4
        if bound is not None:
            assert float(module.lam) <= bound, name
    assert not relu_nodes(gm)  # none left
    assert any(isinstance(m, nn.Hardtanh) for m in gm.modules())  # the signed one stays
    # the model given is not modified
    assert not qcfs_modules(model) and isinstance(model.relu, nn.ReLU)


@pytest.mark.parametrize(
    "factory, relus",
    [
        (lambda: zoo.lenet("avg"), 3),
        (lambda: zoo.lenet("max"), 3),
        (zoo.vgg_small, 5),
        (zoo.resnet_small, 7),
        (zoo.inception_small, 13),
    ],
)
def test_replace_relu_finds_every_relu_of_the_reference_nets(factory, relus: int) -> None:
    model = factory().eval()
    x = torch.rand(64, 1, 28, 28)
    exported = torch.export.export(model, (x[:2],))
    aten_relus = sum(
        1 for n in exported.graph.nodes if n.op == "call_function" and "relu" in str(n.target)
    )
    assert aten_relus == relus
    for source in (model, exported):
        gm = replace_relu(source, 2, x)
        assert len(qcfs_modules(gm)) == relus
        graph = snnconv.importers.import_torch(gm, x[:2])
        quantized = [n for n in graph.nodes if isinstance(n.op, ReLU) and n.op.levels == 2]
        assert len(quantized) == relus
        # the imported graph computes what the replaced net computes
        with torch.no_grad():
            torch.testing.assert_close(run_graph(graph, x)[0], gm(x), rtol=1e-4, atol=1e-4)


def test_lambda_starts_at_the_calibration_percentile() -> None:
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.ReLU())
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    x = torch.arange(1, 1001, dtype=torch.float32).reshape(-1, 1)
    gm = replace_relu(model, 4, x, percentile=50.0)
    assert float(qcfs_modules(gm)["qcfs_0"].lam) == pytest.approx(500.5)


def _lenet_and_data() -> tuple[nn.Module, Subset]:
    train = snnconv.data.load_dataset("fashion-mnist", "train")
    return zoo.load_weights(zoo.lenet("avg"), CHECKPOINT), Subset(train, range(400))


def test_finetune_is_deterministic_and_never_uses_the_validation_part_for_training() -> None:
    model, train = _lenet_and_data()
    runs = [snnconv.finetune(model, train, levels=4, epochs=1, seed=3) for _ in range(2)]
    a, b = (r.model.state_dict() for r in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    info = runs[0].info
    assert info["train_samples"] + info["validation"]["samples"] == 400
    assert info["validation"]["samples"] == 40
    assert set(info["lambda"]) == {"qcfs_0", "qcfs_1", "qcfs_2"}
    # the best validation epoch is kept: never worse than the replaced net before training
    assert info["validation"]["top1_finetuned"] >= info["validation"]["top1_replaced"]
    kept = info["history"][info["best_epoch"]]["validation_top1"]
    assert kept == info["validation"]["top1_finetuned"]
    assert not qcfs_modules(model)  # the model given is untouched


def test_sparsity_penalty_lowers_the_operations() -> None:
    model, train = _lenet_and_data()
    plain = snnconv.finetune(model, train, levels=4, epochs=2, sparsity=0.0, lr=3e-3)
    sparse = snnconv.finetune(model, train, levels=4, epochs=2, sparsity=50.0, lr=3e-3)
    assert plain.info["history"][0]["sops_per_step_vs_ann_macs"] is None
    before = sparse.info["history"][0]["sops_per_step_vs_ann_macs"]
    after = sparse.info["history"][-1]["sops_per_step_vs_ann_macs"]
    assert 0 < after < 0.8 * before


def test_finetune_cli_writes_a_model_that_run_converts(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ft"
    code = main(
        [
            "finetune", "snnconv.zoo:lenet", "--weights", str(CHECKPOINT),
            "--dataset", "fashion-mnist", "--limit", "300", "--epochs", "1",
            "--levels", "4", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "finetune.json").read_text())
    assert record["levels"] == 4 and record["epochs"] == 1 and record["seed"] == 0
    assert record["validation"]["samples"] == 30 and record["train_samples"] == 270
    assert record["data_source"]
    run = tmp_path / "run"
    code = main(
        [
            "run", str(out / "model.pt2"), "--dataset", "fashion-mnist", "--timesteps", "4",
            "--limit", "64", "--calibration-samples", "200", "--out", str(run), "--no-report",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    results = json.loads((run / "results.json").read_text())
    original = results["ann_original"]
    assert original["levels"] == 4 and 0.6 < original["top1"] <= 1.0
    assert original["model"] == str(out / "original.pt2")
    saved = snnconv.load(run)
    levels = [n.op.levels for n in saved.graph.nodes if isinstance(n.op, IFNeuron)]
    assert levels == [4, 4, 4]


def test_finetune_refuses_what_it_cannot_train(tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    torch.onnx.export(zoo.lenet("avg").eval(), (torch.rand(1, 1, 28, 28),), str(path), dynamo=False)
    code = main(["finetune", str(path), "--dataset", "digits", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "ONNX" in err and ".pt2" in err
    assert not (tmp_path / "o").exists()
    code = main(["finetune", "snnconv.zoo:lenet", "--random-weights", "--dataset", "digits",
                 "--epochs", "-1", "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2 and "epochs" in capsys.readouterr().err


def test_to_graph_module_of_a_fixed_batch_program_runs_any_batch() -> None:
    model = zoo.vgg_small().eval()
    program = torch.export.export(model, (torch.rand(2, 1, 28, 28),))
    gm = to_graph_module(program, torch.rand(2, 1, 28, 28))
    x = torch.rand(5, 1, 28, 28)
    gm.train()
    gm.eval()
    assert torch.allclose(gm(x), model(x), atol=1e-6)


def test_a_saved_qcfs_program_loads_and_imports(tmp_path: Path) -> None:
    """A QCFS net saved with torch.export loads back through snnconv (the operator is
    registered) and imports as a quantized ReLU with its λ."""
    from snnconv.importers.load import load_pt2

    model = nn.Sequential(nn.Linear(4, 4), QCFS(8, 1.5), nn.Linear(4, 2)).eval()
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(model, (torch.rand(2, 4),)), str(path))
    program = load_pt2(path)
    assert any("snnconv.qcfs" in str(n.target) for n in program.graph.nodes)
    graph = snnconv.importers.import_torch(program, torch.rand(2, 4))
    (relu,) = [n.op for n in graph.nodes if isinstance(n.op, ReLU)]
    assert relu.levels == 8 and relu.max_value == pytest.approx(1.5)
