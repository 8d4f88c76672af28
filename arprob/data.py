"""Data for fitting and scoring: arrays in memory, ``.npy``/``.npz`` files, batch streams.

Three sources, one interface (``num_examples``, ``epoch(e, batch_size, seed)``):

* ``ArraySource``: random access. In-memory arrays (a mapping ``name -> (N, *shape)`` or
  a flat ``(N, D)`` array) are validated once; memory-mapped ``.npy`` files are read
  and validated batch by batch, so they never need to fit in memory: the pages that
  reading maps into the process are released every ``RELEASE_BYTES`` read (read-only
  maps), so resident memory stays bounded by the batches, not the file.
* ``BatchStream``: ``make_batches(epoch)`` returns an iterable of batches (data larger
  than memory, or generated on the fly). Each batch is validated when drawn. For an exact
  resume, ``make_batches`` must return the same batches for the same epoch.
* ``load_array(path)``: a ``.npy`` (memory-mapped) or ``.npz`` file (a mapping; a key
  ``"context"`` that is not a variable name is the conditioning vector).

Shuffling: epoch ``e`` of an ``ArraySource`` visits the rows in the order
``np.random.default_rng([seed, e]).permutation(N)`` and drops the incomplete last batch,
so the order depends only on ``(seed, e)`` (what a checkpoint needs to resume exactly).
The order is held as int32 when ``N < 2**31`` (the same permutation: 4 bytes per record).

The bundled digits set: ``perm = RandomState(0).permutation(1797)``, train =
``perm[:1400]``, test = ``perm[1400:]``.
"""

from __future__ import annotations

import array
import math
import mmap
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .fileio import check_regular_file
from .spec.spec import Spec
from .validation import as_context, as_flat

DIGITS_SPLIT_SEED = 0
DIGITS_TRAIN_SIZE = 1400


def load_digits(binarize: bool = True, threshold: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Digits images as ``(train, test)`` arrays of shape ``(N, 8, 8)``, integer-valued.

    **Arguments:**
        binarize: map values to ``x >= threshold`` (0/1); otherwise keep the 17 levels 0..16.
        threshold: binarisation threshold (default 8).
    """
    (train, _), (test, _) = load_digits_labelled(binarize, threshold)
    return train, test


def load_digits_labelled(
    binarize: bool = True, threshold: int = 8
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((train_images, train_labels), (test_images, test_labels))`` of the same split as
    ``load_digits`` (labels 0..9, for classifiers and attacks)."""
    from sklearn.datasets import load_digits as _load

    raw = _load()
    images = raw.images.astype(np.int64)  # (1797, 8, 8), values 0..16
    if binarize:
        images = (images >= threshold).astype(np.int64)
    perm = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(images))
    train, test = perm[:DIGITS_TRAIN_SIZE], perm[DIGITS_TRAIN_SIZE:]
    return (images[train], raw.target[train]), (images[test], raw.target[test])


# --------------------------------------------------------------------------- files
#: a deflated member cannot be more than ~1032 times smaller than its data (zlib's limit);
#: a zip directory that says so is corrupt or crafted
MAX_DEFLATE_RATIO = 1100
#: bytes per element of a data array once validated (the flat float64 copy ``as_flat`` makes)
VALIDATED_BYTES_PER_ELEMENT = 8


def _npy_header(f, where: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, nbytes)`` of the ``.npy`` record at ``f`` (no data read):
    a plain numeric dtype, no pickle."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, OverflowError, EOFError) as err:
        raise DataError(f"{where}: not a readable .npy array ({type(err).__name__}: {str(err)[:200]}).") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise DataError(f"{where}: array of dtype {dtype}; only plain numeric arrays (bool, int, float) are read.")
    count = math.prod(int(s) for s in shape)
    return tuple(int(s) for s in shape), dtype, fortran, count * dtype.itemsize


def _check_array_cost(where: str, shape: tuple[int, ...], dtype: np.dtype, nbytes: int, in_memory: bool) -> None:
    """Refuse an array whose declared size (read into memory, then validated as float64) is
    over the memory budget, before any of it is allocated."""
    from .budget import format_bytes, how_to_raise, memory_budget

    count = nbytes // max(dtype.itemsize, 1)
    need = (nbytes if in_memory else 0) + count * VALIDATED_BYTES_PER_ELEMENT
    budget = memory_budget()
    if need > budget:
        raise DataError(f"{where}: array of shape {shape} ({dtype}) needs about {format_bytes(need)} to read and "
                        f"validate, over the memory budget of {format_bytes(budget)}; {how_to_raise()}.")


