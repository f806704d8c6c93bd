"""Runs that outgrow one process: data-parallel under torchrun, checkpoints and resume,
``--batch-size auto``.

The end-to-end cases run the real command line (``torchrun --standalone`` with the gloo
backend on the CPU) and compare whole results: a data-parallel run, or a killed and
resumed one, must give exactly what one uninterrupted process gives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models import tiny_npz, tiny_run
from snnconv.checkpoint import Checkpoint, _flatten, _unflatten, parse_every
from snnconv.cli import main
from snnconv.errors import ConfigError
from snnconv.outputs import KILL_POINT_VAR, KILL_RANK_VAR, OutputDirectory, OutputError
from snnconv.sim.memory import estimate_memory, largest_batch, probe_batch_size

ROOT = Path(__file__).resolve().parents[1]

#: Keys of results.json that hold timings (they differ between any two runs).
TIMINGS = {"seconds", "timing", "phases"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """53 labelled 8×8 images (3 classes): 7 batches of 8, the last one short."""
    return tiny_npz(tmp_path_factory.mktemp("data") / "d.npz", 53)


def _argv(data: Path, out: Path, *extra: str) -> list[str]:
    """A run whose every part depends on the batches: Poisson input (seeded per batch),
    calibration on 40 samples in 5 batches, the early exit's second simulation."""
    return tiny_run(
        data, out, "--batch-size", "8", "--calibration-samples", "40", "--input", "poisson",
        "--early-exit", "-T", "12", "--no-report", *extra,
    )  # fmt: skip


