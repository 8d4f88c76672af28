"""Atomic file writes: write a temporary file in the same folder, flush, fsync, rename.

File modes: a new file gets the mode ``open(path, "w")`` would give it, ``0o666`` less the
user's umask (or the folder's default ACL). The temporary file is created with
``os.open(..., 0o666)``, so the kernel applies the umask itself: the umask is never read
or changed (``os.umask`` is process-wide and would race with other threads). Rewriting an
existing file keeps that file's permission bits (a checkpoint made private with ``chmod
600`` stays private).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
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


# ------------------------------------------------------------------ reading safely
def check_regular_file(path: str | os.PathLike, what: str = "file", error: type[Exception] = ValueError) -> os.stat_result:
    """``os.stat(path)`` of a regular file (after symlinks); anything else raises ``error``
    naming the path: a FIFO would block ``open`` forever, ``/dev/zero`` never ends, a
    folder or socket cannot be read as a file. Checked before the file is opened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {os.fspath(path)!r} does not exist.") from None
    except OSError as err:
        raise error(f"{what} {os.fspath(path)!r} cannot be read ({err.strerror or err}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {os.fspath(path)!r} is {_kind(st.st_mode)}, not a regular file; refused.")
    return st


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_bytes(path: str | os.PathLike, limit: int, what: str = "file",
                       error: type[Exception] = ValueError) -> bytes:
    """The bytes of a regular file no larger than ``limit`` (checked from ``stat`` before
    reading, and again while reading: a file that grows is cut at ``limit + 1`` and refused)."""
    st = check_regular_file(path, what, error)
    if st.st_size > limit:
        raise error(f"{what} {os.fspath(path)!r} has {st.st_size} bytes, over the limit of {limit} bytes.")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise error(f"{what} {os.fspath(path)!r} cannot be read ({err.strerror or err}).") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced between stat and open
            raise error(f"{what} {os.fspath(path)!r} is not a regular file; refused.")
        data = f.read(min(limit, st.st_size) + 1)  # read(n) allocates n bytes up front
        if len(data) > st.st_size:  # it grew since stat: read on, still bounded
            data += f.read(limit + 1 - len(data))
    if len(data) > limit:
        raise error(f"{what} {os.fspath(path)!r} is over the limit of {limit} bytes.")
    return data


# ------------------------------------------------------------------ writing safely
def check_output_path(path: str | os.PathLike, what: str = "output", *, folder: bool = False,
                      force: bool = True, error: type[Exception] = ValueError) -> None:
    """Refuse an output path that exists and is not what will replace it: a symlink, FIFO,
    device or socket (never written through), a folder where a file goes (or a file where a
    folder goes), and any existing path unless ``force``."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{what} {str(path)!r} is a symbolic link; refused (pass the target's own path).")
    expected = stat.S_ISDIR if folder else stat.S_ISREG
    if not expected(st.st_mode):
        raise error(f"{what} {str(path)!r} exists and is {_kind(st.st_mode)}; expected "
                    f"{'a folder' if folder else 'a regular file'} or a new path; refused.")
    if not force:
        raise error(f"{what} {str(path)!r} exists; pass --force to replace it.")


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, force: bool = False, error: type[Exception] = ValueError):
    """Build a folder as a unit: yields a new temporary folder beside ``path``; when the block
    ends without an error it is renamed to ``path`` (an existing folder is replaced only
    when ``force``: moved aside, the new one renamed in, the old one deleted); on any
    error, including ``KeyboardInterrupt``, the temporary folder is deleted and ``path`` is
    as it was. Readers see the old report or the new one, never a mix."""
    path = Path(path)
    check_output_path(path, "output folder", folder=True, force=force, error=error)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    tmp.mkdir()
    try:
        yield tmp
        for child in tmp.iterdir():  # the files' data reach the disk before the rename
            if child.is_file():
                fd = os.open(child, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        if path.exists():
            check_output_path(path, "output folder", folder=True, force=force, error=error)
            old = path.parent / f".{path.name}.{secrets.token_hex(6)}.old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
