"""results.json: the standard error, strict JSON (no NaN), and the values it reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from snnconv.results import EvaluationResult


def _result(**changes: object) -> EvaluationResult:
    fields: dict[str, object] = {
        "ann_top1": 0.9,
        "ann_top5": 0.99,
        "snn_top1": [0.5, 0.88],
        "snn_top5": [0.9, 0.99],
        "num_samples": 100,
        "timesteps": 2,
        "seconds": 2.0,
        "device": "cpu",
        "config": {},
    }
    fields.update(changes)
    return EvaluationResult(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("p", "n", "expected"),
    [(0.9, 100, 0.03), (0.5, 10000, 0.005), (1.0, 50, 0.0), (0.8, 1, 0.4)],
)
def test_top1_standard_error_is_sqrt_p_q_over_n(p: float, n: int, expected: float) -> None:
    result = _result(ann_top1=p, num_samples=n)
    assert result.top1_stderr == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert result.to_dict()["ann"]["top1_stderr"] == pytest.approx(expected, rel=1e-12)


def test_results_json_is_strict_json(tmp_path: Path) -> None:
    """A layer that never fired has an undefined correlation: written as null, not NaN."""
    layers = [
        {"name": "relu", "mean_rate": 0.0, "correlation": math.nan, "silent_fraction": 1.0},
        {"name": "relu_1", "mean_rate": 0.1, "correlation": 0.97, "silent_fraction": math.inf},
    ]
    path = _result(layers=layers).to_json(tmp_path / "results.json")

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    document = json.loads(path.read_text(), parse_constant=refuse)
    assert document["layers"][0]["correlation"] is None
    assert document["layers"][1]["silent_fraction"] is None
    assert document["layers"][1]["correlation"] == 0.97
    assert document["timing"]["samples_per_second"] == 50.0