def _run(argv: list[str], processes: int = 1, **env: str) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    launcher += ["-m", "snnconv"]
    return subprocess.run(
        launcher + argv,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _without_timings(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _same_run(a: Path, b: Path) -> None:
    """Two run directories hold the same results (timings aside) and the same arrays."""
    ra = json.loads((a / "results.json").read_text())
    rb = json.loads((b / "results.json").read_text())
    assert _without_timings(ra) == _without_timings(rb)
    xa, xb = load_file(a / "arrays.safetensors"), load_file(b / "arrays.safetensors")
    assert sorted(xa) == sorted(xb)
    for name in xa:
        assert torch.equal(xa[name], xb[name]), name


@pytest.fixture(scope="module")
def single(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: one uninterrupted process."""
    out = tmp_path_factory.mktemp("single") / "run"
    assert main(_argv(data, out)) == 0
    return out


# --- data-parallel --------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_give_what_one_gives(data: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _run(_argv(data, out), processes=2)
    assert done.returncode == 0, done.stderr
    assert "data-parallel: 2 processes (gloo)" in done.stdout
    assert done.stdout.count("wrote ") == 1  # only rank 0 prints and writes
    _same_run(single, out)
    results = json.loads((out / "results.json").read_text())
    assert results["num_samples"] == 53  # no duplicates, no gaps, the short batch too
    reference = json.loads((single / "results.json").read_text())
    # The counts the acceptance names, spelled out: λ per layer, per-step correct
    # top-1/top-5, operations, spike counts.
    assert [layer["scale"] for layer in results["layers"]] == [
        layer["scale"] for layer in reference["layers"]
    ]
    for key in ("top1", "top5", "sops_per_sample", "sops_per_source"):
        assert results["snn"][key] == reference["snn"][key]
    assert results["early_exit"]["mean_steps"] == reference["early_exit"]["mean_steps"]
    assert [layer["mean_rate"] for layer in results["layers"]] == [
        layer["mean_rate"] for layer in reference["layers"]
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.slow
def test_a_bad_out_ends_every_rank_with_exit_2(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "x").write_text("x")
    done = _run(_argv(data, out), processes=2)
    assert done.returncode != 0
    assert done.stderr.count("already holds files") == 1  # said once, by rank 0
    assert "exitcode  : 2" in done.stderr  # torchrun's summary: the ranks exited 2
    assert "exitcode  : 1" not in done.stderr and "internal error" not in done.stderr
    assert not out.joinpath("results.json").exists()


@pytest.mark.slow
def test_a_rank_that_dies_ends_the_job(data: Path, tmp_path: Path) -> None:
    """Rank 1 is killed mid-evaluation; rank 0, waiting for it, is stopped by the launcher
    instead of hanging, and nothing is written."""
    out = tmp_path / "run"
    argv = _argv(data, out, "--checkpoint-every", "1")
    done = _run(argv, processes=2, **{KILL_POINT_VAR: "after-checkpoint-1", KILL_RANK_VAR: "1"})
    assert done.returncode != 0
    assert "Signal 9 (SIGKILL)" in done.stderr or "exitcode  : -9" in done.stderr
    assert not (out / "results.json").exists()


# --- checkpoints and resume -----------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(
    data: Path, single: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    killed = _run(
        _argv(data, out, "--checkpoint-every", "1"), **{KILL_POINT_VAR: "after-checkpoint-3"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint"]  # no partial results
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == [
        "rank0-of-1.safetensors",
        "run.json",
    ]
    refused = _run(_argv(data, out))
    assert refused.returncode == 2 and "--resume to continue it" in refused.stderr
    other = _run(_argv(data, out, "--resume", "-T", "13"))  # not the same run
    assert other.returncode == 2
    assert "different run" in other.stderr and "-T" not in other.stdout
    resumed = _run(_argv(data, out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed: 3 batches (24 samples) came from the checkpoint" in resumed.stdout
    _same_run(single, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in single.iterdir())
    again = _run(_argv(data, out, "--resume"))
    assert again.returncode == 2 and "nothing to resume" in again.stderr


@pytest.mark.slow
def test_a_killed_data_parallel_run_resumes_with_the_same_processes(
    data: Path, single: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = _argv(data, out, "--checkpoint-every", "1")
    killed = _run(argv, processes=2, **{KILL_POINT_VAR: "after-checkpoint-2"})
    assert killed.returncode != 0
    assert not (out / "results.json").exists()
    one = _run(_argv(data, out, "--resume"))
    assert one.returncode == 2 and "world_size: checkpoint 2, now 1" in one.stderr
    resumed = _run(_argv(data, out, "--resume"), processes=2)
    assert resumed.returncode == 0, resumed.stderr
    _same_run(single, out)


def test_resume_without_a_checkpoint_starts_from_the_beginning(
    data: Path, single: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert main(_argv(data, out, "--resume")) == 0
    _same_run(single, out)


def test_a_damaged_checkpoint_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    first = Checkpoint(folder, every=1, fingerprint={"model": "m"})
    first.save(lambda: {"n": torch.arange(3)}, {"timesteps": 4})
    assert _unflatten(*_roundtrip({"n": torch.arange(3)}))["n"].tolist() == [0, 1, 2]
    again = Checkpoint(folder, fingerprint={"model": "m"}, resume=True)
    assert again.restore({"timesteps": 4})["n"].tolist() == [0, 1, 2]
    with pytest.raises(ConfigError, match=r"different run \(timesteps: checkpoint 4, now 5\)"):
        again.restore({"timesteps": 5})
    with pytest.raises(ConfigError, match=r"model: checkpoint \"m\", now \"n\""):
        Checkpoint(folder, fingerprint={"model": "n"}, resume=True).verify()
    (folder / "rank0-of-1.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"damaged.*--overwrite"):
        again.restore({"timesteps": 4})
    assert Checkpoint(folder, fingerprint={"model": "m"}).restore({"timesteps": 4}) is None


def _roundtrip(state: dict) -> tuple[object, dict]:
    tensors: dict = {}
    return _flatten(state, tensors), tensors


def test_checkpoint_every_accepts_batches_and_times() -> None:
    assert parse_every("50") == (50, None)
    assert parse_every("90s") == (None, 90.0)
    assert parse_every("10m") == (None, 600.0)
    assert parse_every("1h") == (None, 3600.0)
    assert parse_every("0") == (None, None)
    for bad in ("ten", "-1", "1.5", "5d"):
        with pytest.raises(ConfigError, match="--checkpoint-every"):
            parse_every(bad)


def test_only_a_checkpoint_lets_resume_into_a_non_empty_out(tmp_path: Path) -> None:
    target = tmp_path / "d"
    (target / "checkpoint").mkdir(parents=True)
    with pytest.raises(OutputError, match=r"checkpoint of an unfinished run.*--resume"):
        OutputDirectory(target).__enter__()
    with OutputDirectory(target, resume=True) as out:
        (out.staging / "results.json").write_text("{}")
        out.commit()
    assert sorted(p.name for p in target.iterdir()) == ["results.json"]  # checkpoint gone
    with pytest.raises(OutputError, match="finished run: there is nothing to resume"):
        OutputDirectory(target, resume=True).__enter__()


# --- --batch-size auto ------------------------------------------------------------------------


def test_auto_batch_is_the_largest_that_fits() -> None:
    from models import tiny_cnn
    from snnconv import Config, convert

    network = convert(tiny_cnn(), torch.rand(16, 1, 8, 8), Config(device="cpu"))
    graph, sources = network.graph, 2 * len(network.spiking_layers) + 1
    per_batch = estimate_memory(graph, 100, 64, 8, sources).total
    chosen = largest_batch(graph, 100, 8, sources, available=2 * per_batch)
    assert chosen == 64  # 64 takes half the memory; 128 would take more
    assert largest_batch(graph, 100, 8, sources, available=2 * per_batch, limit=50) == 50
    assert largest_batch(graph, 100, 8, sources, available=1) == 1


def test_out_of_memory_halves_the_batch_with_a_message() -> None:
    tried, said = [], []

    def trial(batch: int) -> None:
        tried.append(batch)
        if batch > 24:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    assert probe_batch_size(trial, 100, said.append) == 12
    assert tried == [100, 50, 25, 12]
    assert said[0] == "out of memory at batch size 100: trying 50"

    def never(batch: int) -> None:
        raise torch.OutOfMemoryError("injected")

    with pytest.raises(ConfigError, match="one sample runs out of device memory"):
        probe_batch_size(never, 4, said.append)


def test_batch_size_auto_on_the_command_line(data: Path, tmp_path: Path) -> None:
    argv = [a if a != "8" else "auto" for a in _argv(data, tmp_path / "run")]
    assert main(argv) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["batch_size"] == 53  # all the samples fit in one batch
