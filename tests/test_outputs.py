"""Output directories: a run's files appear together or not at all, one run at a time.

The end-to-end cases run the real command line in subprocesses: two runs at once on one
directory, and a run killed with SIGKILL between any two of its writes.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import snnconv
from models import tiny_npz, tiny_run
from snnconv.cli import main
from snnconv.outputs import (
    KILL_POINT_VAR,
    OutputDirectory,
    OutputError,
    atomic_write_bytes,
    locked,
)

ROOT = Path(__file__).resolve().parents[1]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the directory protocol, in process ---------------------------------------------------------


def test_files_appear_only_at_commit(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "d"
    with OutputDirectory(target) as out:
        (out.staging / "a.txt").write_text("a")
        assert not target.exists()  # nothing visible before the commit
        out.commit()
    assert (target / "a.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.joinpath("runs").iterdir()) == ["d"]  # no leftovers


def test_a_failed_run_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "d"
    with pytest.raises(RuntimeError), OutputDirectory(target) as out:
        (out.staging / "a.txt").write_text("a")
        raise RuntimeError("the run failed")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_unless_overwritten_whole(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(OutputError, match=r"already holds files.*--overwrite"):
        OutputDirectory(target).__enter__()
    with OutputDirectory(target, overwrite=True) as out:
        (out.staging / "new.txt").write_text("new")
        out.commit()
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]  # replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with OutputDirectory(empty) as out:  # an empty directory is no run to protect
        (out.staging / "x").write_text("x")
        out.commit()
    assert (empty / "x").is_file()


@pytest.mark.parametrize("case", ["file", "under-a-file", "dangling-link"])
def test_unusable_paths_are_refused_before_any_work(tmp_path: Path, case: str) -> None:
    blocker = tmp_path / "blocker"
    if case == "dangling-link":
        blocker.symlink_to(tmp_path / "nowhere")
        target = blocker
    else:
        blocker.write_text("x")
        target = blocker if case == "file" else blocker / "sub" / "d"
    with pytest.raises(OutputError, match=str(blocker)):
        OutputDirectory(target).__enter__()
    assert blocker.is_symlink() or blocker.read_text() == "x"


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    target = tmp_path / "d"
    with OutputDirectory(target):
        with pytest.raises(OutputError, match="being written by another snnconv process"):
            OutputDirectory(target).__enter__()
        with pytest.raises(OutputError, match="being written"), locked(target):
            pass
    with OutputDirectory(target) as again:  # released: the next run goes ahead
        again.commit()
    assert not (tmp_path / ".d.lock").exists()


def test_an_interrupted_swap_is_restored_by_the_next_writer(tmp_path: Path) -> None:
    target = tmp_path / "d"
    previous = tmp_path / ".d.previous"
    previous.mkdir()
    (previous / "results.json").write_text("{}")  # the old run, moved aside; d is absent
    with OutputDirectory(target, overwrite=True) as out:
        assert out.restored and (target / "results.json").is_file()
        out.commit()
    assert not previous.exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_modes_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        target = tmp_path / "d"
        with OutputDirectory(target) as out:
            atomic_write_bytes(out.staging / "f.bin", b"data")
            out.commit()
        assert _mode(target / "f.bin") == 0o666 & ~umask
        assert _mode(target) == 0o777 & ~umask
        existing = tmp_path / "kept.bin"
        existing.write_bytes(b"")
        existing.chmod(0o640)
        atomic_write_bytes(existing, b"new")  # an overwritten file keeps its mode
        assert _mode(existing) == 0o640
    finally:
        os.umask(old)


# --- the command line, in real processes ------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small labelled data set for ``tests.models:tiny_cnn`` (8×8, 3 classes)."""
    return tiny_npz(tmp_path_factory.mktemp("data") / "d.npz", 48)


def _argv(data: Path, out: Path, *extra: str) -> list[str]:
    return tiny_run(data, out, *extra)


def _process(argv: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "snnconv", *argv],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _whole_run(directory: Path) -> dict:
    """The run in ``directory``, checked to be one run: its network loads (checksums) and
    was saved by the run that wrote the results (same options, same report)."""
    results = json.loads((directory / "results.json").read_text())
    network = snnconv.load(directory)
    assert network.config.to_dict() == results["config"]
    assert network.info["model"] == results["model"]
    assert (directory / "arrays.safetensors").is_file()
    report = (directory / "report.html").read_text()
    assert f"SNN SOPs per sample over T = {results['snn']['timesteps']}<" in report
    return results


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["after-results", "after-network", "after-report", "before-commit", "inside-swap"]
)
def test_a_killed_overwrite_leaves_one_whole_run(data: Path, tmp_path: Path, point: str) -> None:
    out = tmp_path / "d"
    assert main(_argv(data, out, "-T", "3")) == 0
    old = _whole_run(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    killed = _process(_argv(data, out, "-T", "5", "--overwrite"), **{KILL_POINT_VAR: point})
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    if point == "inside-swap":
        previous = tmp_path / ".d.previous"
        assert not out.exists() and previous.is_dir()  # the old run whole, at a named sibling
        assert {p.name: p.read_bytes() for p in previous.iterdir()} == before
        assert main(["report", str(out)]) == 0  # the next command restores it
        assert not previous.exists()
    assert _whole_run(out)["snn"]["timesteps"] == old["snn"]["timesteps"] == 3
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "report.html"} == {
        k: v for k, v in before.items() if k != "report.html"
    }
    assert main(_argv(data, out, "-T", "5", "--overwrite")) == 0  # then a run goes through
    assert _whole_run(out)["snn"]["timesteps"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no staging left behind


@pytest.mark.slow
def test_a_killed_first_run_leaves_nothing(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "d"
    killed = _process(_argv(data, out, "-T", "3"), **{KILL_POINT_VAR: "after-network"})
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()
    assert main(_argv(data, out, "-T", "3")) == 0  # the stale staging is cleared
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


@pytest.mark.slow
def test_two_runs_at_once_on_one_directory(data: Path, tmp_path: Path) -> None:
    """One runs, the other is refused at once (exit 2); the directory holds one whole run."""
    out = tmp_path / "d"
    first = _process(_argv(data, out, "-T", "400"))
    deadline = time.monotonic() + 120
    while not (tmp_path / ".d.lock").exists():  # the first holds the lock
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = _process(_argv(data, out, "-T", "7"))
    _, err = second.communicate(timeout=300)
    assert second.returncode == 2, err
    assert "being written by another snnconv process" in " ".join(err.split())
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert _whole_run(out)["snn"]["timesteps"] == 400

    # started together: exactly one wins, and the directory holds its run whole
    both = [_process(_argv(data, tmp_path / "e", "-T", str(t))) for t in (6, 9)]
    codes = [p.wait(timeout=300) for p in both]
    assert sorted(codes) == [0, 2]
    winner = (6, 9)[codes.index(0)]
    assert _whole_run(tmp_path / "e")["snn"]["timesteps"] == winner
