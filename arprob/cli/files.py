"""Reading data files and writing result files for the command line (all writes atomic)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from ..checkpoint import MAGIC, CheckpointError, load_model
from ..data import read_data_file, split_file_data
from ..fileio import atomic_write_bytes

write_bytes = atomic_write_bytes

#: suffixes of spec files (``arprob.load_spec``)
SPEC_SUFFIXES = (".toml", ".json", ".yaml", ".yml")


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a readable file that starts with the checkpoint magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def load_checkpoint_model(path: str | os.PathLike):
    """``checkpoint.load_model``; a spec file given instead is told how to make a checkpoint."""
    try:
        return load_model(path)
    except CheckpointError as err:
        if Path(path).suffix in SPEC_SUFFIXES and "not an arprob checkpoint" in str(err):
            raise CheckpointError(f"{err} {str(path)!r} looks like a spec file: fit it first "
                                  "(arprob fit SPEC DATA --out MODEL.ckpt) and pass the checkpoint.") from None
        raise


def check_spec_path(path: str | os.PathLike) -> None:
    """Refuse a checkpoint where a spec file is expected (before it is read as TOML/JSON)."""
    if is_checkpoint(path):
        raise ValueError(f"{str(path)!r} is an arprob checkpoint, not a spec file (.toml or .json); to continue "
                         f"fitting it, pass it as --out with --resume.")


def load_data(spec, path: str | os.PathLike):
    """``(data, context)`` of a data file (``.npz``, ``.npy``, ``.csv`` or a folder of PNGs), in memory."""
    return split_file_data(spec, read_data_file(spec, path, mmap=False), None, f"data {str(path)!r}")


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def write_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    """Records as CSV (with a header) or JSON lines, chosen by the suffix ``.csv``/``.jsonl``."""
    path = Path(path)
    if path.suffix == ".jsonl":
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())
        return
    if path.suffix != ".csv":
        raise ValueError(f"{path}: expected a .csv or .jsonl file name.")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def write_image_grid(path: str | os.PathLike, images: np.ndarray, levels: int, title: str) -> None:
    """A PNG grid of integer images ``(n, H, W)`` or ``(n, H, W, 3)`` (matplotlib, Agg)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(f"{err}; PNG output needs matplotlib: pip install 'arprob[plot]'") from None
    n = images.shape[0]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = images[i] / max(levels - 1, 1)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