def _load_npy(path: Path, mmap: bool) -> np.ndarray:
    st = check_regular_file(path, "Data file", DataError)
    where = f"Data file {str(path)!r}"
    with open(path, "rb") as f:
        shape, dtype, fortran, nbytes = _npy_header(f, where)
        offset = f.tell()
        if nbytes > st.st_size - offset:
            raise DataError(f"{where}: its header declares shape {shape} ({dtype}, {nbytes} bytes) but the file "
                            f"holds {st.st_size - offset} bytes of data (truncated or crafted).")
        if not mmap:  # a memory map is read and validated batch by batch: it may exceed memory
            _check_array_cost(where, shape, dtype, nbytes, in_memory=True)
        if mmap:
            if nbytes == 0:
                return np.zeros(shape, dtype)
            return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise DataError(f"{where}: truncated while reading ({len(data)} of {nbytes} bytes).")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` file, each member's ``.npy`` header (and the zip directory's
    sizes) checked against the memory budget before anything is decompressed."""
    import zipfile
    import zlib

    check_regular_file(path, "Data file", DataError)
    where = f"Data file {str(path)!r}"
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise DataError(f"{where}: the archive holds a member name twice.")
            planned = []
            total = 0
            for info in infos:
                member = f"{where}, member {info.filename!r}"
                if not info.filename.endswith(".npy") or info.is_dir():
                    raise DataError(f"{member}: not an .npy array (a .npz holds only .npy members, as numpy.savez writes).")
                if info.flag_bits & 0x1:
                    raise DataError(f"{member}: encrypted; refused.")
                if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                    raise DataError(f"{member}: stored uncompressed with {info.compress_size} bytes but declares "
                                    f"{info.file_size} (corrupt or crafted).")
                if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 4096:
                    raise DataError(f"{member}: declares {info.file_size} bytes from {info.compress_size} compressed "
                                    f"bytes, more than deflate can produce (corrupt or a zip bomb).")
                with z.open(info) as f:
                    shape, dtype, fortran, nbytes = _npy_header(f, member)
                    header_bytes = f.tell() if f.seekable() else None
                if header_bytes is not None and header_bytes + nbytes != info.file_size:
                    raise DataError(f"{member}: its .npy header declares shape {shape} ({dtype}, {nbytes} bytes); the "
                                    f"archive says the member holds {info.file_size - header_bytes} (corrupt or crafted).")
                _check_array_cost(member, shape, dtype, nbytes, in_memory=True)
                total += nbytes * (1 + VALIDATED_BYTES_PER_ELEMENT // dtype.itemsize)
                planned.append((info, shape, dtype, fortran, nbytes))
            from .budget import format_bytes, how_to_raise, memory_budget

            if total > memory_budget():
                raise DataError(f"{where}: its arrays need about {format_bytes(total)} to read and validate, over the "
                                f"memory budget of {format_bytes(memory_budget())}; {how_to_raise()}.")
            out = {}
            for info, shape, dtype, fortran, nbytes in planned:
                with z.open(info) as f:
                    _npy_header(f, where)
                    data = f.read(nbytes)  # the CRC is checked when the member is read to its end
                    if f.read(1):
                        raise DataError(f"{where}, member {info.filename!r}: longer than its header declares.")
                if len(data) != nbytes:
                    raise DataError(f"{where}, member {info.filename!r}: truncated ({len(data)} of {nbytes} bytes).")
                out[info.filename[: -len(".npy")]] = np.frombuffer(data, dtype).reshape(
                    shape, order="F" if fortran else "C").copy()
            return out
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, OSError, ValueError, KeyError,
            NotImplementedError, RuntimeError, OverflowError) as err:
        raise DataError(f"{where}: not a readable .npz archive ({type(err).__name__}: {str(err)[:200]}).") from None


def load_array(path: str | os.PathLike, *, mmap: bool = True) -> np.ndarray | dict[str, np.ndarray]:
    """Read a ``.npy`` file (memory-mapped when ``mmap``) or a ``.npz`` file (a dict).

    Only regular files are opened (a FIFO or device is refused by name). Every array's
    ``.npy`` header is read first: plain numeric dtypes only (never pickle), its declared
    size checked against the file (truncation) and against the memory budget (what reading
    and validating it costs) before anything is allocated or decompressed; a ``.npz``'s
    members are also checked against the zip directory (zip bombs, non-``.npy`` members).
    Every failure is a ``DataError`` naming the file (and member).
    """
    path = Path(path)
    if path.suffix == ".npy":
        return _load_npy(path, mmap)
    if path.suffix == ".npz":
        return _load_npz(path)
    check_regular_file(path, "Data file", DataError)
    raise DataError(
        f"Data file {str(path)!r}: expected a .npy, .npz or .csv file or a folder of .png images; "
        f"got suffix {path.suffix!r}."
    )


def split_file_data(spec: Spec, data, context, what: str = "data"):
    """A loaded ``.npz`` mapping -> (data, context): pop ``context``; one unnamed 2-D array of
    width ``D`` is flat data; any other key that is no variable is an error naming it."""
    if not isinstance(data, dict):
        return data, context
    names = [v.name for v in spec.variables]
    data = dict(data)
    if "context" in data and "context" not in names:
        file_context = data.pop("context")
        if context is None:
            context = file_context
    if len(data) == 1 and not (set(data) & set(names)):
        (key, only), d = next(iter(data.items())), spec.num_elements
        if only.ndim == 2 and only.shape[1] == d:
            return only, context
        raise DataError(
            f"{what}: the file's only array is {key!r} of shape {only.shape}; the spec's variables are {names} "
            f"(name the arrays after them, or store one flat (N, {d}) array)."
        )
    return data, context


def read_csv(spec: Spec, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A CSV file with a header row: one column per scalar variable, by name (any order).

    Numbers are read as they are (nothing rounded or clipped: validation checks them);
    a categorical variable declared with ``states`` may hold its state names instead of
    indices. Errors name the file, the line, the column and the value.
    """
    import csv

    path = Path(path)
    by_name = {v.name: v for v in spec.variables}
    wide = [v.name for v in spec.variables if v.shape]
    if wide:
        raise DataError(f"{path}: CSV holds scalar variables only; {wide[0]!r} has shape {by_name[wide[0]].shape}.")
    st = check_regular_file(path, "Data file", DataError)
    _check_csv_size(path, st.st_size)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a UTF-8 byte-order mark is accepted
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file (expected a header row naming the variables).")
            header = [h.strip() for h in header]
            seen: set[str] = set()
            for h in header:
                if h in seen:
                    raise DataError(f"{path}, line 1: column {h!r} appears twice in the header.")
                seen.add(h)
                if h not in by_name:
                    raise DataError(f"{path}, line 1: column {h!r} is no variable of the spec; variables: {list(by_name)}.")
            missing = [n for n in by_name if n not in header]
            if missing:
                raise DataError(f"{path}, line 1: no column for variable {missing[0]!r}.")
            columns = {h: array.array("d") for h in header}  # 8 bytes a value, not a Python float's 32
            line = 1
            for line, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise DataError(f"{path}, line {line}: {len(row)} fields where the header has {len(header)}.")
                for h, text in zip(header, row):
                    columns[h].append(_csv_value(path, line, by_name[h], text.strip()))
    except csv.Error as err:  # a field over csv.field_size_limit(), a NUL byte, ...
        raise DataError(f"{path}, line {reader.line_num}: unreadable CSV ({err}).") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}).") from None
    return {h: np.frombuffer(v, np.float64).copy() for h, v in columns.items()}


def _check_csv_size(path: Path, size: int) -> None:
    """A CSV of ``size`` bytes holds at most ``size / 2`` values (``"0,"``): 8 bytes each once
    read, 8 more once validated; refused before reading when that is over the budget."""
    from .budget import format_bytes, how_to_raise, memory_budget

    need = size * VALIDATED_BYTES_PER_ELEMENT
    if need > memory_budget():
        raise DataError(f"{path}: a CSV file of {format_bytes(size)} may need {format_bytes(need)} to read and "
                        f"validate, over the memory budget of {format_bytes(memory_budget())}; {how_to_raise()}.")


def _csv_value(path: Path, line: int, var, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    states = getattr(var, "states", None)
    if states and text in states:
        return float(states.index(text))
    hint = f"; its states are {list(states)}" if states else ""
    raise DataError(f"{path}, line {line}, column {var.name!r}: {text!r} is not a number{hint}.")


def read_png_folder(spec: Spec, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``*.png`` files of a folder (sorted by name) as the records of the spec's one
    image variable (``(H, W)`` or ``(H, W, C)``; levels as stored, nothing rescaled)."""
    from PIL import Image

    path = Path(path)
    images = [v for v in spec.variables if len(v.shape) in (2, 3)]
    if len(spec.variables) != 1 or not images:
        raise DataError(f"{path}: a folder of PNG images needs a spec of one image variable.")
    var = images[0]
    files = sorted(path.glob("*.png"))
    if not files:
        raise DataError(f"{path}: no .png files in the folder.")
    from .budget import format_bytes, how_to_raise, memory_budget

    size = math.prod(var.shape)
    need = len(files) * size * (1 + VALIDATED_BYTES_PER_ELEMENT)
    if need > memory_budget():
        raise DataError(f"{path}: {len(files)} images of shape {tuple(var.shape)} need about {format_bytes(need)}, "
                        f"over the memory budget of {format_bytes(memory_budget())}; {how_to_raise()}.")
    out = []
    for file in files:
        check_regular_file(file, "Image", DataError)  # a FIFO would block the read forever
        try:
            with Image.open(file) as im:  # lazy: reads the header only
                w, h = im.size
                bands = len(im.getbands())
                shape = (h, w) if bands == 1 else (h, w, bands)
                if shape != tuple(var.shape) and shape + (1,) != tuple(var.shape):
                    raise DataError(f"{file}: image of shape {shape}; variable {var.name!r} has shape "
                                    f"{tuple(var.shape)} (checked before decoding).")
                a = np.asarray(im)
        except DataError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError) as err:
            raise DataError(f"{file}: not a readable PNG image ({type(err).__name__}: {str(err)[:200]}).") from None
        if a.shape != tuple(var.shape) and a.shape + (1,) != tuple(var.shape):
            raise DataError(f"{file}: image of shape {a.shape}; variable {var.name!r} has shape {tuple(var.shape)}.")
        out.append(a.reshape(var.shape))
    return {var.name: np.stack(out)}


def read_data_file(spec: Spec, path: str | os.PathLike, *, mmap: bool = True):
    """Any data file the spec can read: ``.npy``/``.npz`` (``load_array``), ``.csv``
    (``read_csv``) or a folder of ``.png`` images (``read_png_folder``)."""
    p = Path(path)
    if p.is_dir():
        return read_png_folder(spec, p)
    if p.suffix == ".csv":
        return read_csv(spec, p)
    return load_array(p, mmap=mmap)


# ------------------------------------------------------------------------- sources
@dataclass
class Batch:
    """One minibatch: flat ``x (b, D)``, ``context (b, C)`` or None, and where it came from."""

    x: np.ndarray
    context: np.ndarray | None
    epoch: int
    index: int
    rows: np.ndarray | None  # row indices into an ArraySource; None for a stream


def _is_lazy(a) -> bool:
    return isinstance(a, np.memmap)


#: bytes read from memory maps between two releases of their resident pages
RELEASE_BYTES = 64 << 20
#: a read fault may map a whole large folio of the page cache (ext4 on Linux 6.x: up to
#: 2 MiB, measured: 128 scattered 64-byte rows of a cached file mapped 169 MB)
_FAULT_BYTES = 2 << 20


def _releasable(a) -> bool:
    """A read-only memory map (dropping the pages of writable or copy-on-write maps could discard writes)."""
    return getattr(a, "mode", None) == "r" and getattr(a, "_mmap", None) is not None


class _MappedPages:
    """Releases the pages that reading batches mapped into this process from read-only
    memory maps (``madvise(MADV_DONTNEED)`` on the whole map, once ``RELEASE_BYTES`` may
    have become resident). The pages stay in the kernel's page cache, a later read maps
    them again; they no longer count in the process's resident memory."""

    def __init__(self, arrays: list = ()) -> None:
        self.maps: dict[int, mmap.mmap] = {}
        self.pending = 0
        for a in arrays:
            self.add(a)

    def add(self, a) -> None:
        """Watch the map behind ``a`` (read-only memory maps only)."""
        if _releasable(a) and hasattr(mmap, "MADV_DONTNEED"):
            self.maps[id(a._mmap)] = a._mmap

    def read(self, nbytes: int, forget: bool = False) -> None:
        """Count ``nbytes`` possibly made resident; release the maps' pages past the limit
        (and stop watching them when ``forget``: maps met in a stream's batches)."""
        if not self.maps:
            return
        self.pending += nbytes
        if self.pending < RELEASE_BYTES:
            return
        self.pending = 0
        for m in self.maps.values():
            try:
                m.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # a closed map, or the kernel refused: its pages stay reclaimable
                pass
        if forget:
            self.maps.clear()


class _RowFile:
    """Scattered rows of a read-only memory map read with ``os.pread`` from its file, so that
    they map no pages into the process (a fault would map up to ``_FAULT_BYTES`` per row).
    Only for maps whose rows lie contiguous in the file; ``of(a)`` is None for the others."""

    def __init__(self, path: str, first: int, row_bytes: int, array: np.ndarray) -> None:
        self.path, self.first, self.row_bytes = path, first, row_bytes
        self.dtype, self.shape = array.dtype, tuple(array.shape[1:])

    @classmethod
    def of(cls, a) -> "_RowFile | None":
        if not _releasable(a) or getattr(a, "filename", None) is None or a.ndim < 1 or a.shape[0] == 0:
            return None
        row_bytes = a.dtype.itemsize * int(np.prod(a.shape[1:]))
        if a.shape[0] > 1 and a.strides[0] != row_bytes or not a[:1].flags.c_contiguous or row_bytes == 0:
            return None
        base = np.frombuffer(a._mmap, np.uint8).ctypes.data  # where the map starts in memory
        map_start = a.offset - a.offset % mmap.ALLOCATIONGRANULARITY  # and in the file (np.memmap's rule)
        return cls(os.fspath(a.filename), map_start + a.ctypes.data - base, row_bytes, a)

    def read(self, rows: np.ndarray, what: str) -> np.ndarray:
        """Rows ``rows`` (ascending) as an array of the map's dtype and row shape."""
        n, size = int(rows.size), self.row_bytes
        buf = bytearray(n * size)
        view = memoryview(buf)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for i, r in enumerate(rows.tolist()):
                got = os.preadv(fd, [view[i * size : (i + 1) * size]], self.first + r * size)
                if got != size:
                    raise DataError(f"{what}: row {r} could not be read from {self.path!r} (the file is shorter "
                                    f"than its header says: {got} of {size} bytes).")
        finally:
            os.close(fd)
        return np.frombuffer(buf, self.dtype).reshape((n, *self.shape))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """``np.random.default_rng([seed, epoch]).permutation(n)``, held as int32 when ``n < 2**31``
    (``shuffle`` draws the same swaps whatever the dtype, so the order is the same)."""
    order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    np.random.default_rng([seed, epoch]).shuffle(order)
    return order


class ArraySource:
    """Random-access examples (validated in memory, or batch by batch for memory maps).

    **Arguments:**
        spec: the model's spec (data are checked against it).
        data: mapping ``name -> (N, *shape)`` or flat ``(N, D)``; memory-mapped arrays stay on disk.
        context: optional ``(N, context_size)`` conditioning vectors.
        what: the name used in error messages.
    """

    def __init__(self, spec: Spec, data, context=None, *, what: str = "data") -> None:
        self.spec, self.what = spec, what
        arrays = list(data.values()) if isinstance(data, Mapping) else [data]
        self.lazy = any(_is_lazy(a) for a in arrays)
        self._index: np.ndarray | None = None  # rows of the underlying memory map (subsets)
        if self.lazy:
            self._raw = data
            self.num_examples = self._check_shapes(data)
            self._x = None
            self._pages = _MappedPages(arrays)
            self._row_bytes = sum(a.dtype.itemsize * int(np.prod(a.shape[1:])) for a in arrays)
            self._files = {k: _RowFile.of(v) for k, v in data.items()} if isinstance(data, Mapping) else {
                None: _RowFile.of(data)}
        else:
            self._x = np.asarray(as_flat(spec, data, what=what))
            self.num_examples = int(self._x.shape[0])
        ctx = as_context(spec, context, self.num_examples)
        self._ctx = None if ctx is None else np.asarray(ctx)
        if self.num_examples == 0:
            raise DataError(f"{what}: no examples (batch size 0).")

    def _check_shapes(self, data) -> int:
        # Shapes and dtypes only (values are checked batch by batch): validate one row, after
        # checking the full shape (so an error reports the file's shape, not one row's).
        d = self.spec.num_elements
        if not isinstance(data, Mapping) and (data.ndim != 2 or data.shape[1] != d):
            raise DataError(
                f"{self.what}: expected a flat array of shape (batch, {d}) in the spec's element layout; "
                f"got shape {tuple(data.shape)}."
            )
        one = {k: v[:1] for k, v in data.items()} if isinstance(data, Mapping) else data[:1]
        as_flat(self.spec, one, what=self.what)
        arrays = list(data.values()) if isinstance(data, Mapping) else [data]
        return int(arrays[0].shape[0])

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Validated flat rows ``rows`` (and their context). Rows of a memory map are read
        and validated here; an error names the row of the file."""
        rows = np.asarray(rows)
        if self._x is not None:
            x = self._x[rows]
        else:
            order = np.argsort(rows, kind="stable")  # memory maps read faster in order
            sorted_rows = rows[order] if self._index is None else self._index[rows[order]]
            x_sorted = self._read(sorted_rows)
            x = np.empty_like(x_sorted)
            x[order] = x_sorted
        return x, None if self._ctx is None else self._ctx[rows]

    def _read(self, file_rows: np.ndarray | slice) -> np.ndarray:
        """Rows of the memory map (ascending indices, or a slice), validated, as a flat float
        array (a copy; a view of the map only when the file already holds that float dtype)."""
        raw, scattered = self._raw, not isinstance(file_rows, slice)
        ids = file_rows if scattered else np.arange(file_rows.start, file_rows.stop)
        mapped = 0  # bytes the reads may have mapped into the process

        def rows_of(key, a):
            nonlocal mapped
            if scattered and self._files[key] is not None:  # read from the file: nothing mapped
                return self._files[key].read(ids, self.what)
            if _is_lazy(a):
                mapped += ids.size * a.dtype.itemsize * int(np.prod(a.shape[1:])) + (
                    ids.size * _FAULT_BYTES if scattered else _FAULT_BYTES)
            return a[file_rows]

        part = {k: rows_of(k, v) for k, v in raw.items()} if isinstance(raw, Mapping) else rows_of(None, raw)
        try:
            return np.asarray(as_flat(self.spec, part, what=self.what, rows=ids))
        finally:
            self._pages.read(mapped)

    def subset(self, rows: np.ndarray, what: str) -> "ArraySource":
        """The examples ``rows`` (copied when in memory; a view of the rows of a memory map)."""
        rows = np.sort(np.asarray(rows))
        sub = object.__new__(ArraySource)
        sub.__dict__.update(self.__dict__)
        sub.what, sub.num_examples = what, int(rows.size)
        sub._ctx = None if self._ctx is None else self._ctx[rows]
        if self._x is not None:
            sub._x = self._x[rows]
        else:
            sub._index = rows if self._index is None else self._index[rows]
        return sub

    def steps_per_epoch(self, batch_size: int) -> int:
        return self.num_examples // batch_size

    def epoch(self, epoch: int, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start+1, ...`` of epoch ``epoch`` (shuffled by ``(seed, epoch)``)."""
        order = epoch_order(seed, epoch, self.num_examples)
        for b in range(start, self.steps_per_epoch(batch_size)):
            rows = order[b * batch_size : (b + 1) * batch_size]
            x, c = self.take(rows)
            yield Batch(x, c, epoch, b, rows)

    def sequential(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None, int]]:
        """All examples in order, in batches (the last may be short): ``(x, context, n_valid)``."""
        for a in range(0, self.num_examples, batch_size):
            b = min(a + batch_size, self.num_examples)
            if self._x is None and self._index is None:  # a memory map, read in order
                x, c = self._read(slice(a, b)), None if self._ctx is None else self._ctx[a:b]
            else:
                x, c = self.take(np.arange(a, b))
            yield x, c, x.shape[0]


class BatchStream:
    """Batches produced on demand: ``make_batches(epoch)`` -> iterable of batches.

    Each batch is data (a mapping or flat array) or a ``(data, context)`` pair. The stream
    itself decides the order (use the epoch to reshuffle); for an exact resume it must give
    the same batches for the same epoch, since a resumed run skips the batches already used.

    **Arguments:**
        make_batches: ``epoch -> Iterable`` of batches.
        num_examples: examples per epoch, when known (shown in the progress bar).
    """

    def __init__(self, make_batches: Callable[[int], Iterable[Any]], num_examples: int | None = None) -> None:
        if not callable(make_batches):
            raise TypeError(f"BatchStream expects a callable epoch -> iterable of batches; got {make_batches!r}.")
        self.make_batches = make_batches
        self.num_examples = num_examples


class _BoundStream:
    """A ``BatchStream`` bound to a spec (validates each batch)."""

    lazy = True

    def __init__(self, spec: Spec, stream: BatchStream, what: str = "data") -> None:
        self.spec, self.stream, self.what = spec, stream, what
        self.num_examples = stream.num_examples
        self._pages = _MappedPages()  # read-only memory maps met in the batches (slices of a .npy)

    def steps_per_epoch(self, batch_size: int) -> int | None:
        return None

    def _validate(self, item, where: str) -> tuple[np.ndarray, np.ndarray | None]:
        data, context = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
        x = np.asarray(as_flat(self.spec, data, what=where))
        c = as_context(self.spec, context, x.shape[0])
        mapped = [a for a in (list(data.values()) if isinstance(data, Mapping) else [data]) if _is_lazy(a)]
        for a in mapped:  # released like an ArraySource's map, once RELEASE_BYTES may be resident
            self._pages.add(a)
        self._pages.read(sum(a.nbytes + _FAULT_BYTES for a in mapped), forget=True)
        return x, None if c is None else np.asarray(c)

    def epoch(self, epoch: int, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        for b, item in enumerate(self.stream.make_batches(epoch)):
            if b < start:
                continue
            x, c = self._validate(item, f"{self.what} (epoch {epoch}, batch {b})")
            yield Batch(x, c, epoch, b, None)

    def sequential(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None, int]]:
        for x, c, _ in self._batches_of_epoch0():
            for a in range(0, x.shape[0], batch_size):
                xs = x[a : a + batch_size]
                yield xs, None if c is None else c[a : a + batch_size], xs.shape[0]

    def _batches_of_epoch0(self):
        for b, item in enumerate(self.stream.make_batches(0)):
            x, c = self._validate(item, f"{self.what} (batch {b})")
            yield x, c, x.shape[0]


Source = ArraySource | _BoundStream


def as_source(spec: Spec, data, context=None, *, what: str = "data") -> Source:
    """Any accepted data form -> a source: arrays, a mapping, a ``.npy``/``.npz`` path, a stream."""
    if isinstance(data, (ArraySource, _BoundStream)):
        if context is not None:
            raise DataError(f"{what}: pass the context inside the source, not separately.")
        return data
    if isinstance(data, BatchStream):
        if context is not None:
            raise DataError(f"{what}: a BatchStream yields (data, context) pairs; do not pass context separately.")
        return _BoundStream(spec, data, what)
    if isinstance(data, (str, os.PathLike)):
        what = f"{what} {os.fspath(data)!r}"
        data, context = split_file_data(spec, read_data_file(spec, data), context, what)
    if isinstance(context, (str, os.PathLike)):
        context = load_array(context, mmap=False)
    return ArraySource(spec, data, context, what=what)


def split_source(source: ArraySource, fraction: float, seed: int) -> tuple[ArraySource, ArraySource]:
    """Split off a validation set: a ``fraction`` of rows drawn by ``default_rng([seed, -1])``."""
    if not isinstance(source, ArraySource):
        raise DataError("validation=<fraction> needs random-access data; pass a validation set for a BatchStream.")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"Expected a validation fraction in (0, 1); got {fraction!r}.")
    n = source.num_examples
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val >= n:
        raise DataError(f"validation={fraction} of {n} examples leaves {n_val} for validation and {n - n_val} for training.")
    perm = epoch_order(seed, 2**31 - 1, n)  # default_rng([seed, 2**31 - 1]).permutation(n), int32
    return source.subset(perm[n_val:], "training data"), source.subset(perm[:n_val], "validation data")
