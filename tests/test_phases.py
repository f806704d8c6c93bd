"""Phase timing: nested phases count once, and the command line writes them on request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snnconv import phases
from snnconv.cli import main

CHECKPOINT = (
    Path(__file__).parent.parent / "src/snnconv/models/weights/lenet_avg_fmnist.safetensors"
)


class Clock:
    """A fake perf_counter moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nested_phases_are_exclusive_and_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(phases.time, "perf_counter", clock)
    phases.reset()
    with phases.phase("outer"):
        clock.now += 1.0
        with phases.phase("inner"):
            clock.now += 2.0
            with phases.phase("innermost"):
                clock.now += 4.0
        clock.now += 8.0
        with phases.phase("inner"):
            clock.now += 16.0
    with phases.phase("outer"):
        clock.now += 32.0
    assert phases.times() == {"outer": 41.0, "inner": 18.0, "innermost": 4.0}
    assert sum(phases.times().values()) == clock.now
    phases.reset()
    assert phases.times() == {}


def test_a_run_writes_its_phases_on_request(tmp_path: Path, monkeypatch, capsys) -> None:
    record = tmp_path / "phases.json"
    monkeypatch.setenv("SNNCONV_PHASES", str(record))
    phases.reset()
    code = main(
        [
            "run", "snnconv.zoo:lenet", "--weights", str(CHECKPOINT), "--dataset",
            "fashion-mnist", "-T", "2", "--limit", "32", "--calibration-samples", "100",
            "--out", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    measured = json.loads(record.read_text())
    names = set(measured["phases"])
    expected = {"import", "load", "data", "capture", "calibration", "conversion", "counting"}
    assert expected | {"ann", "simulation", "results", "saving", "report"} <= names
    assert all(seconds >= 0 for seconds in measured["phases"].values())
    assert sum(measured["phases"].values()) <= measured["main_seconds"]
