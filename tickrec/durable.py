"""Durable file-system steps: what must be on disk before tickrec says a file exists.

A file is durable when its bytes are fsynced and the directory entry that
names it is fsynced too; a new directory is durable when its parent is. The
dataset's parts, the recorder's journal and the replay cache all go through
these few functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tickrec.store import Root, StorePath

__all__ = ["fsync_dir", "is_orphan", "make_dirs", "temp_name", "write_atomic"]


def fsync_dir(path: Path) -> None:
    """Fsync a directory, making the entries created or renamed in it durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Root) -> None:
    """Create *path* and its missing parents, fsyncing the parent of each one created.

    Without that, a power loss could take back a new ``date=`` directory, and
    the parts inside it, after the journal they came from was deleted. In an
    object store there are no directories to make.
    """
    if isinstance(path, StorePath):
        return
    missing = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue  # made by someone else meanwhile; its parent fsync is theirs too
        fsync_dir(d.parent)


def write_atomic(path: Root, write: Callable[[BinaryIO], object], replace: bool = True) -> None:
    """Write *path* through ``write(file)``: temporary name, fsync, rename, fsync the directory.

    Readers see the old file or the whole new one, never a part. With
    ``replace=False`` an existing *path* raises :class:`FileExistsError`
    instead of being replaced. In an object store the object is sent whole
    (:meth:`~tickrec.store.StorePath.put`).
    """
    if isinstance(path, StorePath):
        path.put(write, replace)
        return
    tmp = temp_name(path, os.getpid())
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists, unlike rename
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def temp_name(path: Path, pid: int) -> Path:
    """The temporary name :func:`write_atomic` in process *pid* writes *path* under."""
    return path.with_name(f".{path.name}.{pid}.tmp")


def is_orphan(path: Root) -> bool:
    """Whether *path* is a temporary file of :func:`write_atomic` whose process is gone.

    Such a file is what a write killed before its rename leaves; nothing
    will ever rename it, so it may be removed. A file of a live process (or
    of an unknown owner) is not an orphan.
    """
    name = path.name
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    pid = name[: -len(".tmp")].rpartition(".")[2]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False
