"""Atomic file writes: write a temporary file in the same folder, flush, fsync, rename.

File modes: a new file gets the mode ``open(path, "w")`` would give it, ``0o666`` less the
user's umask (or the folder's default ACL). The temporary file is created with
``os.open(..., 0o666)``, so the kernel applies the umask itself: the umask is never read
or changed (``os.umask`` is process-wide and would race with other threads). Rewriting an
existing file keeps that file's permission bits (a checkpoint made private with ``chmod
600`` stays private).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

#: permission bits a new file is created with before the umask applies (as ``open``)
NEW_FILE_MODE = 0o666


def _create_temp(folder: Path, name: str) -> tuple[int, Path]:
    """A new, empty, uniquely named file next to ``name`` in ``folder`` (``O_EXCL``)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, NEW_FILE_MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"Could not create a temporary file for {name!r} in {str(folder)!r}.")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; on any error the old file is untouched.

    A new file's mode is ``0o666 & ~umask``; an existing file keeps its permission bits."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        keep = None
    fd, tmp = _create_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            if keep is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), keep)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
