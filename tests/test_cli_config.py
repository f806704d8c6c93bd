"""``--config FILE.toml``, ``DIR/config.toml`` and ``--dry-run``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from snnconv.cli import main


@pytest.fixture
def data(tmp_path: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    path = tmp_path / "d.npz"
    np.savez(
        path,
        x=torch.rand(32, 1, 8, 8, generator=generator).numpy(),
        y=(np.arange(32) % 3),
    )
    return path


def _results(directory: Path) -> dict:
    document = json.loads((directory / "results.json").read_text())
    document.pop("timing")
    return document


def _flags(data: Path) -> list[str]:
    return [
        "run",
        "tests.models:tiny_cnn",
        "--random-weights",
        "--dataset",
        f"npz:{data}",
        "-T",
        "6",
        "--percentile",
        "99.0",
        "--v-init",
        "0.5",
        "--reset",
        "zero",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--no-report",
    ]


def _toml(data: Path, **run: object) -> str:
    lines = [
        "[config]",
        "percentile = 99.0",
        "v_init = 0.5",
        'reset = "zero"',
        "batch_size = 16",
        'device = "cpu"',
        "",
        "[run]",
        'model = "tests.models:tiny_cnn"',
        "random_weights = true",
        f'dataset = "npz:{data}"',
        "timesteps = 6",
        "report = false",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in run.items()]
    return "\n".join(lines) + "\n"


def test_a_toml_file_gives_the_same_run_as_the_command_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*_flags(data), "--out", str(tmp_path / "flags")]) == 0
    options = tmp_path / "options.toml"
    options.write_text(_toml(data))
    assert main(["run", "--config", str(options), "--out", str(tmp_path / "file")]) == 0
    assert _results(tmp_path / "file") == _results(tmp_path / "flags")
    written = tomllib.loads((tmp_path / "flags" / "config.toml").read_text())
    assert written["config"]["percentile"] == 99.0 and written["config"]["reset"] == "zero"
    assert written["run"]["timesteps"] == 6 and written["run"]["random_weights"] is True
    assert written == tomllib.loads((tmp_path / "file" / "config.toml").read_text())
    # the run's own config.toml repeats it
    again = tmp_path / "again"
    config = tmp_path / "flags" / "config.toml"
    assert main(["run", "--config", str(config), "--out", str(again)]) == 0
    assert _results(again) == _results(tmp_path / "flags")
    # the command line wins over the file
    shorter = tmp_path / "shorter"
    assert main(["run", "--config", str(options), "-T", "3", "--out", str(shorter)]) == 0
    assert _results(shorter)["snn"]["timesteps"] == 3
    assert _results(shorter)["config"]["percentile"] == 99.0


@pytest.mark.parametrize(
    ("table", "line", "message"),
    [
        ("config", "percentil = 99.0", "[config] percentil is not an option of `snnconv run`"),
        ("config", 'percentile = "high"', "percentile must be a number, got 'high'"),
        ("config", "v_init = 2", "v_init must be in [0, 1)"),
        ("config", 'reset = "sometimes"', "reset must be one of ['subtract', 'zero']"),
        ("run", 'timesteps = "many"', "[run] timesteps = 'many'"),
        ("run", "datasets = 1", "[run] datasets is not an option of `snnconv run`"),
        ("run", "percentile = 99.0", "[run] percentile is not an option"),
        ("extra", "x = 1", "unknown table(s) ['extra']"),
    ],
)
def test_a_bad_key_or_value_names_it(
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    table: str,
    line: str,
    message: str,
) -> None:
    key = line.split("=")[0].strip()
    text = "".join(
        f"{kept}\n" for kept in _toml(data).splitlines() if not kept.startswith(f"{key} =")
    )
    if table == "extra":
        text += f"\n[extra]\n{line}\n"
    else:
        text = text.replace(f"[{table}]\n", f"[{table}]\n{line}\n")
    options = tmp_path / "bad.toml"
    options.write_text(text)
    code = main(["run", "--config", str(options), "--out", str(tmp_path / "out")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and message in err and str(options) in err
    assert not (tmp_path / "out").exists()


def test_required_options_may_come_from_either_place(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "tests.models:tiny_cnn", "--dataset", f"npz:{data}", "--out", "o"])
    assert exit_info.value.code == 2
    assert "--timesteps required (on the command line or in --config's [run])" in (
        capsys.readouterr().err
    )


def test_dry_run_lists_the_flow(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "never"
    assert main(["convert", "model.pt2", "--dry-run", "--percentile", "99.5"]) == 0
    listing = capsys.readouterr().out
    lines = [line.split(". ", 1)[1] for line in listing.splitlines()[1:]]
    assert lines[:6] == [
        "infer_shapes",
        "fold_batchnorm",
        "remove_dropout",
        "fold_replicating_pool",
        "remove_output_softmax",
        "infer_shapes",
    ]
    assert lines[6] == "collect_statistics(percentile=99.5, pool_aware=True, batch_size=256)"
    assert lines[7] == "normalize"
    assert lines[8].startswith("to_spiking(reset=subtract, v_init=0.0,")
    argv = ["run", "m.pt2", "--dry-run", "--maxpool", "average", "--out", str(out)]
    assert main(argv) == 0
    assert "replace_maxpool" in capsys.readouterr().out
    assert not out.exists()
