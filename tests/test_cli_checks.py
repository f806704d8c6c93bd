"""The command line refuses what would give a silent wrong answer, and names the problem.

Labels outside the classes, untrained factories, options a saved network cannot take,
runs that cannot fit in memory, output that is not class scores; user errors exit 2 with
a message, never 1 with a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import snnconv
from models import tiny_run
from snnconv.cli import main
from snnconv.errors import ConfigError
from snnconv.sim.memory import MemoryEstimate, check_memory

ROOT = Path(__file__).resolve().parents[1]


def _npz(path: Path, labels: list[int] | None = None, n: int = 24) -> Path:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=generator).numpy()
    y = np.array(labels) if labels is not None else np.arange(n) % 3
    np.savez(path, x=x[: len(y)], y=y)
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


def _tiny(data: Path, out: Path, *extra: str) -> list[str]:
    return tiny_run(data, out, "--no-report", *extra)


def test_labels_outside_the_classes_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _npz(tmp_path / "d.npz", [0, 1, 2, 3, 1, 4])
    code, _, err = _run(_tiny(data, tmp_path / "out", "-T", "2"), capsys)
    assert code == 2
    assert (
        "2 of 6 labels lie outside 0..2, the classes of the model's 3 outputs (found 3, 4)" in err
    )
    assert not (tmp_path / "out").exists()
    # from Python too, negative ones included, whether the data is a dataset or a loader
    from models import tiny_cnn
    from snnconv.errors import DataError

    x = torch.rand(4, 1, 8, 8)
    network = snnconv.convert(tiny_cnn().eval(), x, snnconv.Config(device="cpu"))
    labelled = torch.utils.data.TensorDataset(x, torch.tensor([0, -1, 2, 1]))
    for data_form in (labelled, torch.utils.data.DataLoader(labelled, batch_size=2)):
        with pytest.raises(DataError, match=r"1 of 4 labels lie outside 0\.\.2,.*found -1"):
            snnconv.evaluate(network, data_form, 2)
    batches = [(x[:2], torch.tensor([0, 1])), (x[2:], torch.tensor([7, 1]))]  # no .tensors
    with pytest.raises(DataError, match=r"1 of 2 labels lie outside 0\.\.2,.*found 7"):
        snnconv.evaluate(network, batches, 2)


def test_random_weights_are_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _npz(tmp_path / "d.npz")
    code, _, err = _run(_tiny(data, tmp_path / "out", "-T", "2"), capsys)
    assert code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["model_weights"] == "random"
    assert any("random weights of its factory" in w for w in results["warnings"])
    assert "random weights of its factory" in err


def test_a_saved_network_takes_dynamics_and_refuses_conversion_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _npz(tmp_path / "d.npz")
    saved = tmp_path / "saved"
    assert _run(_tiny(data, saved, "-T", "4"), capsys)[0] == 0
    evaluate = ["evaluate", str(saved), "--dataset", f"npz:{data}", "-T", "4", "--no-report"]
    for option, value in (("--percentile", "99"), ("--maxpool", "average")):
        code, _, err = _run([*evaluate, "--out", str(tmp_path / "x"), option, value], capsys)
        assert code == 2 and f"{option} change(s) the conversion itself" in err
    code, _, err = _run(
        [*evaluate, "--out", str(tmp_path / "x"), "--calibration", "digits"], capsys
    )
    assert code == 2 and "--calibration" in err
    out = tmp_path / "resimulated"
    flags = ["--v-init", "0.5", "--reset", "zero", "--clamp-steps", "2"]
    assert _run([*evaluate, "--out", str(out), *flags], capsys)[0] == 0
    results = json.loads((out / "results.json").read_text())
    assert (results["config"]["v_init"], results["config"]["reset"]) == (0.5, "zero")
    assert results["config"]["clamp_steps"] == 2
    network = snnconv.load(out)  # the network it simulated, saved beside the results
    neurons = [n.op for n in network.graph.nodes if n.op.kind == "IFNeuron"]
    assert [(op.v_init, op.reset.value) for op in neurons] == [(0.5, "zero")] * len(neurons)
    assert [op.hold_steps for op in neurons] == [2 * d for d in range(1, len(neurons) + 1)]
    assert network.info["resimulated_with"]["v_init"] == 0.5


def test_a_layer_that_never_fires_gives_null_and_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[1].bias.fill_(-1e3)  # never positive: the layer is silent, its λ is 1
    weights = tmp_path / "w.safetensors"
    save_file(model.state_dict(), weights)
    (tmp_path / "deadnet.py").write_text(
        "from torch import nn\n\ndef make():\n    return nn.Sequential(nn.Flatten(), "
        "nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))\n"
    )
    data = _npz(tmp_path / "d.npz")
    out = tmp_path / "out"
    argv = ["run", "deadnet:make", "--weights", str(weights), "--dataset", f"npz:{data}"]
    argv += ["-T", "3", "--out", str(out), "--device", "cpu", "--no-report"]
    proc = subprocess.run(
        [sys.executable, "-m", "snnconv", *argv], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    results = json.loads((out / "results.json").read_text(), parse_constant=refuse)
    (layer,) = results["layers"]
    assert layer["mean_rate"] == 0.0 and layer["correlation"] is None
    assert any("never fired" in w for w in results["warnings"])


def test_a_run_that_cannot_fit_in_memory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _npz(tmp_path / "d.npz")
    code, _, err = _run(_tiny(data, tmp_path / "out", "-T", "1000000000"), capsys)
    assert code == 2
    assert "1,000,000,000 time steps" in err and "Lower --timesteps" in err
    estimate = MemoryEstimate(per_step=500, timesteps=10**6, batch=10**8)
    check_memory(estimate, available=10**9)  # 0.6 GB of 1 GB: fine
    with pytest.raises(ConfigError, match=r"600.0 MB in memory, more than the 500.0 MB"):
        check_memory(estimate, available=5 * 10**8)


def test_a_batch_larger_than_the_data_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _npz(tmp_path / "d.npz")
    code, _, err = _run(
        _tiny(data, tmp_path / "out", "-T", "2", "--batch-size", "1000000000"), capsys
    )
    assert code == 0
    assert "--batch-size 1,000,000,000 is larger than the 24 samples" in err


def _export(model: nn.Module, path: Path) -> Path:
    torch.export.save(torch.export.export(model.eval(), (torch.rand(2, 1, 8, 8),)), path)
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("form", ["pt2", "onnx"])
def test_output_that_is_not_class_scores_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    if form == "pt2":
        path = _export(model, tmp_path / "m.pt2")
    else:
        pytest.importorskip("onnx")
        path = tmp_path / "m.onnx"
        torch.onnx.export(model, (torch.rand(1, 1, 8, 8),), str(path), dynamo=False)
    data = _npz(tmp_path / "d.npz")
    argv = ["run", str(path), "--dataset", f"npz:{data}", "-T", "2", "--device", "cpu"]
    code, _, err = _run([*argv, "--out", str(tmp_path / "out")], capsys)
    assert code == 2, err
    assert "output has shape [N, 2, 8, 8], not [N, classes]" in err


def test_other_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _npz(tmp_path / "d.npz")
    (tmp_path / "broken.py").write_text("def make():\n    raise RuntimeError('no GPU here')\n")
    cases = [
        (
            ["run", "broken:make", "--random-weights", "--dataset", f"npz:{data}", "-T", "2"],
            "calling broken:make() raised RuntimeError: no GPU here",
        ),
        ([*_tiny(data, tmp_path / "o1", "-T", "2"), "--device", "meta"], "device must be"),
    ]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for argv, message in cases:
            if "--out" not in argv:
                argv = [*argv, "--out", str(tmp_path / "out")]
            code, _, err = _run(argv, capsys)
            assert code == 2 and message in err, err
    finally:
        os.chdir(cwd)
    saved = tmp_path / "saved"
    assert _run(_tiny(data, saved, "-T", "2"), capsys)[0] == 0
    (tmp_path / "a-dir").mkdir()
    code, _, err = _run(["export-nir", str(saved), "--out", str(tmp_path / "a-dir")], capsys)
    assert code == 2 and "is a directory: give the file to write" in err


def test_out_is_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --out is named at once, before the model (which does not even exist) is read."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        argv = ["run", str(tmp_path / "absent.pt2"), "--dataset", "digits", "-T", "2"]
        code, _, err = _run([*argv, "--out", str(out)], capsys)
        assert code == 2 and f"{blocker} is a file" in err
    code, _, err = _run([*argv, "--out", "/proc/snnconv-test/out"], capsys)
    assert code == 2 and "/proc/snnconv-test/out" in err


def test_a_factory_module_does_not_shadow_installed_packages(tmp_path: Path) -> None:
    """A matplotlib.py beside the user's module is not what the report imports."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    (tmp_path / "usernet.py").write_text(
        "from torch import nn\n\ndef make():\n    return nn.Sequential(nn.Flatten(), "
        "nn.Linear(64, 3))\n"
    )
    marker = tmp_path / "shadowed"
    (tmp_path / "matplotlib.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    data = _npz(tmp_path / "d.npz")
    argv = ["run", "usernet:make", "--weights", "w.safetensors", "--dataset", f"npz:{data}"]
    argv += ["-T", "2", "--device", "cpu"]
    script = Path(sys.executable).parent / "snnconv"
    for launcher, out in (([str(script)], "out1"), ([sys.executable, "-m", "snnconv"], "out2")):
        proc = subprocess.run(
            [*launcher, *argv, "--out", out],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        assert proc.returncode == 0, proc.stderr
        assert not marker.exists()
        assert (tmp_path / out / "report.html").is_file()


class Pickled(nn.Module):
    """A module pickled whole into a checkpoint (what torch.save(model) does)."""


def test_wording_of_damaged_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = tmp_path / "loop.pt2"
    loop.symlink_to(tmp_path / "loop.pt2")
    data = _npz(tmp_path / "d.npz")
    argv = ["--dataset", f"npz:{data}", "-T", "2", "--device", "cpu"]
    code, _, err = _run(["run", str(loop), *argv, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "is a loop of symbolic links" in err

    saved = tmp_path / "saved"
    assert _run(_tiny(data, saved, "-T", "2"), capsys)[0] == 0
    tensors = load_file(saved / "network.safetensors")
    name = next(k for k in tensors if k.endswith("weight"))
    tensors[name][0] = float("nan")
    save_file(tensors, saved / "network.safetensors", metadata={"format": "snnconv-network"})
    document = json.loads((saved / "network.json").read_text())
    import hashlib

    document["tensors_sha256"] = hashlib.sha256(
        (saved / "network.safetensors").read_bytes()
    ).hexdigest()
    (saved / "network.json").write_text(json.dumps(document))
    code, _, err = _run(["evaluate", str(saved), *argv, "--out", str(tmp_path / "e")], capsys)
    assert code == 2 and f"holds NaN or Inf in {name}" in err and "malformed" not in err

    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"model": Pickled()}, checkpoint)
    factory = ["run", "tests.models:tiny_cnn", "--weights", str(checkpoint), *argv]
    code, _, err = _run([*factory, "--out", str(tmp_path / "w")], capsys)
    assert code == 2 and "never unpickles" in err
    assert "weights_only=False" not in err and "will likely succeed" not in err
