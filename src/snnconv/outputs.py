"""Writing what the user asked to save: whole files, and whole run directories.

* :func:`atomic_write` writes one file through a temporary file in the same
  directory, renamed into place, so a reader sees the old file or the new
  one, never a part. New files get the permissions the umask gives (as
  ``open`` would), an overwritten file keeps its own.
* :class:`OutputDirectory` makes a run's files appear together or not at all:
  they are written into a staging directory beside the destination, which is
  renamed into place at the end. An existing non-empty destination is refused
  unless the caller overwrites it, which replaces it whole. A lock held with
  ``flock`` (released by the kernel when the process dies, however it dies)
  refuses a second run on the same destination instead of mixing the two.

The swap that replaces an existing directory is two renames: the old run to
the sibling ``.<name>.previous``, then the staging directory to ``<name>``.
A process killed between them leaves ``<name>`` absent and the old run whole
at ``.<name>.previous``; the next command that takes the lock restores it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from snnconv.errors import ConfigError

__all__ = [
    "CHECKPOINT_DIR",
    "KILL_POINT_VAR",
    "KILL_RANK_VAR",
    "OutputDirectory",
    "OutputError",
    "atomic_write",
    "atomic_write_bytes",
    "check_writable",
    "kill_point",
    "locked",
    "missing_run_hint",
]

#: The folder of a run directory where an unfinished evaluation keeps its progress.
CHECKPOINT_DIR = "checkpoint"

#: Environment variable naming a point of :func:`kill_point` (tests: SIGKILL there).
KILL_POINT_VAR = "SNNCONV_TEST_KILL_AT"

#: With :data:`KILL_POINT_VAR`: kill only the process of this rank (data-parallel tests).
KILL_RANK_VAR = "SNNCONV_TEST_KILL_RANK"


class OutputError(ConfigError):
    """An output path cannot be written (a file in the way, no permission, busy, not empty)."""


def kill_point(name: str) -> None:
    """Kill this process with SIGKILL if ``$SNNCONV_TEST_KILL_AT`` names this point.

    The tests put a kill between any two writes of a run to check that a
    directory never holds a mix of two runs. Costs one dictionary lookup.
    """
    if os.environ.get(KILL_POINT_VAR) == name:
        rank = os.environ.get(KILL_RANK_VAR)
        if rank is not None and rank != os.environ.get("RANK", "0"):
            return
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _new_file_mode(path: Path) -> int:
    """The mode a file at ``path`` should get: its current one, else what the umask gives."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write a file through a temporary file in its directory, then rename it into place.

    Args:
        path: The destination (its directory must exist).
        write: Writes the whole file at the path it is given.

    Returns:
        The destination.
    """
    out = Path(path)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _new_file_mode(out))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def check_writable(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Check that a file or directory can be created at ``path``, before any work is done.

    Raises:
        OutputError: A parent is a file, or the nearest existing parent is not a
            writable directory.
    """
    out = Path(path).expanduser()
    ancestor = out.parent
    while not ancestor.exists():
        if ancestor.is_symlink():
            raise OutputError(f"{what} {out}: {ancestor} is a dangling symbolic link.")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(
            f"{what} {out}: {ancestor} is a file, not a directory. Choose another path."
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(
            f"{what} {out}: cannot create it in {ancestor} (permission denied). Choose a "
            "directory you can write to."
        )
    return out


class OutputDirectory:
    """A run's output directory, written all at once or not at all.

    Use as a context manager: entering checks the destination and takes the
    lock (before any work), :attr:`staging` is where the run writes its files,
    :meth:`commit` puts them in place, and leaving releases the lock and
    removes the staging directory if the run did not commit.

    Args:
        path: The destination directory.
        overwrite: Replace an existing non-empty destination whole.
        option: The option that named it, for messages.
        resume: Accept a destination that holds only the checkpoint of an unfinished
            run (``checkpoint/``), to continue it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        option: str = "--out",
        resume: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.overwrite = overwrite
        self.resume = resume
        self.option = option
        self._lock_fd: int | None = None
        self._staging: Path | None = None
        self.restored = False

    # -- the lock ---------------------------------------------------------------------------

    @property
    def lock_path(self) -> Path:
        """The lock file beside the destination (removed when the lock is released)."""
        return self.path.parent / f".{self.path.name}.lock"

    @property
    def previous(self) -> Path:
        """Where the old run waits during an overwrite's swap."""
        return self.path.parent / f".{self.path.name}.previous"

    def _acquire(self) -> None:
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise OutputError(
                        f"{self.option} {self.path} is being written by another snnconv "
                        "process (it holds the lock). Wait for it to finish, or choose "
                        "another directory."
                    ) from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file another process removed while we waited
                self._lock_fd = fd
                return
            os.close(fd)

    def _release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                self.lock_path.unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- entering: check, lock, recover ----------------------------------------------------------

    def __enter__(self) -> OutputDirectory:
        self.check()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._acquire()
        except OSError as error:
            raise OutputError(
                f"{self.option} {self.path}: cannot write in {self.path.parent} "
                f"({error.strerror or error}). Choose a directory you can write to."
            ) from None
        try:
            self._recover()
            self.check()
        except BaseException:
            self._release()
            raise
        return self

    def check(self) -> None:
        """Refuse a destination that is a file or an existing non-empty directory (unless
        overwriting), or whose parent cannot be written."""
        check_writable(self.path, self.option)
        if self.path.is_symlink() and not self.path.exists():
            raise OutputError(f"{self.option} {self.path} is a dangling symbolic link.")
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(
                f"{self.option} {self.path} is a file, not a directory. Choose a directory."
            )
        entries = {p.name for p in self.path.iterdir()} if self.path.is_dir() else set()
        if not entries or self.overwrite:
            return
        if entries == {CHECKPOINT_DIR}:
            if self.resume:
                return
            raise OutputError(
                f"{self.option} {self.path} holds the checkpoint of an unfinished run. Pass "
                "--resume to continue it (with the same model, data and options), or "
                "--overwrite to start over."
            )
        if self.resume and "results.json" in entries:
            raise OutputError(
                f"{self.option} {self.path} holds a finished run: there is nothing to resume. "
                "Choose a new directory, or pass --overwrite to run again."
            )
        raise OutputError(
            f"{self.option} {self.path} already holds files. Choose a new directory, or "
            "pass --overwrite to replace it whole."
        )

    def _recover(self) -> None:
        """Finish what a killed run left: restore an interrupted swap, drop stale staging."""
        if self.previous.exists():
            if self.path.exists():
                shutil.rmtree(self.previous)  # the swap finished; only the clean-up was lost
            else:
                os.rename(self.previous, self.path)
                self.restored = True
        for stale in self.path.parent.glob(f".{self.path.name}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)

    # -- writing -----------------------------------------------------------------------------

    @property
    def staging(self) -> Path:
        """The directory the run writes into (created on first use)."""
        if self._lock_fd is None:
            raise RuntimeError("OutputDirectory.staging used outside its `with` block")
        if self._staging is None:
            self._staging = Path(
                tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.staging-")
            )
            os.chmod(self._staging, 0o777 & ~_umask())
        return self._staging

    def commit(self) -> Path:
        """Put the staged files in place: the destination now holds this run only."""
        staging = self.staging
        kill_point("before-commit")
        if self.path.is_dir() and any(self.path.iterdir()):
            os.rename(self.path, self.previous)
            kill_point("inside-swap")
            os.rename(staging, self.path)
            shutil.rmtree(self.previous)
        else:
            if self.path.is_dir():
                self.path.rmdir()
            os.rename(staging, self.path)
        self._staging = None
        return self.path

    def __exit__(self, *exc: object) -> None:
        try:
            if self._staging is not None:
                shutil.rmtree(self._staging, ignore_errors=True)
                self._staging = None
        finally:
            self._release()


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], option: str = "DIR") -> Iterator[OutputDirectory]:
    """Hold the lock of an existing run directory (to rewrite one file in it)."""
    directory = OutputDirectory(path, overwrite=True, option=option)
    directory.path.parent.mkdir(parents=True, exist_ok=True)
    directory._acquire()
    try:
        directory._recover()
        yield directory
    finally:
        directory._release()


def missing_run_hint(path: Path) -> str:
    """A sentence for an error about a missing run directory whose old run waits aside."""
    previous = path.parent / f".{path.name}.previous"
    if not path.exists() and previous.is_dir():
        return (
            f" An interrupted --overwrite left the previous run at {previous}: any snnconv "
            f"command writing {path} restores it first (or rename it back yourself)."
        )
    return ""
