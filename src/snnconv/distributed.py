"""Data-parallel runs on ``torch.distributed``: ranks, shards and the merging of results.

``torchrun --nproc-per-node N -m snnconv run ...`` starts N processes with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous in their environment;
:func:`init_from_env` joins them into one process group (gloo on the CPU, NCCL
with one GPU per local rank). Where a process group is initialised (by the
command line or by the caller), the library runs data-parallel by itself:

* the percentile pass of the calibration (:mod:`snnconv.passes.calibrate`)
  reads only this rank's batches and all-reduces its counts, maxima and
  histograms, so every rank finds exactly the λ one process would;
* :func:`snnconv.evaluate` simulates the batches ``i ≡ rank (mod N)``, each
  under its global index (Poisson input is seeded by it), and merges every
  tally (per-step correct counts, operations, spike counts, diagnostics,
  predictions in batch order) so that every rank returns the same result.

Work that needs the whole calibration set at once (the low-latency tuning of
``target_timesteps``, the early-exit rule) runs identically on every rank.
With one process (no group initialised) every function here is the identity. The
module imports torch only when it needs it, so that the command line can ask
:func:`in_launcher` before loading it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, TypeVar

from snnconv.errors import ConfigError

__all__ = [
    "TIMEOUT_VAR",
    "World",
    "all_gather",
    "broadcast",
    "in_launcher",
    "init_from_env",
    "is_main",
    "shard",
    "world",
]

T = TypeVar("T")

#: Environment variable: seconds a rank waits for the others in a collective (default
#: 1800) before the job ends with a timeout error instead of hanging.
TIMEOUT_VAR = "SNNCONV_DIST_TIMEOUT"


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` (``local_rank`` on its node)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def parallel(self) -> bool:
        """More than one process."""
        return self.size > 1


def world() -> World:
    """The process group this process belongs to (rank 0 of 1 where none is initialised)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(
        rank=dist.get_rank(),
        size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        backend=str(dist.get_backend()),
    )


def is_main() -> bool:
    """Rank 0 (or the only process): the one that checks, writes and prints."""
    return world().rank == 0


def shard(index: int) -> bool:
    """Whether batch ``index`` is this rank's (``index ≡ rank (mod size)``)."""
    w = world()
    return index % w.size == w.rank


def in_launcher() -> bool:
    """Whether a launcher (torchrun, or ``srun torchrun``) started this process as one of
    several: ``WORLD_SIZE`` > 1 in the environment."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def init_from_env(device: str = "auto") -> World:
    """Join the process group the launcher described in the environment.

    The backend is NCCL when the run uses CUDA (each process then takes the GPU of
    its ``LOCAL_RANK``) and gloo otherwise. The timeout of collectives is
    ``$SNNCONV_DIST_TIMEOUT`` seconds (default 1800): a rank that waits longer for
    the others ends the job with an error rather than hanging.

    Args:
        device: The run's ``--device`` (``auto``, ``cpu``, ``cuda``...).

    Returns:
        The :class:`World` joined (rank 0 of 1 outside a launcher).

    Raises:
        ConfigError: The environment is incomplete or the rendezvous fails.
    """
    import torch
    import torch.distributed as dist

    if not in_launcher():
        return world()
    if dist.is_initialized():
        return world()
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} says this is one of several processes, "
            f"but {', '.join(missing)} is not set: start the job with torchrun "
            "(`torchrun --nproc-per-node N -m snnconv run ...`), which sets them"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if torch.cuda.device_count() <= local_rank:
            raise ConfigError(
                f"local rank {local_rank} needs a GPU of its own, but this node has "
                f"{torch.cuda.device_count()}: start at most that many processes per node "
                "(--nproc-per-node), or run on the CPU (--device cpu)"
            )
        torch.cuda.set_device(local_rank)
    seconds = float(os.environ.get(TIMEOUT_VAR, "1800"))
    try:
        dist.init_process_group(
            backend="nccl" if cuda else "gloo",
            timeout=datetime.timedelta(seconds=seconds),
        )
    except (RuntimeError, ValueError) as error:
        raise ConfigError(
            f"could not join the torch.distributed process group ({error}); check the "
            "launcher's rendezvous options (--rdzv-endpoint, --master-addr/--master-port)"
        ) from error
    return world()


def all_gather(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order (``[obj]`` with one process). Tensors inside
    ``obj`` should be on the CPU; they travel pickled."""
    w = world()
    if not w.parallel:
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] = [None] * w.size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself with one process)."""
    w = world()
    if not w.parallel:
        return obj
    import torch.distributed as dist

    box: list[Any] = [obj if w.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]
