"""Tests of benchmarks/reproduce_paper.py: argument parsing and the missing-data path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from snnconv.data import cifar as cifar_module
from snnconv.data import idx as idx_module

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "reproduce_paper.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    """The script, imported as a module."""
    spec = importlib.util.spec_from_file_location("reproduce_paper", SCRIPT)
    if spec is None or spec.loader is None:
        pytest.fail(f"cannot import {SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce_paper"] = module
    spec.loader.exec_module(module)
    return module


def test_defaults_per_experiment(script: ModuleType) -> None:
    args = script.parse_args(["lenet-mnist"])
    assert args.dataset == "mnist" and args.epochs == 10
    assert args.pool == "max" and args.percentile == 99.9 and args.reset == "subtract"
    assert args.timesteps == 256 and args.calibration_samples == 1000
    assert args.out.name == "lenet-mnist.json"
    cifar = script.parse_args(["convnet-cifar10", "--epochs", "2", "--out", "x.json"])
    assert cifar.dataset == "cifar10" and cifar.epochs == 2 and str(cifar.out) == "x.json"
    binary = script.parse_args(
        ["binarynet-mnist", "--dataset", "fashion-mnist", "--activation", "heaviside"]
    )
    assert binary.dataset == "fashion-mnist" and binary.activation == "heaviside"
    assert script.EXPERIMENTS["binarynet-cifar10"].binary
    assert sorted(script.EXPERIMENTS) == [
        "binarynet-cifar10",
        "binarynet-mnist",
        "convnet-cifar10",
        "lenet-mnist",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["resnet-imagenet"],
        ["lenet-mnist", "--dataset", "cifar10"],
        ["convnet-cifar10", "--dataset", "mnist"],
        ["lenet-mnist", "--timesteps", "0"],
        ["lenet-mnist", "--limit", "-5"],
        ["lenet-mnist", "--epochs", "-1"],
        ["lenet-mnist", "--reset", "never"],
        ["lenet-mnist", "--pool", "sum"],
    ],
)
def test_bad_arguments_exit_2(script: ModuleType, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        script.parse_args(argv)
    assert info.value.code == 2


@pytest.fixture
def no_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No dataset can be found anywhere."""
    monkeypatch.delenv(idx_module.ENV_VAR, raising=False)
    monkeypatch.delenv(idx_module.SYSTEM_DATA_VAR, raising=False)
    monkeypatch.setattr(idx_module, "DEFAULT_SEARCH_DIRS", (str(tmp_path / "none" / "{name}"),))
    cifar_module.clear_cache()
    return tmp_path


@pytest.mark.parametrize(
    ("experiment", "needle"), [("lenet-mnist", "mnist"), ("convnet-cifar10", "CIFAR-10")]
)
def test_missing_data_is_a_user_error(
    script: ModuleType,
    no_data: Path,
    capsys: pytest.CaptureFixture[str],
    experiment: str,
    needle: str,
) -> None:
    out = no_data / "results.json"
    status = script.main([experiment, "--data-dir", str(no_data / "empty"), "--out", str(out)])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and "--data-dir" in err
    assert "Traceback" not in err
    assert not out.exists()
