"""``report.html``: one self-contained page (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from snnconv.outputs import atomic_write_bytes
from snnconv.report.plots import all_figures
from snnconv.results import TABLE_STEPS, load_results

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td.name, th.name { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
.warning { color: #8a4b00; }
.muted { color: #666; font-size: 0.9em; }
"""

# Marks the page once every figure has decoded (read back by the browser test).
_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.querySelectorAll("figure img");
  var ok = 0;
  images.forEach(function (img) { if (img.complete && img.naturalWidth > 0) { ok += 1; } });
  document.body.setAttribute("data-figures-loaded", String(ok));
});
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return "–"
    if isinstance(value, (int, float)):
        if abs(value) >= 1e3:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return _esc(value)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.2f} %"


def _pairs(rows: list[list[str]]) -> str:
    """A two-column key/value table without a header row."""
    body = "".join(f'<tr><th class="name">{_esc(k)}</th><td>{v}</td></tr>' for k, v in rows)
    return f"<table><tbody>{body}</tbody></table>"


def _table(header: list[str], rows: list[list[str]], names: int = 1) -> str:
    head = "".join(
        f'<th class="name">{_esc(h)}</th>' if i < names else f"<th>{_esc(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="name">{cell}</td>' if i < names else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary(doc: dict[str, Any]) -> str:
    snn, ann = doc["snn"], doc["ann"]
    cal = doc.get("calibration") or {}
    rows = [
        ["model", _esc(doc.get("model", ""))],
        ["dataset", f"{_esc(doc.get('dataset', ''))} ({doc.get('num_samples', '?')} samples)"],
        [
            "calibration",
            f"{_esc(cal.get('dataset', '–'))} {_esc(cal.get('split', ''))}, "
            f"{_esc(cal.get('num_samples', '–'))} samples, seed {_esc(cal.get('seed', '–'))}",
        ],
        ["time steps T", _esc(snn.get("timesteps"))],
        ["ANN top-1", f"{_pct(ann['top1'])} ± {100 * ann.get('top1_stderr', 0):.2f}"],
        ["SNN top-1 at T", _pct(snn["top1"][-1] if snn.get("top1") else None)],
        ["snnconv", _esc(doc.get("version", ""))],
    ]
    original = doc.get("ann_original")
    if original:
        rows.insert(
            5,
            [
                "original ANN top-1",
                f"{_pct(original.get('top1'))} (before fine-tuning with QCFS, "
                f"L = {_esc(original.get('levels'))}; the ANN above is the fine-tuned one)",
            ],
        )
    return _pairs(rows)


def _accuracy(doc: dict[str, Any]) -> str:
    top1 = doc["snn"].get("top1") or []
    top5 = doc["snn"].get("top5") or []
    sops = doc["snn"].get("sops_per_sample") or []
    input_macs = float(doc["snn"].get("input_macs_per_sample", 0.0))
    steps = [t for t in TABLE_STEPS if t <= len(top1)]
    if len(top1) not in steps:
        steps.append(len(top1))
    ann = doc["ann"]
    header = ["t", "SNN top-1", "SNN top-5", "gap to ANN (points)"]
    if sops:
        header += ["ops per sample", "× ANN MACs"]
    rows = []
    for t in steps:
        row = [
            str(t),
            _pct(top1[t - 1]),
            _pct(top5[t - 1]) if len(top5) >= t else "–",
            f"{100 * (ann['top1'] - top1[t - 1]):.2f}",
        ]
        if sops:
            ops = input_macs + sops[t - 1]
            macs = ann.get("macs_per_sample") or 0
            row += [_num(ops), f"{ops / macs:.3f}" if macs else "–"]
        rows.append(row)
    rows.append(
        ["ANN", _pct(ann["top1"]), _pct(ann.get("top5")), "0.00"]
        + ([_num(ann.get("macs_per_sample")), "1.000"] if sops else [])
    )
    return _table(header, rows)


def _operations(doc: dict[str, Any]) -> str:
    ann, snn = doc["ann"], doc["snn"]
    if not snn.get("sops_per_sample"):
        return "<p class='muted'>No operation counts were recorded.</p>"
    updates = snn.get("neuron_updates_per_sample") or {}
    rows = [
        ["ANN MACs per sample", _num(ann.get("macs_per_sample"))],
        ["ANN other operations per sample (pooling, adds)", _num(ann.get("other_ops_per_sample"))],
        ["SNN input MACs per sample (one-off analog pass)", _num(snn.get("input_macs_per_sample"))],
        [f"SNN SOPs per sample over T = {snn['timesteps']}", _num(snn["sops_per_sample"][-1])],
        [
            "SNN neuron updates per sample (membrane / bias / readout)",
            " / ".join(_num(updates.get(k)) for k in ("membrane", "bias", "readout")),
        ],
    ]
    parts = [_pairs(rows)]
    marks = doc.get("milestones") or {}
    if marks:
        mrows = []
        for delta, point in (marks.get("within") or {}).items():
            mrows.append(_milestone_row(f"first within {delta} point(s) of the ANN", point))
        for fraction, point in (marks.get("best_at_ann_ops") or {}).items():
            mrows.append(_milestone_row(f"best error within {fraction}× the ANN's MACs", point))
        parts.append(_table(["milestone", "step", "ops per sample", "× ANN MACs", "error"], mrows))
    energy = doc.get("energy") or {}
    if energy:
        erows = [
            ["energy per sample, ANN", f"{_num(energy['ann_pj_per_sample'] / 1e6)} µJ"],
            ["energy per sample, SNN (T steps)", f"{_num(energy['snn_pj_per_sample'] / 1e6)} µJ"],
            ["SNN / ANN", _num(energy.get("snn_to_ann"))],
        ]
        parts.append(_pairs(erows))
        parts.append(
            f"<p class='muted'>Energy = SOPs × {energy['e_ac_pj']} pJ + MACs × "
            f"{energy['e_mac_pj']} pJ ({_esc(energy.get('reference', ''))}); memory access "
            "is not modelled.</p>"
        )
    return "".join(parts)


def _milestone_row(label: str, point: dict[str, Any] | None) -> list[str]:
    if point is None:
        return [_esc(label), "not reached", "–", "–", "–"]
    return [
        _esc(label),
        str(point["step"]),
        _num(point["ops"]),
        _num(point.get("ops_ratio")),
        _pct(point["error"]),
    ]


def _layers(doc: dict[str, Any]) -> str:
    layers = doc.get("layers") or []
    if not layers:
        return "<p class='muted'>No spiking layers.</p>"
    header = [
        "layer",
        "op",
        "neurons",
        "λ",
        "mean rate",
        "silent",
        "saturated",
        "correlation",
        "mean fan-out",
        "SOPs / sample",
    ]
    rows = [
        [
            _esc(layer["name"]),
            _esc(layer.get("op", "")),
            _num(layer.get("neurons")),
            _num(layer.get("scale")),
            _num(layer.get("mean_rate")),
            _num(layer.get("silent_fraction")),
            _num(layer.get("saturated_fraction")),
            _num(layer.get("correlation"), 4),
            _num(layer.get("fan_out_mean")),
            _num(layer.get("sops_per_sample")),
        ]
        for layer in layers
    ]
    return _table(header, rows, names=2)


def _low_latency(record: dict[str, Any]) -> str:
    """What --target-timesteps chose, and the candidates it compared."""
    chosen = ", ".join(f"{k} = {v}" for k, v in record["techniques"].items())
    rows = [
        [c["name"], _pct(c["agreement"]), _num(c["events_per_sample"], 0)]
        for c in record["candidates"]
    ]
    intro = (
        f"<p>Tuned for T = {record['target_timesteps']} in {_num(record['seconds'], 3)} s on "
        f"the calibration data: <b>{_esc(record['chosen'])}</b> ({_esc(chosen)}). Agreement "
        "with the ANN at step T on the held-out half of the calibration samples:</p>"
    )
    return intro + _table(["candidate", "agreement", "events per sample"], rows)


def _early_exit(run: dict[str, Any], doc: dict[str, Any]) -> str:
    """The early-exit simulation against the full run."""
    criterion = run["criterion"]
    macs = (doc.get("ann") or {}).get("macs_per_sample")
    ops = run.get("ops_per_sample")
    tuned = " (tuned on the calibration data)" if criterion["tuned"] else ""
    rule = f"{criterion['rule']}: patience {criterion['patience']}, margin "
    ratio = f" ({_num(ops / macs)}× the ANN's MACs)" if ops and macs else ""
    rows = [
        ["rule", rule + _num(criterion["margin"]) + tuned],
        ["top-1 / top-5", f"{_pct(run['top1'])} / {_pct(run['top5'])}"],
        ["mean steps", f"{_num(run['mean_steps'])} of {doc['snn']['timesteps']}"],
        ["operations per sample", _num(ops, 0) + ratio],
        ["simulation time", f"{_num(run['seconds'])} s"],
    ]
    return _pairs(rows)


def _config(doc: dict[str, Any]) -> str:
    config = doc.get("config") or {}
    rows = [[_esc(k), _esc(v)] for k, v in config.items()]
    return _table(["option", "value"], rows)


def _timing(doc: dict[str, Any]) -> str:
    timing = doc.get("timing") or {}
    rows = [
        ["wall time", f"{timing.get('seconds', 0):.1f} s"],
        ["device", _esc(timing.get("device", ""))],
        ["samples per second", _num(timing.get("samples_per_second"))],
    ]
    return _pairs(rows)


def build_report(document: dict[str, Any], arrays: dict[str, Tensor]) -> str:
    """The HTML text of the report for one run.

    Args:
        document: The ``results.json`` document.
        arrays: The tensors of ``arrays.safetensors`` (may be empty: figures that
            need them are left out).

    Raises:
        ReportError: matplotlib is not installed.
    """
    figures = all_figures(document, arrays)
    title = f"snnconv report: {document.get('model', '')} on {document.get('dataset', '')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        "<p class='muted'>What the conversion costs and gains: accuracy at every time step, "
        "exact operation counts, energy estimate and per-layer diagnostics.</p>",
    ]
    warnings = document.get("warnings") or []
    if warnings:
        parts.append("<h2>Warnings</h2><ul>")
        parts += [f"<li class='warning'>{_esc(w)}</li>" for w in warnings]
        parts.append("</ul>")
    parts += ["<h2>Summary</h2>", _summary(document)]
    parts += ["<h2>Accuracy</h2>", _accuracy(document)]
    parts += ["<h2>Operations and energy</h2>", _operations(document)]
    low_latency = (document.get("conversion") or {}).get("low_latency")
    if low_latency:
        parts += ["<h2>Low latency</h2>", _low_latency(low_latency)]
    if document.get("early_exit"):
        parts += ["<h2>Early exit</h2>", _early_exit(document["early_exit"], document)]
    parts.append("<h2>Figures</h2>")
    for caption, png in figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>"
        )
    parts += ["<h2>Per-layer diagnostics</h2>", _layers(document)]
    parts += ["<h2>Configuration</h2>", _config(document)]
    parts += ["<h2>Timing</h2>", _timing(document)]
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def write_report(
    directory: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> Path:
    """Rebuild ``report.html`` from a run directory's ``results.json`` and arrays.

    Args:
        directory: A directory written by ``snnconv run``/``evaluate`` (or
            :meth:`EvaluationResult.save`).
        out: Where to write the page (default: ``directory/report.html``);
            written to a temporary file and renamed into place.

    Raises:
        ResultsError: ``results.json`` is missing or unreadable.
        ReportError: matplotlib is not installed.
    """
    document, arrays = load_results(directory)
    page = build_report(document, arrays)
    path = Path(out) if out is not None else Path(directory) / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, page.encode("utf-8"))
    return path


__all__ = ["REPORT_FILE", "build_report", "write_report"]
