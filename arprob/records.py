"""Records from files, without a spec: CSV with a header, .npy / .npz arrays, PNG folders.

``read_records(path)`` returns column name -> array, ready for ``ar.ood.AutoDetector``:

- ``.csv`` (``read_records_csv``): a header row of distinct names, then one record per row.
  A column whose every non-empty cell parses as a number becomes float64; any other column
  stays text (object). Empty cells and ``NA``, ``N/A``, ``NaN``, ``null``, ``None`` (any
  case) are missing (NaN / None). A UTF-8 byte-order mark is accepted; a duplicated
  header name, a row with another number of cells and a cell over ``MAX_FIELD`` characters
  are refused with the file, line and column named.
- ``.npy``: one array (2-D records x columns, or an image batch); ``.npz``: one column per
  member. Never unpickled.
- a folder: its ``*.png`` files, sorted by name, as one ``image`` column ``(n, H, W[, C])``;
  each image's size is read from its header and checked before it is decoded.

Only regular files are read (a FIFO or a device is refused by name, not waited on).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .errors import DataError
from .fileio import check_regular_file

MAX_FIELD = 1 << 20
MAX_PNG_PIXELS = 1 << 24
MISSING_TEXT = frozenset({"", "na", "n/a", "nan", "null", "none"})


def _regular(path: Path) -> None:
    check_regular_file(path, "data file", error=DataError)


def read_records_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a CSV file with a header (see the module docstring)."""
    path = Path(path)
    _regular(path)
    csv.field_size_limit(MAX_FIELD)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise DataError(f"{path}: empty file (expected a header row).")
            names = [h.strip() for h in header]
            for j, name in enumerate(names):
                if not name:
                    raise DataError(f"{path}, line 1: column {j + 1} has an empty name.")
                if name in names[:j]:
                    raise DataError(f"{path}, line 1: column name {name!r} appears twice (columns "
                                    f"{names.index(name) + 1} and {j + 1}).")
            cells: list[list[str]] = [[] for _ in names]
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(names):
                    raise DataError(f"{path}, line {reader.line_num}: {len(row)} cells; the header has {len(names)}.")
                for j, c in enumerate(row):
                    cells[j].append(c.strip())
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err}; cells are limited to {MAX_FIELD} characters).") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}).") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err}).") from None
    if not cells[0]:
        raise DataError(f"{path}: a header but no records.")
    return {name: _column(values) for name, values in zip(names, cells)}


def _column(values: list[str]) -> np.ndarray:
    missing = [v.lower() in MISSING_TEXT for v in values]
    try:
        return np.array([np.nan if m else float(v) for v, m in zip(values, missing)], dtype=np.float64)
    except ValueError:
        return np.array([None if m else v for v, m in zip(values, missing)], dtype=object)


def read_png_images(folder: str | os.PathLike) -> np.ndarray:
    """The ``*.png`` files of a folder as one ``(n, H, W[, C])`` array, sizes checked first."""
    from PIL import Image

    folder = Path(folder)
    files = sorted(folder.glob("*.png"))
    if not files:
        raise DataError(f"{folder}: no .png files in the folder.")
    out, shape = [], None
    for file in files:
        _regular(file)
        try:
            with Image.open(file) as im:
                w, h = im.size
                if w * h > MAX_PNG_PIXELS:
                    raise DataError(f"{file}: {w} x {h} pixels, over the limit of {MAX_PNG_PIXELS}.")
                a = np.asarray(im)
        except (OSError, Image.DecompressionBombError) as err:
            raise DataError(f"{file}: not a readable PNG image ({err}).") from None
        if shape is not None and a.shape != shape:
            raise DataError(f"{file}: image of shape {a.shape}; the first image has shape {shape}.")
        shape = a.shape
        out.append(a)
    return np.stack(out)


def read_records(path: str | os.PathLike) -> dict[str, np.ndarray] | np.ndarray:
    """Records of a ``.csv``, ``.npy`` or ``.npz`` file or a folder of PNG images."""
    path = Path(path)
    if path.is_dir():
        return read_png_images(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_records_csv(path)
    if suffix in (".npy", ".npz"):
        _regular(path)
        try:
            if suffix == ".npy":
                return np.asarray(np.load(path, allow_pickle=False))
            with np.load(path, allow_pickle=False) as loaded:
                return {k: np.asarray(loaded[k]) for k in loaded.files}
        except Exception as err:  # ValueError, EOFError, zipfile.BadZipFile, zlib.error: a damaged file
            raise DataError(f"{path}: unreadable {suffix} file ({type(err).__name__}: {err}).") from None
    raise DataError(f"{path}: expected a .csv, .npy or .npz file or a folder of .png images.")
