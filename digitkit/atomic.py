"""Atomic file writes: a temp file beside the target, renamed over it only when complete; an exclusive lock on a
target that one process rewrites again and again (a training run's checkpoint); and the check that a folder can be
written in before work that ends by writing there."""

from __future__ import annotations

import glob
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def folder_problem(folder: Path) -> str | None:
    """Make `folder` (and its parents) where missing -> None when files can be written in it, else why not. A file
    is created there and removed: permission bits do not tell (root passes os.access where nothing can be created,
    as under /proc)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".digitkit-probe.", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path to write; on a clean exit it replaces `target`, on an error it vanishes.

    The file gets the permissions a plain `open()` would give it (mkstemp's are private, 0600).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)  # the data reaches the disk before the name does: a power loss leaves the old file, not an empty one
        os.replace(tmp, target)
        _fsync(target.parent)  # and the rename itself
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def exclusive(target: Path) -> Iterator[None]:
    """Hold `target` for one process while the block runs, through a lock file `.NAME.lock` beside it; a second
    process is refused at once. Temp files of earlier writers that were killed (`NAME.*.part`) are removed on entry:
    none can be in progress while the lock is held. Without POSIX file locks (Windows) no lock is taken."""
    from digitkit.errors import DigitkitError

    try:
        import fcntl
    except ImportError:
        yield
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise DigitkitError(f"another digitkit run is writing {target}: wait for it to finish, or give another --out") from None
    try:
        for stale in target.parent.glob(f"{glob.escape(target.name)}.*.part"):
            stale.unlink(missing_ok=True)
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
