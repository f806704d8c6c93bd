"""The command line: the documented commands, results.json, exit statuses."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import snnconv
from snnconv import zoo
from snnconv.cli import main

CHECKPOINT = Path(zoo.__file__).parent / "models" / "weights" / "lenet_avg_fmnist.safetensors"
FAST = ["--limit", "64", "--calibration-samples", "200", "--device", "cpu"]
RANDOM_LENET = ["run", "snnconv.zoo:lenet", "--random-weights"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_factory_model_writes_results_and_network(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code, stdout, _ = _run(
        [
            "run",
            "snnconv.zoo:lenet",
            "--weights",
            str(CHECKPOINT),
            "--dataset",
            "fashion-mnist",
            "--timesteps",
            "32",
            "--out",
            str(out),
            *FAST,
        ],
        capsys,
    )
    assert code == 0
    assert "SNN top-1" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["version"] == snnconv.__version__
    assert results["model"] == "snnconv.zoo:lenet"
    assert results["model_weights"] == str(CHECKPOINT)
    # every option is recorded: the defaults and those given
    assert results["config"] == snnconv.Config(calibration_samples=200, device="cpu").to_dict()
    assert results["num_samples"] == 64
    assert results["dataset"] == "fashion-mnist"
    # the full set where it is installed, else the embedded sample, said in the warnings
    source = results["data_source"]
    assert source == "embedded" or (Path(source) / "t10k-labels-idx1-ubyte.gz").is_file()
    embedded_warnings = [w for w in results["warnings"] if "embedded sample" in w]
    assert len(embedded_warnings) == (2 if source == "embedded" else 0)
    assert results["calibration"] == {
        "dataset": "fashion-mnist",
        "split": "train",
        "num_samples": 200,
        "seed": 0,
        "source": source,
    }
    # accuracies agree with the per-sample predictions saved beside them
    arrays = load_file(out / "arrays.safetensors")
    labels = arrays["labels"]
    ann_top1 = float((arrays["ann_predictions"] == labels).double().mean())
    assert results["ann"]["top1"] == pytest.approx(ann_top1, abs=1e-12) and ann_top1 > 0.8
    snn_top1 = float((arrays["predictions"] == labels).double().mean())
    assert results["snn"]["top1"][31] == pytest.approx(snn_top1, abs=1e-12)
    p = results["ann"]["top1"]
    assert results["ann"]["top1_stderr"] == pytest.approx(math.sqrt(p * (1 - p) / 64))
    assert results["snn"]["timesteps"] == 32 and len(results["snn"]["top5"]) == 32
    assert results["snn"]["top1"][31] >= results["ann"]["top1"] - 0.05  # 64 images, T = 32
    timing = results["timing"]
    assert timing["samples_per_second"] == pytest.approx(64 / timing["seconds"])
    network = snnconv.load(out)  # the network beside the results, whole
    assert network.info["model"] == "snnconv.zoo:lenet"
    # operations, energy, milestones and diagnostics; arrays and the report beside them
    assert results["ann"]["macs_per_sample"] == 3_024_384  # LeNet: conv1 + conv2 + fc1 + fc2
    assert results["ann"]["other_ops_per_sample"] == 4 * (16 * 14 * 14 + 32 * 7 * 7)
    assert results["snn"]["input_macs_per_sample"] == 16 * 28 * 28 * 25  # conv1, once
    sops = results["snn"]["sops_per_sample"]
    assert len(sops) == 32 and sops == sorted(sops)
    energy = results["energy"]
    assert energy["ann_pj_per_sample"] == pytest.approx(4.6 * 3_024_384)
    assert energy["snn_pj_per_sample"] == pytest.approx(0.9 * sops[-1] + 4.6 * 16 * 28 * 28 * 25)
    within = results["milestones"]["within"]["1"]
    first = next((t for t, a in enumerate(results["snn"]["top1"], 1) if a >= p - 0.01), None)
    if first is None:
        assert within is None and "did not come within 1 point" in stdout
    else:
        assert within["step"] == first
        assert within["ops"] == pytest.approx(sops[first - 1] + 16 * 28 * 28 * 25)
        assert f"within 1 point of the ANN at t={first}" in stdout
    correlations = [layer["correlation"] for layer in results["layers"]]
    assert len(correlations) == 3 and min(correlations) > 0.8  # rates follow activations
    assert "data:image/png;base64," in (out / "report.html").read_text()

    # evaluate the saved run directory again: same network, same accuracies
    again = tmp_path / "again"
    code, _, _ = _run(
        [
            "evaluate",
            str(out),
            "--dataset",
            "fashion-mnist",
            "--timesteps",
            "32",
            "--out",
            str(again),
            "--limit",
            "64",
            "--device",
            "cpu",
            "--no-report",
        ],
        capsys,
    )
    assert code == 0
    assert not (again / "report.html").exists()
    second = json.loads((again / "results.json").read_text())
    assert second["snn"]["top1"] == results["snn"]["top1"]
    assert second["ann"] == results["ann"]


def test_convert_pt2_then_evaluate(tmp_path, capsys) -> None:
    model = zoo.load_pretrained_lenet()
    program = torch.export.export(model, (torch.zeros(2, 1, 28, 28),))
    pt2 = tmp_path / "lenet.pt2"
    torch.export.save(program, str(pt2))
    conv = tmp_path / "conv"
    code, _, _ = _run(
        [
            "convert",
            str(pt2),
            "--calibration",
            "fashion-mnist",
            "--out",
            str(conv),
            "--calibration-samples",
            "200",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0
    assert not (conv / "results.json").exists()
    ev = tmp_path / "ev"
    code, _, _ = _run(
        [
            "evaluate",
            str(conv),
            "--dataset",
            "fashion-mnist",
            "--timesteps",
            "16",
            "--out",
            str(ev),
            "--limit",
            "32",
            "--device",
            "cpu",
            "--no-report",
        ],
        capsys,
    )
    assert code == 0
    assert json.loads((ev / "results.json").read_text())["num_samples"] == 32


def test_npz_without_calibration_falls_back_with_a_warning(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    x = torch.rand(40, 1, 28, 28).numpy()
    y = torch.randint(0, 10, (40,)).numpy()
    import numpy as np

    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    out = tmp_path / "out"
    code, _, err = _run(
        [
            "run",
            "snnconv.zoo:lenet",
            "--random-weights",
            "--dataset",
            f"npz:{data}",
            "--timesteps",
            "4",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--no-report",
        ],
        capsys,
    )
    assert code == 0
    assert "no training split" in err
    results = json.loads((out / "results.json").read_text())
    assert any("no training split" in w for w in results["warnings"])
    assert results["calibration"]["num_samples"] == 40


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "nosuchmodule:factory", "--dataset", "digits", "-T", "4"], "cannot import"),
        (["run", "missing.pt2", "--dataset", "digits", "-T", "4"], "does not exist"),
        (
            [*RANDOM_LENET, "--dataset", "digits", "-T", "4", "--percentile", "0"],
            "percentile",
        ),
        ([*RANDOM_LENET, "--dataset", "nosuch", "-T", "4"], "nosuch"),
        ([*RANDOM_LENET, "--dataset", "digits", "-T", "4"], "shape [2, 1, 8, 8]"),
        (["run", "torch.nn:GELU", "--random-weights", "--dataset", "digits", "-T", "4"], "GELU"),
        (["run", "snnconv.zoo:lenet", "--dataset", "digits", "-T", "4"], "--random-weights"),
    ],
)
def test_user_errors_exit_2_with_a_clear_message(tmp_path, capsys, argv, fragment) -> None:
    out = tmp_path / "out"
    code, _, err = _run([*argv, "--out", str(out), "--device", "cpu"], capsys)
    assert code == 2
    assert fragment.lower() in err.lower()
    assert "Traceback" not in err
    assert not (out / "results.json").exists()


def test_non_positive_timesteps_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "snnconv.zoo:lenet", "--dataset", "digits", "-T", "0", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_console_entry_point_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snnconv", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    for option in ("--percentile", "--reset", "--input", "--calibration", "--limit", "--chunk"):
        assert option in proc.stdout


def test_demo_small(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    code, stdout, _ = _run(
        [
            "demo",
            "--out",
            str(out),
            "--limit",
            "64",
            "--timesteps",
            "16",
            "--device",
            "cpu",
            "--no-report",
        ],
        capsys,
    )
    assert code == 0
    assert "ANN top-1" in stdout
    assert json.loads((out / "results.json").read_text())["snn"]["timesteps"] == 16
    assert (out / "arrays.safetensors").is_file() and not (out / "report.html").exists()


def test_energy_options_reach_the_results(tmp_path, capsys) -> None:
    x = torch.rand(8, 1, 8, 8).numpy()
    y = torch.randint(0, 3, (8,)).numpy()
    import numpy as np

    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    argv = ["run", "tests.models:tiny_cnn", "--random-weights", "--dataset", f"npz:{data}"]
    argv += ["-T", "4"]
    out = tmp_path / "out"
    flags = ["--energy-ac", "0.1", "--energy-mac", "3.1", "--no-report", "--device", "cpu"]
    code, _, _ = _run([*argv, "--out", str(out), *flags], capsys)
    assert code == 0, capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    energy = results["energy"]
    assert (energy["e_ac_pj"], energy["e_mac_pj"]) == (0.1, 3.1)
    assert energy["ann_pj_per_sample"] == pytest.approx(3.1 * results["ann"]["macs_per_sample"])
    code, _, err = _run([*argv, "--out", str(tmp_path / "new"), "--energy-ac", "-1"], capsys)
    assert code == 2 and "energy_ac_pj" in err


#: Golden files; regenerate with SNNCONV_UPDATE_GOLDEN=1 (and review the diff).
GOLDEN = Path(__file__).parent / "golden"

#: What may differ between two runs of the same thing: wall time and the version.
_UNSTABLE = {"timing", "version"}


def assert_matches_golden(document: dict, path: Path) -> None:
    """``document`` equals the golden file: strings, counts and booleans exactly; accuracies
    within one sample (a neuron on its threshold may flip on another CPU's float32); other
    floats within 1e-6 relative."""
    document = {k: v for k, v in document.items() if k not in _UNSTABLE}
    if os.environ.get("SNNCONV_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    golden = json.loads(path.read_text())
    one_sample = 1 / document["num_samples"]

    def compare(a: object, b: object, where: str) -> None:
        if isinstance(b, dict):
            assert isinstance(a, dict) and set(a) == set(b), (where, sorted(a), sorted(b))
            for key in b:
                compare(a[key], b[key], f"{where}.{key}")
        elif isinstance(b, list):
            assert isinstance(a, list) and len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                compare(x, y, f"{where}[{i}]")
        elif isinstance(b, float) and not isinstance(b, bool):
            accuracy = any(k in where for k in ("top1", "top5", "error"))
            tolerance = one_sample + 1e-12 if accuracy else 1e-6 * abs(b) + 1e-12
            assert isinstance(a, (int, float)) and abs(a - b) <= tolerance, (where, a, b)
        else:
            assert a == b, (where, a, b)

    compare(document, golden, "results")


def _without_system_data(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine without the data set installed (and an empty HOME)."""
    env = {k: v for k, v in os.environ.items() if k != "SNNCONV_DATA"}
    env.update(SNNCONV_SYSTEM_DATA="none", HOME=str(tmp_path / "home"))
    return env


def _snnconv(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snnconv", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


@pytest.mark.slow
def test_demo_and_run_on_a_machine_without_the_data_set(tmp_path: Path) -> None:
    """With the system's data hidden, the demo and a CLI run use the embedded sample, say so,
    and measure the shipped LeNet at its known accuracy on the first 2,000 test images."""
    env = _without_system_data(tmp_path)
    demo = _snnconv(["demo", "--out", str(tmp_path / "demo"), "-T", "64", "--device", "cpu"], env)
    assert demo.returncode == 0, demo.stderr
    assert "using the embedded sample: 2,000 test images" in demo.stderr
    assert "using the embedded sample: 1,000 train images" in demo.stderr
    assert "ANN top-1" in demo.stdout
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert results["num_samples"] == 2000
    assert results["data_source"] == results["calibration"]["source"] == "embedded"
    assert results["warnings"] == []  # the demo says it in its output only
    assert 0.89 <= results["ann"]["top1"] <= 0.915
    assert abs(results["snn"]["top1"][63] - results["ann"]["top1"]) <= 0.01
    # the same document as the golden file: every count, accuracy and figure
    assert_matches_golden(results, GOLDEN / "demo_embedded_T64.json")

    out = tmp_path / "run"
    argv = ["run", "snnconv.zoo:lenet", "--weights", str(CHECKPOINT), "--dataset"]
    run = _snnconv([*argv, "fashion-mnist", "-T", "32", "--out", str(out), "--no-report"], env)
    assert run.returncode == 0, run.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["num_samples"] == 2000
    assert results["data_source"] == results["calibration"]["source"] == "embedded"
    assert [w for w in results["warnings"] if "using the embedded sample" in w] == [
        "fashion-mnist: using the embedded sample: 1,000 train images; install the full set "
        "with `apt-get install dataset-fashion-mnist` (or point --data-dir or SNNCONV_DATA at it)",
        "fashion-mnist: using the embedded sample: 2,000 test images; install the full set "
        "with `apt-get install dataset-fashion-mnist` (or point --data-dir or SNNCONV_DATA at it)",
    ]
    assert 0.89 <= results["ann"]["top1"] <= 0.915
    assert abs(results["snn"]["top1"][31] - results["ann"]["top1"]) <= 0.01


def test_a_data_dir_without_the_data_is_a_user_error(tmp_path: Path, capsys) -> None:
    """Never a silent fall-back to an installed or embedded copy."""
    missing = tmp_path / "bad-dir"
    argv = ["run", "snnconv.zoo:lenet", "--weights", str(CHECKPOINT), "--dataset"]
    out = tmp_path / "out"
    code, _, err = _run(
        [*argv, "fashion-mnist", "-T", "4", "--out", str(out), "--data-dir", str(missing)], capsys
    )
    assert code == 2
    assert f"not found in {missing} (given by --data-dir), which does not exist" in " ".join(
        err.split()
    )
    assert not out.exists()


def test_the_command_ends_its_process_with_its_exit_code_its_output_and_exit_handlers(
    tmp_path: Path,
) -> None:
    """``python -m snnconv`` skips the interpreter's teardown (snnconv.cli.console) but
    keeps what a normal exit gives: the exit code, every line written, the atexit
    handlers a user's module registered."""
    from tests.models import tiny_npz

    (tmp_path / "factory_with_exit_handler.py").write_text(
        "import atexit, pathlib\n"
        "from tests.models import tiny_cnn\n"
        "def make():\n"
        "    atexit.register(pathlib.Path('handler-ran').write_text, 'yes')\n"
        "    return tiny_cnn()\n"
    )
    data = tiny_npz(tmp_path / "data.npz", 40)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    argv = ["run", "factory_with_exit_handler:make", "--random-weights", "--dataset",
            f"npz:{data}", "-T", "4", "--device", "cpu", "--no-report"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "snnconv", *argv, "--out", "out"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("saved the spiking network to out")
    assert (tmp_path / "handler-ran").read_text() == "yes"
    (tmp_path / "handler-ran").unlink()
    again = subprocess.run(  # --out holds a run: a user error, exit code 2
        [sys.executable, "-m", "snnconv", *argv, "--out", "out"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert again.returncode == 2
    assert "snnconv: error:" in again.stderr and "--overwrite" in again.stderr
