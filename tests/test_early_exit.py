"""Per-sample early exit: each sample's answer is the full simulation's at its exit step."""

from __future__ import annotations

import pytest
import torch

import snnconv
from snnconv import zoo
from snnconv.config import Config
from snnconv.data import load_dataset
from snnconv.errors import ConfigError
from snnconv.metrics.operations import count_operations
from snnconv.sim.early_exit import ExitRule, exit_steps, run_early_exit, trace, tune_exit_rule
from snnconv.sim.simulator import Simulator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

STEPS = 32


@pytest.fixture(scope="module")
def setup() -> tuple[snnconv.SpikingNetwork, Simulator, torch.Tensor, torch.Tensor]:
    pytest.importorskip("sklearn")
    torch.manual_seed(0)
    train = load_dataset("digits", "train")
    model = zoo.train(zoo.lenet("avg", image_size=8), train, epochs=2, batch_size=8, lr=5e-3)
    test = load_dataset("digits", "test")
    x, y = (
        torch.stack([test[i][0] for i in range(300)]),
        torch.tensor([test[i][1] for i in range(300)]),
    )
    calibration = torch.stack([train[i][0] for i in range(256)])
    network = snnconv.convert(model, calibration, Config(device="cpu"))
    counts = count_operations(network.graph)
    sim = Simulator(network.graph, fan_out={s.name: s.fan_out for s in counts.sources})
    return network, sim, x, y


@pytest.mark.parametrize("rule", [ExitRule(1, 3.0), ExitRule(2, 0.5), ExitRule(4, 2.0)])
def test_each_sample_answers_as_the_full_run_did_at_its_exit(setup: tuple, rule: ExitRule) -> None:
    """Compacting the batch as samples leave changes nothing for the samples that stay."""
    _, sim, x, y = setup
    classes, margins = trace(sim, x, STEPS)
    expected = exit_steps(classes, margins, rule)
    batch = run_early_exit(sim, x, y, STEPS, rule)
    assert torch.equal(batch.steps, expected)
    assert torch.equal(batch.predictions, classes[expected - 1, torch.arange(len(x))])
    assert batch.correct_top1 == int((batch.predictions == y).sum())
    assert 1 < float(expected.double().mean()) < STEPS  # some leave early, not all at once


def test_operations_stop_at_the_exit(setup: tuple) -> None:
    """Never exiting costs the full run's operations; exiting after step t for everyone
    costs the t-step run's, exactly."""
    _, sim, x, y = setup
    never = run_early_exit(sim, x, y, STEPS, ExitRule(STEPS + 1, 0.0))
    full = sim.run(x, y, STEPS)
    assert never.sops == pytest.approx({k: float(v.sum()) for k, v in full.sops.items()})
    assert torch.equal(never.predictions, full.predictions)
    first = run_early_exit(sim, x, y, STEPS, ExitRule(1, 0.0))
    one_step = sim.run(x, y, 1)
    assert first.sops == pytest.approx({k: float(v.sum()) for k, v in one_step.sops.items()})
    assert torch.all(first.steps == 1)


def test_the_tuned_rule_keeps_the_full_runs_answers(setup: tuple) -> None:
    _, sim, x, _ = setup
    classes, margins = trace(sim, x, STEPS)
    rule = tune_exit_rule(classes, margins, tolerance=0.01)
    steps = exit_steps(classes, margins, rule)
    changed = (classes[steps - 1, torch.arange(len(x))] != classes[-1]).double().mean()
    assert float(changed) <= 0.01
    assert float(steps.double().mean()) < 0.75 * STEPS
    strict = tune_exit_rule(classes, margins, tolerance=0.0)
    assert float(exit_steps(classes, margins, strict).double().mean()) >= float(
        steps.double().mean()
    )


def test_evaluate_reports_the_early_exit(setup: tuple) -> None:
    network, _, x, y = setup
    data = torch.utils.data.TensorDataset(x, y)
    config = Config(device="cpu", early_exit=True)
    result = snnconv.evaluate(network, data, STEPS, config, calibration=x)
    record = result.early_exit
    assert record is not None and record["criterion"]["tuned"]
    assert sum(record["steps_histogram"]) == len(x)
    assert record["mean_steps"] < STEPS
    input_macs = count_operations(network.graph).input_macs_total
    assert input_macs < record["ops_per_sample"] < input_macs + result.sops[-1]
    # tuned on these inputs for at most 0.1% changed answers: none of the 300
    assert record["top1"] == result.snn_top1[-1]
    with pytest.raises(ConfigError, match="exit_patience and exit_margin"):
        snnconv.evaluate(network, data, STEPS, config)
    fixed = Config(device="cpu", early_exit=True, exit_patience=2, exit_margin=0.5)
    record = snnconv.evaluate(network, data, STEPS, fixed).early_exit
    assert record["criterion"] == {**record["criterion"], "patience": 2, "margin": 0.5}
    assert not record["criterion"]["tuned"]
