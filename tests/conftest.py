"""Shared fixtures: deterministic seeds and both PyTorch import paths."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, settings

from snnconv.importers import import_fx, import_torch
from snnconv.ir import Graph

# No example database: nothing is written into the working tree (.hypothesis/).
settings.register_profile(
    "snnconv",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("snnconv")

ImportFn = Callable[[torch.nn.Module, torch.Tensor], Graph]

#: The two PyTorch import paths every spelling must go through.
IMPORTERS: dict[str, ImportFn] = {"export": import_torch, "fx": import_fx}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """End with one line: how many tests were skipped, why, and what enables them."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    listing = "; ".join(f"{count} × {reason}" for reason, count in reasons.items())
    terminalreporter.write_line(f"skipped {len(skipped)} test(s): {listing}")


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    """Every test starts from the same torch seed."""
    torch.manual_seed(0)


@pytest.fixture(params=sorted(IMPORTERS))
def import_path(request: pytest.FixtureRequest) -> ImportFn:
    """``import_torch`` (torch.export) and ``import_fx`` (the fallback), in turn."""
    return IMPORTERS[request.param]
