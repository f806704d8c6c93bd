"""Resumable evaluations: the progress of a long run, saved as it goes.

:func:`snnconv.evaluate` with a :class:`Checkpoint` saves, every ``every``
batches or seconds, what it has added up so far (per-step correct counts,
operations, spike counts, diagnostics, the labels and predictions of the
batches done, and which batches those are) in ``DIR/rank<r>.safetensors``, one
file per rank of a data-parallel run, each written through a temporary file
and renamed. Poisson input needs no saved state: each batch's generator is
seeded by the batch's global index. ``DIR/run.json`` holds the run's
fingerprint (model, data, options, T, world size, the converted thresholds).

Resumed with the same fingerprint, the evaluation skips the batches already
done and gives the result an uninterrupted run would (the same counts; only
the timings differ). A different fingerprint is refused, naming what differs.

The files hold tensors (safetensors) and JSON only: nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from snnconv import distributed
from snnconv.errors import ConfigError
from snnconv.outputs import CHECKPOINT_DIR, atomic_write, atomic_write_bytes, kill_point

__all__ = ["CHECKPOINT_DIR", "Checkpoint", "file_digest", "parse_every"]

_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|min)?\s*$")


def parse_every(text: str | int | None) -> tuple[int | None, float | None]:
    """``--checkpoint-every``: ``N`` batches, or ``Ns``/``Nm``/``Nh`` (seconds, minutes,
    hours); ``0`` or ``off``: never. Returns ``(batches, seconds)``, one of them None."""
    if text is None or str(text).strip().lower() in ("0", "off", "never"):
        return None, None
    match = _EVERY.match(str(text).lower())
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(
            f"--checkpoint-every {text!r}: give a number of batches (e.g. 50) or a time "
            "(e.g. 90s, 10m, 1h), or 0 for none"
        )
    value, unit = float(match.group(1)), match.group(2)
    if unit is None:
        if value != int(value):
            raise ConfigError(f"--checkpoint-every {text!r}: a number of batches is whole")
        return int(value), None
    return None, value * {"s": 1, "m": 60, "min": 60, "h": 3600}[unit]


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file (or, for a directory, of its files' names and contents)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        with open(f, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# --- nested states as safetensors + JSON -----------------------------------------------------


def _flatten(value: Any, tensors: dict[str, Tensor]) -> Any:
    """JSON for ``value`` with every tensor replaced by ``{"tensor": key}`` (kept aside)."""
    if isinstance(value, Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous()
        return {"tensor": key}
    if isinstance(value, dict):
        return {"dict": [[k, _flatten(v, tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"list": [_flatten(v, tensors) for v in value]}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return {"value": value}


def _unflatten(tree: Any, tensors: dict[str, Tensor]) -> Any:
    if "tensor" in tree:
        return tensors[tree["tensor"]]
    if "dict" in tree:
        return {k: _unflatten(v, tensors) for k, v in tree["dict"]}
    if "list" in tree:
        return [_unflatten(v, tensors) for v in tree["list"]]
    if "float" in tree:
        return float(tree["float"])
    return tree["value"]


class Checkpoint:
    """Where and how often an evaluation saves its progress, and whether it resumes.

    Args:
        directory: The checkpoint's folder (``DIR/checkpoint`` for a run directory).
        every: ``N`` batches, or a time such as ``"90s"``, ``"10m"``, ``"1h"``
            (see :func:`parse_every`); ``0``: save only when asked.
        fingerprint: What must match for a resume (JSON-ready); the thresholds of
            the converted network are added by the evaluation.
        resume: Continue from the files in ``directory`` where they exist.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        every: str | int | None = "10m",
        fingerprint: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.batches, self.seconds = parse_every(every)
        self.fingerprint = dict(fingerprint or {})
        self.resume = resume
        self.saved = 0
        #: (batches, samples) this rank took from the checkpoint when it resumed.
        self.restored = (0, 0)
        self._last_time = time.monotonic()
        self._since = 0

    @property
    def _rank_file(self) -> Path:
        w = distributed.world()
        return self.directory / f"rank{w.rank}-of-{w.size}.safetensors"

    @property
    def _run_file(self) -> Path:
        return self.directory / "run.json"

    def _full_fingerprint(self, extra: dict[str, Any]) -> dict[str, Any]:
        w = distributed.world()
        return json.loads(json.dumps({**self.fingerprint, **extra, "world_size": w.size}))

    def _saved_fingerprint(self) -> dict[str, Any] | None:
        if not self.resume or not self._run_file.is_file():
            return None
        try:
            return dict(json.loads(self._run_file.read_text())["fingerprint"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"the checkpoint {self._run_file} cannot be read ({error}); start over with "
                "--overwrite"
            ) from None

    def _compare(self, mine: dict[str, Any], theirs: dict[str, Any], keys: set[str]) -> None:
        differ = sorted(k for k in keys if mine.get(k) != theirs.get(k))
        if differ:
            shown = "; ".join(
                f"{k}: checkpoint {_short(theirs.get(k))}, now {_short(mine.get(k))}"
                for k in differ
            )
            raise ConfigError(
                f"--resume: the checkpoint in {self.directory} is of a different run ({shown}). "
                "Resume with the same model, data, options and number of processes, or start "
                "over with --overwrite."
            )

    def verify(self) -> None:
        """Refuse, before any work, a resume whose model, data, options or number of
        processes differ from the checkpoint's (what the caller's fingerprint holds).

        Raises:
            ConfigError: Naming what differs.
        """
        theirs = self._saved_fingerprint()
        if theirs is not None:
            mine = self._full_fingerprint({})
            self._compare(mine, theirs, set(mine))

    def restore(self, extra: dict[str, Any]) -> dict[str, Any] | None:
        """The state saved by this rank, or None (nothing saved, or not resuming).

        Raises:
            ConfigError: The checkpoint was made by a different run (the keys that
                differ are named) or its files are damaged.
        """
        theirs = self._saved_fingerprint()
        if theirs is None:
            return None
        mine = self._full_fingerprint(extra)
        self._compare(mine, theirs, set(mine) | set(theirs))
        if not self._rank_file.is_file():
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        try:
            tensors = load_file(str(self._rank_file))
            with safe_open(str(self._rank_file), framework="pt") as handle:
                meta = handle.metadata() or {}
            return _unflatten(json.loads(meta["state"]), tensors)  # type: ignore[no-any-return]
        except (OSError, SafetensorError, KeyError, ValueError) as error:
            raise ConfigError(
                f"the checkpoint {self._rank_file} is damaged ({error}); start over with "
                "--overwrite"
            ) from None

    def saved_option(self, name: str) -> Any:
        """An evaluation option of the checkpoint being resumed (None when not resuming or
        nothing was saved)."""
        theirs = self._saved_fingerprint()
        try:
            return theirs["evaluation"]["config"][name] if theirs is not None else None
        except (KeyError, TypeError):
            return None

    def due(self) -> bool:
        """Count one more batch done; whether a save is due now."""
        self._since += 1
        if self.batches is not None and self._since >= self.batches:
            return True
        return self.seconds is not None and time.monotonic() - self._last_time >= self.seconds

    def save(self, state: Callable[[], dict[str, Any]], extra: dict[str, Any]) -> None:
        """Write this rank's state (and, on rank 0, the run's fingerprint) atomically."""
        from safetensors.torch import save_file

        self.directory.mkdir(parents=True, exist_ok=True)
        if distributed.is_main() and self.saved == 0:
            record = {"fingerprint": self._full_fingerprint(extra), "format": 1}
            atomic_write_bytes(self._run_file, json.dumps(record, indent=1).encode())
        tensors: dict[str, Tensor] = {}
        tree = _flatten(state(), tensors)
        atomic_write(
            self._rank_file,
            lambda tmp: save_file(tensors, str(tmp), metadata={"state": json.dumps(tree)}),
        )
        self.saved += 1
        self._since = 0
        self._last_time = time.monotonic()
        kill_point(f"after-checkpoint-{self.saved}")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
