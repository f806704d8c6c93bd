"""Wall time by phase of a run: where the seconds outside the simulation go.

The command line and the library mark their phases (``import``, ``load``,
``data``, ``capture``, ``calibration``, ``conversion``, ``counting``, ``ann``,
``simulation``, ``results``, ``early exit``, ``saving``, ``report``) with
:func:`phase`; the totals accumulate per process. ``SNNCONV_PHASES=FILE`` makes
the ``snnconv`` command write them as JSON when it ends
(``benchmarks/run_phases.py`` reads them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["phase", "reset", "times"]

_totals: dict[str, float] = {}
#: The phases open now: [name, start, seconds of the phases nested in it].
_open: list[list] = []


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to phase ``name``, less the time of the
    phases nested in it (which count as themselves): the phases add up to the whole."""
    entry: list = [name, time.perf_counter(), 0.0]
    _open.append(entry)
    try:
        yield
    finally:
        _open.pop()
        elapsed = time.perf_counter() - entry[1]
        _totals[name] = _totals.get(name, 0.0) + elapsed - entry[2]
        if _open:
            _open[-1][2] += elapsed


def times() -> dict[str, float]:
    """The seconds spent in each phase so far, in the order the phases first ran."""
    return dict(_totals)


def reset() -> None:
    """Forget the phases measured so far."""
    _totals.clear()
    _open.clear()
