"""report.html: every figure embedded, rebuilt from saved files, opened in a real browser."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import snnconv
from models import tiny_cnn
from snnconv.cli import main
from snnconv.report import build_report, write_report
from snnconv.results import ARRAYS_FILE, RESULTS_FILE, load_results

pytest.importorskip("matplotlib", reason="the report needs matplotlib (snnconv[report])")

FIGURES = 6
CHROMIUM = Path("/usr/bin/chromium")
IMG = re.compile(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small evaluated network's results.json and arrays, saved like `snnconv run` does."""
    torch.manual_seed(0)
    model = tiny_cnn(classes=10).eval()
    x = torch.rand(48, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"), info={"model": "tiny"})
    result = snnconv.evaluate(snn, TensorDataset(x, y), 32, diagnostics=True)
    result.dataset = "random"
    out = tmp_path_factory.mktemp("run")
    result.save(out)
    write_report(out)
    return out


def _figures(page: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(data) for alt, data in IMG.findall(page)}


def test_results_and_arrays_hold_what_the_report_needs(run_dir: Path) -> None:
    document, arrays = load_results(run_dir)
    ann, snn = document["ann"], document["snn"]
    assert ann["macs_per_sample"] == sum(ann["macs_per_layer"].values()) > 0
    assert ann["other_ops_per_sample"] == sum(ann["other_ops_per_layer"].values())
    assert snn["input_macs_per_sample"] == sum(snn["input_macs_per_layer"].values())
    assert len(snn["sops_per_sample"]) == 32
    energy = document["energy"]
    assert energy["ann_pj_per_sample"] == pytest.approx(energy["e_mac_pj"] * ann["macs_per_sample"])
    assert energy["snn_pj_per_sample"] == pytest.approx(
        energy["e_ac_pj"] * snn["sops_per_sample"][-1]
        + energy["e_mac_pj"] * snn["input_macs_per_sample"]
    )
    layer_names = [layer["name"] for layer in document["layers"]]
    for name in layer_names:
        assert arrays[f"spikes/{name}"].shape == (32,)
        assert arrays[f"sops/{name}"].shape == (32,)
        assert f"scatter/{name}/rate" in arrays
        assert f"histogram/{name}" in arrays
    assert arrays["predictions"].shape == arrays["labels"].shape == (48,)
    # per-step SOPs per source add up to the cumulative total
    total = sum(float(arrays[f"sops/{n}"].sum()) for n in layer_names)
    assert total == pytest.approx(document["snn"]["sops_per_sample"][-1], rel=1e-12)


def test_report_embeds_every_figure_as_png(run_dir: Path) -> None:
    from PIL import Image

    page = (run_dir / "report.html").read_text()
    figures = _figures(page)
    assert list(figures) == [
        "Accuracy vs time step",
        "Error vs operations",
        "Synaptic operations per step",
        "Per-layer correlation and firing rates",
        "Rate vs activation",
        "Activation histograms",
    ]
    for png in figures.values():
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.width >= 300 and image.height >= 200
    assert "http://" not in page and "https://" not in page  # self-contained


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="figures are forked on Linux")
def test_figures_drawn_by_a_child_process_are_the_ones_drawn_here(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two figures are drawn by a forked child; they are byte for byte what this process
    draws, and a child that fails delivers nothing: this process draws them instead."""
    import os

    from snnconv.report import plots

    document, arrays = load_results(run_dir)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    parent, drawn_here = os.getpid(), []
    real = plots.activation_histograms
    failing_child = False

    def histograms(*args: object) -> bytes | None:
        if os.getpid() != parent and failing_child:
            raise RuntimeError("the child fails")
        if os.getpid() == parent:
            drawn_here.append(1)  # a child's calls are not seen here
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(plots, "activation_histograms", histograms)
    forked = plots.all_figures(document, arrays)
    assert drawn_here == []  # drawn by the child
    monkeypatch.setenv("SNNCONV_REPORT_FORK", "0")
    here = plots.all_figures(document, arrays)
    assert drawn_here == [1]
    assert list(forked) == list(here) and len(here) == FIGURES
    assert all(forked[title] == here[title] for title in here)

    monkeypatch.setenv("SNNCONV_REPORT_FORK", "1")
    failing_child = True
    again = plots.all_figures(document, arrays)
    assert drawn_here == [1, 1]  # the child failed: drawn here
    assert again == here


def test_report_command_rebuilds_the_page(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "again.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert (
        _figures(out.read_text()).keys() == _figures((run_dir / "report.html").read_text()).keys()
    )
    # without the arrays, the figures that need them are left out, the rest stays
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / RESULTS_FILE, bare / RESULTS_FILE)
    assert main(["report", str(bare)]) == 0
    assert len(_figures((bare / "report.html").read_text())) == 3


def test_report_of_a_directory_without_results_names_the_file_and_the_fix(
    tmp_path: Path, capsys
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())  # the message is wrapped
    assert "results.json is missing" in err and "snnconv run MODEL" in err
    (tmp_path / RESULTS_FILE).write_text("{not json")
    assert main(["report", str(tmp_path)]) == 2
    assert "not valid JSON" in " ".join(capsys.readouterr().err.split())
    (tmp_path / RESULTS_FILE).write_text(json.dumps({"ann": {}, "snn": {}}))
    (tmp_path / ARRAYS_FILE).write_bytes(b"garbage")
    assert main(["report", str(tmp_path)]) == 2
    assert "cannot read" in " ".join(capsys.readouterr().err.split())


def test_report_without_matplotlib_says_how_to_install(
    run_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    document, arrays = load_results(run_dir)
    with pytest.raises(snnconv.SnnconvError, match=r"snnconv\[report\]"):
        build_report(document, arrays)
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r.html")]) == 2
    assert "pip install" in capsys.readouterr().err


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason="no /usr/bin/chromium to open the report in a real headless browser: "
    "`sudo apt-get install chromium` enables it (`make test` does so where it runs as root)",
)
def test_report_opens_in_headless_chromium_without_errors(run_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    url = (run_dir / "report.html").resolve().as_uri()
    dom = _chromium(
        ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", url],
        tmp_path / "profile-dom",
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    # the page's load handler counts the figures the browser decoded
    assert f'data-figures-loaded="{FIGURES}"' in dom.stdout
    assert dom.stdout.count("<figure>") == FIGURES

    shot = tmp_path / "report.png"
    result = _chromium(
        ["--window-size=1280,5200", f"--screenshot={shot}", url], tmp_path / "profile-shot"
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 5200)
    # every figure is drawn: the page is far from blank, with plot colours (matplotlib's C0
    # blue) in the figures' part of the page
    small = image.resize((128, 520))
    colours = small.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 200
    blue = sum(count for count, (r, g, b) in colours if b > 150 and r < 120 and 90 < g < 160)
    assert blue > 100


def test_run_without_matplotlib_warns_and_still_writes_results(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import numpy as np

    data = tmp_path / "d.npz"
    np.savez(data, x=torch.rand(8, 1, 8, 8).numpy(), y=torch.randint(0, 3, (8,)).numpy())
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "out"
    argv = ["run", "tests.models:tiny_cnn", "--random-weights", "--dataset", f"npz:{data}"]
    argv += ["-T", "4"]
    assert main([*argv, "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "warning: no report.html" in err and "snnconv[report]" in err
    assert (out / RESULTS_FILE).is_file() and (out / ARRAYS_FILE).is_file()
    assert not (out / "report.html").exists()
