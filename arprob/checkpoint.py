"""Crash-safe training checkpoints: one file, written atomically, verified on load, no pickle.

Layout (integers little-endian)::

    b"ARPROBCK"          8 bytes, magic
    version              uint32 (1)
    header_length        uint64
    sha256               32 bytes, over header + payload
    header               UTF-8 JSON: format, spec (``spec_to_dict``), step, rng, state,
                         history (its scalars, and a directory of its series), and the byte
                         length of each payload segment
    payload              segments "model", "opt_state", "best" (each
                         ``equinox.tree_serialise_leaves`` of a pytree; empty when absent),
                         then "history": the history's series as binary arrays

History series (``history["series"]``, ``train.History.to_json``) are stored compactly
and losslessly: a series of integers as int64 differences (the step counters become runs
of ones), a series of floats as float32 when every value is a float32 (what a float32
model logs) else float64, its bytes grouped by significance; each array then zlib
compressed. A 1,000,000-step history (step, loss, grad_norm, lr) takes a few MB instead
of the ~80 MB of JSON lists. A series that is not all integers or all floats stays in
the JSON header. Format ``arprob.checkpoint/1`` files (history as JSON lists, and Table
conditionals without a ``parents`` key, which then meant every earlier element) still
load: their tables read as ``parents="all"``.

Every file is written by ``arprob.fileio.atomic_write_bytes`` (temporary file, flush,
fsync, rename), so a crash leaves either the old or the new checkpoint, never half of
one. Loading checks the magic, version, lengths and checksum before reading anything and
compares the stored spec with the model's; every failure raises ``CheckpointError``
and changes no file. Arrays are read with ``numpy.load(allow_pickle=False)`` against the
shapes and dtypes of a template tree, so a checkpoint can never run code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .errors import ArprobError
from .fileio import atomic_write_bytes, check_regular_file, read_regular_bytes
from .model import Model
from .spec.serialize import spec_from_dict, spec_to_dict

MAGIC = b"ARPROBCK"
VERSION = 1
FORMAT = "arprob.checkpoint/2"
FORMAT_V1 = "arprob.checkpoint/1"  # history as JSON lists; read, never written
_PREFIX = struct.Struct("<8sIQ32s")  # magic, version, header length, sha256
SEGMENTS = ("model", "opt_state", "best", "history")
#: bytes of one value of a decoded history series: a Python float or int (24-32 bytes) and
#: its list slot (8); the decoding's arrays (inflated bytes, unshuffled copy, float64) come on top
HISTORY_LIST_BYTES = 40
_HISTORY_DTYPES = {"int64": np.dtype("<i8"), "float32": np.dtype("<f4"), "float64": np.dtype("<f8")}


class CheckpointError(ArprobError, ValueError):
    """A checkpoint file is missing, truncated, corrupted, foreign, or for another spec."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the header (JSON metadata) and the restored trees."""

    header: dict[str, Any]
    model: Model
    opt_state: Any = None
    best: Any = None

    @property
    def step(self) -> int:
        return int(self.header["step"])


def _tree_bytes(tree) -> bytes:
    if tree is None:
        return b""
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    return buf.getvalue()


def _jsonable(spec) -> dict:
    return json.loads(json.dumps(spec_to_dict(spec)))


# ------------------------------------------------------------------ history arrays
def _series_array(values: Any) -> tuple[str, np.ndarray] | None:
    """``(dtype name, array)`` storing ``values`` exactly, or None when it must stay JSON
    (not a list, empty, bools, None, mixed ints and floats, integers beyond int64)."""
    if not isinstance(values, list) or not values:
        return None
    types = set(map(type, values))  # a few distinct types: checked once each, not per value
    if all(issubclass(t, (int, np.integer)) and not issubclass(t, (bool, np.bool_)) for t in types):
        try:
            return "int64", np.asarray(values, dtype=np.int64)
        except OverflowError:
            return None
    if all(issubclass(t, (float, np.floating)) for t in types):
        arr = np.asarray(values, dtype=np.float64)
        narrow = arr.astype(np.float32)
        if np.array_equal(narrow.astype(np.float64), arr, equal_nan=True):
            return "float32", narrow
        return "float64", arr
    return None


def _pack_series(dtype: str, arr: np.ndarray) -> bytes:
    if dtype == "int64":  # differences: counters become runs of ones (int64 wraps both ways)
        arr = np.diff(arr, prepend=np.int64(0))
    raw = arr.astype(_HISTORY_DTYPES[dtype], copy=False)
    shuffled = raw.view(np.uint8).reshape(len(raw), raw.itemsize).T  # byte k of every value together
    return zlib.compress(np.ascontiguousarray(shuffled).tobytes(), 1)


def _unpack_series(path: Path, key: str, dtype: str, length: int, data: bytes) -> list:
    item = _HISTORY_DTYPES[dtype]
    expected = length * item.itemsize
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(data, expected + 1)  # never more than the header declares
    except zlib.error as err:
        raise _fail(path, f"history series {key!r} does not decompress ({err}).") from None
    if len(raw) != expected or not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
        raise _fail(path, f"history series {key!r} holds {len(raw)} bytes or more; its header declares {length} "
                          f"{dtype} values ({expected} bytes).")
    values = np.frombuffer(raw, np.uint8).reshape(item.itemsize, length).T.copy().view(item).reshape(length)
    if dtype == "int64":
        values = np.cumsum(values, dtype=np.int64)
    return values.astype(np.float64).tolist() if dtype == "float32" else values.tolist()


def _encode_history(history: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The header's ``history`` (series of numbers replaced by a directory) and the segment."""
    history = dict(history)
    series = history.get("series")
    if not isinstance(series, dict):
        return history, b""
    kept, directory, chunks = {}, [], []
    for key, values in series.items():
        found = _series_array(values)
        if found is None:
            kept[key] = values
            continue
        chunks.append(_pack_series(*found))
        directory.append({"key": key, "dtype": found[0], "length": len(values), "bytes": len(chunks[-1])})
    history["series"] = kept
    history["arrays"] = directory
    return history, b"".join(chunks)


def _decode_history(path: Path, history: Any, segment: bytes) -> dict[str, Any]:
    """The history as it was saved (``{"series": {key: [numbers]}, ...}``) from the header's
    directory and the ``history`` segment (checked before anything is inflated)."""
    from .budget import format_bytes, memory_budget

    if not isinstance(history, dict):
        raise _fail(path, f"header 'history' must be a table; got {type(history).__name__}.")
    directory = history.get("arrays", [])
    series = history.get("series", {})
    if not isinstance(directory, list) or not isinstance(series, dict):
        raise _fail(path, "header 'history' must hold a table 'series' and a list 'arrays'.")
    total, need, temp = 0, 0, 0
    for i, entry in enumerate(directory):
        ok = isinstance(entry, dict) and isinstance(entry.get("key"), str) and entry.get("dtype") in _HISTORY_DTYPES
        if not ok or not _is_count(entry.get("length")) or not _is_count(entry.get("bytes")):
            raise _fail(path, f"history.arrays[{i}] must be {{key, dtype (one of {sorted(_HISTORY_DTYPES)}), length, "
                              f"bytes}}; got {entry!r:.200}.")
        if entry["key"] in series:
            raise _fail(path, f"history series {entry['key']!r} is stored twice.")
        total += entry["bytes"]
        need += entry["length"] * HISTORY_LIST_BYTES  # the decoded list, kept
        temp = max(temp, entry["length"] * (3 * _HISTORY_DTYPES[entry["dtype"]].itemsize + 8))  # while decoding
    need += temp
    if total != len(segment):
        raise _fail(path, f"history arrays declare {total} bytes; the history segment has {len(segment)}.")
    budget = memory_budget()
    if need > budget:
        raise _fail(path, f"the history needs {format_bytes(need)}, over the memory budget of {format_bytes(budget)}.")
    out = {k: v for k, v in history.items() if k != "arrays"}
    out["series"] = dict(series)
    start = 0
    for entry in directory:
        chunk = segment[start : start + entry["bytes"]]
        start += entry["bytes"]
        out["series"][entry["key"]] = _unpack_series(path, entry["key"], entry["dtype"], entry["length"], chunk)
    return out


def _upgrade_v1_spec(spec: Any) -> Any:
    """A format-1 spec table as format 2 reads it: a Table without ``parents`` meant every
    earlier element then (``parents="all"``); it means no parents now."""
    conditionals = spec.get("conditionals") if isinstance(spec, dict) else None
    if not isinstance(conditionals, dict):
        return spec
    upgraded = {}
    for name, cond in conditionals.items():
        if isinstance(cond, dict) and cond.get("kind") in ("table", "conditional:table") and "parents" not in cond:
            cond = {**cond, "parents": "all"}
        upgraded[name] = cond
    return {**spec, "conditionals": upgraded}


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: Model,
    step: int,
    opt_state: Any = None,
    best: Any = None,
    rng: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    history: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically (the previous file stays intact until the rename).

    **Arguments:**
        path: the checkpoint file.
        model: the model (every array leaf is stored; the spec as JSON).
        step: number of optimisation steps taken.
        opt_state: the optax state (optional).
        best: the best parameters seen so far (early stopping; optional).
        rng: the data-order RNG state (e.g. ``{"seed": 0, "epoch": 3, "batch": 7}``).
        state: other JSON-serialisable trainer state.
        history: the training history (``History.to_json()``: its ``series`` of numbers
            are stored as binary arrays, the rest as JSON).
    """
    history_header, history_bytes = _encode_history(history or {})
    segments = {"model": _tree_bytes(model), "opt_state": _tree_bytes(opt_state), "best": _tree_bytes(best),
                "history": history_bytes}
    header = {
        "format": FORMAT,
        "spec": _jsonable(model.spec),
        "step": int(step),
        "rng": rng or {},
        "state": state or {},
        "history": history_header,
        "segments": {k: len(v) for k, v in segments.items()},
    }
    write_verified(path, header, [segments[k] for k in SEGMENTS])


def write_verified(path: str | os.PathLike, header: dict[str, Any], segments: list[bytes]) -> None:
    """Write ``header`` (JSON, with a ``format`` key) and payload segments in the checkpoint
    container (magic, version, sha256 over header + payload), atomically. Other arprob
    files (detectors) use the same container with their own ``format``."""
    header_bytes = json.dumps(header, allow_nan=True, separators=(",", ":")).encode("utf-8")
    payload = b"".join(segments)
    digest = hashlib.sha256(header_bytes + payload).digest()
    atomic_write_bytes(path, _PREFIX.pack(MAGIC, VERSION, len(header_bytes), digest) + header_bytes + payload)


def tree_digest(tree) -> str:
    """sha256 of a pytree's serialised leaves: identifies a model's exact weights."""
    return hashlib.sha256(_tree_bytes(tree)).hexdigest()


def _fail(path: Path, message: str) -> CheckpointError:
    return CheckpointError(f"Checkpoint {str(path)!r}: {message}")


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def read_verified(
    path: str | os.PathLike, fmt: str = FORMAT, segments: tuple[str, ...] = SEGMENTS
) -> tuple[dict[str, Any], bytes]:
    """Verified header and payload of a container file of format ``fmt`` (``CheckpointError`` otherwise).

    The file's size is checked against the memory budget before it is read, the header's
    length against the file, the sha256 over header and payload, then the header's JSON
    (depth and number sizes included) and every segment length (a count ``>= 0``) before
    any of it is used. For training checkpoints (``fmt=FORMAT``, which also reads format-1
    files) the returned header holds the decoded history (``{"series": {key: [numbers]},
    ...}``) and a format-1 spec upgraded to today's reading (``_upgrade_v1_spec``)."""
    from .budget import format_bytes, memory_budget

    path = Path(path)
    try:
        if not os.path.lexists(path):
            raise CheckpointError(f"Checkpoint {str(path)!r} does not exist.")
        check_regular_file(path, "Checkpoint", CheckpointError)  # a FIFO or device is never opened
        size = path.stat().st_size
        budget = memory_budget()
        if size > budget:
            raise _fail(path, f"the file has {format_bytes(size)}, over the memory budget of {format_bytes(budget)}.")
        raw = read_regular_bytes(path, budget, "Checkpoint", CheckpointError)
    except OSError as err:
        raise _fail(path, f"cannot read the file ({err.strerror or err}).") from None
    if len(raw) < len(MAGIC) or raw[: len(MAGIC)] != MAGIC:
        raise CheckpointError(f"{str(path)!r} is not an arprob checkpoint (expected magic {MAGIC!r}).")
    if len(raw) < _PREFIX.size:
        raise CheckpointError(f"Checkpoint {str(path)!r} is truncated ({len(raw)} bytes, header cut off).")
    _, version, header_len, digest = _PREFIX.unpack_from(raw)
    if version != VERSION:
        raise CheckpointError(f"Checkpoint {str(path)!r} has format version {version}; this arprob reads {VERSION}.")
    body = raw[_PREFIX.size :]
    if header_len > len(body):
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is truncated: header of {header_len} bytes, {len(body)} bytes left in the file."
        )
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"Checkpoint {str(path)!r} is corrupted or truncated (sha256 mismatch).")
    try:
        header = json.loads(body[:header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # JSON, too-long integers, deep nesting
        raise _fail(path, f"unreadable header ({type(err).__name__}: {str(err)[:200]}).") from None
    accepted = (FORMAT, FORMAT_V1) if fmt == FORMAT else (fmt,)
    if not isinstance(header, dict) or header.get("format") not in accepted:
        found = header.get("format") if isinstance(header, dict) else None
        raise CheckpointError(f"{str(path)!r}: header format is {found!r}; expected {fmt!r}.")
    payload = body[header_len:]
    sizes = header.get("segments")
    if not isinstance(sizes, dict) or set(sizes) - set(segments):
        raise _fail(path, f"header 'segments' must map some of {list(segments)} to byte lengths; got {sizes!r:.200}.")
    for k, v in sizes.items():
        if not _is_count(v):
            raise _fail(path, f"segment {k!r} has length {v!r:.100}; expected an integer >= 0.")
    if sum(sizes.values()) != len(payload):
        raise CheckpointError(f"Checkpoint {str(path)!r}: segment lengths do not add up to the payload length.")
    if fmt == FORMAT:
        _check_header(path, header)
        if header["format"] == FORMAT_V1:
            header["spec"] = _upgrade_v1_spec(header["spec"])
        else:
            start = sum(sizes.get(k, 0) for k in SEGMENTS[: SEGMENTS.index("history")])
            history = payload[start : start + sizes.get("history", 0)]
            header["history"] = _decode_history(path, header.get("history", {}), history)
    return header, payload


def _check_header(path: Path, header: dict[str, Any]) -> None:
    """The fields a training checkpoint must have, with their types."""
    if not _is_count(header.get("step")):
        raise _fail(path, f"header 'step' must be an integer >= 0; got {header.get('step')!r:.100}.")
    if not isinstance(header.get("spec"), dict):
        raise _fail(path, "header 'spec' must be a table (the model's spec).")
    for key in ("rng", "state", "history"):
        if not isinstance(header.get(key, {}), dict):
            raise _fail(path, f"header {key!r} must be a table; got {type(header[key]).__name__}.")
    for key, value in header.get("rng", {}).items():  # seed, epoch, batch, batch_size, num_examples
        if value is not None and not (_is_count(value) and value < 2**63):
            raise _fail(path, f"header 'rng.{key}' must be an integer in 0..2**63-1; got {value!r:.60}.")
    state = header.get("state", {})
    for key in ("best_val_nll", "elapsed"):
        value = state.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not abs(value) < float("inf")):
            raise _fail(path, f"header 'state.{key}' must be a finite number; got {value!r:.60}.")
    if "bad_evals" in state and not (_is_count(state["bad_evals"]) and state["bad_evals"] < 2**63):
        raise _fail(path, f"header 'state.bad_evals' must be an integer >= 0; got {state['bad_evals']!r:.60}.")
    if not isinstance(state.get("settings", {}), dict):
        raise _fail(path, "header 'state.settings' must be a table.")


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The verified JSON header of a checkpoint (spec, step, rng, state, history)."""
    return read_verified(path)[0]


def _first_difference(a: Any, b: Any, where: str = "spec") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}.{k}"
            d = _first_difference(a[k], b[k], f"{where}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{where} ({a!r} in the checkpoint, {b!r} in the model)"


def read_npy(f: io.BytesIO, where: str, *, shape: tuple[int, ...] | None = None, dtype: Any = None) -> np.ndarray:
    """One ``.npy`` record from ``f`` (no pickle), its header checked before any allocation:
    a plain numeric dtype, the ``shape``/``dtype`` asked for (when given), and a byte count
    no larger than what is left in ``f`` (a hostile header can declare any shape)."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            got_shape, fortran, got_dtype = npy.read_array_header_1_0(f)
        elif version == (2, 0):
            got_shape, fortran, got_dtype = npy.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, OverflowError) as err:
        raise CheckpointError(f"{where}: unreadable array header ({type(err).__name__}: {str(err)[:200]}).") from None
    if got_dtype.hasobject or got_dtype.fields is not None or got_dtype.kind not in "biufc":
        raise CheckpointError(f"{where}: array of dtype {got_dtype}; only plain numeric arrays are read.")
    want = None if dtype is None else np.dtype(dtype)
    # A float (int) array loads into a float (int) leaf of another width: a model saved in
    # float32 runs under jax_enable_x64 and back (cast, as jax casts everywhere); integers
    # must fit.
    if shape is not None and (tuple(got_shape) != tuple(shape) or (want is not None and got_dtype.kind != want.kind)):
        raise CheckpointError(
            f"{where}: array of shape {tuple(got_shape)} dtype {got_dtype} where the model has shape {tuple(shape)} "
            f"dtype {np.dtype(dtype) if dtype is not None else '?'}."
        )
    count = 1
    for s in got_shape:
        count *= int(s)
    nbytes = count * got_dtype.itemsize
    left = len(f.getbuffer()) - f.tell()
    if nbytes > left:
        raise CheckpointError(f"{where}: array of shape {tuple(got_shape)} needs {nbytes} bytes; {left} are left.")
    data = np.frombuffer(f.read(nbytes), dtype=got_dtype, count=count).reshape(got_shape, order="F" if fortran else "C")
    if want is None or want == got_dtype:
        return data.copy()
    if want.kind in "iu" and data.size and (data.min() < np.iinfo(want).min or data.max() > np.iinfo(want).max):
        raise CheckpointError(f"{where}: {got_dtype} values outside the range of the model's {want}.")
    return data.astype(want)


def _loader(path: Path, segment: str):
    where = f"Checkpoint {str(path)!r}, segment {segment!r}"

    def load_leaf(f, x):
        if isinstance(x, (jax.Array, np.ndarray)):
            y = read_npy(f, where, shape=x.shape, dtype=x.dtype)
            return jnp.asarray(y) if isinstance(x, jax.Array) else y
        if isinstance(x, (bool, int, float, complex, np.generic)):  # a Python/NumPy scalar leaf
            y = read_npy(f, where, shape=())
            return type(x)(y.item())
        return x

    return load_leaf


def _restore(path: Path, payload: bytes, header: dict, segment: str, like):
    sizes = header["segments"]
    start = sum(sizes.get(k, 0) for k in SEGMENTS[: SEGMENTS.index(segment)])
    chunk = payload[start : start + sizes.get(segment, 0)]
    if not chunk:
        return None
    if like is None:
        raise CheckpointError(f"Checkpoint {str(path)!r}: no template given for segment {segment!r}.")
    buf = io.BytesIO(chunk)
    try:
        tree = eqx.tree_deserialise_leaves(buf, like, filter_spec=_loader(path, segment))
    except CheckpointError:
        raise
    except Exception as err:  # structure mismatch: e.g. another optimizer; a scalar of another type
        cause = err
        while cause is not None and not isinstance(cause, CheckpointError):
            cause = cause.__cause__  # ours, wrapped (once per tree level) by equinox with the leaf's path
        if cause is not None:
            raise cause from None
        raise CheckpointError(
            f"Checkpoint {str(path)!r}, segment {segment!r} does not match the given template ({err})."
        ) from err
    if buf.tell() != len(chunk):
        raise CheckpointError(
            f"Checkpoint {str(path)!r}, segment {segment!r}: {len(chunk) - buf.tell()} bytes left unread "
            "(the template has fewer arrays than the checkpoint, e.g. another optimizer)."
        )
    return tree


def _check_restored(path: Path, template: Model, restored: Model) -> None:
    """A file cannot change the model's meaning: every integer or boolean array (MADE's
    degrees, masks, index tables, schedules: all derived from the spec) must equal, bit
    for bit, the one compiling the stored spec builds; every float array (the weights)
    must be finite."""
    flat_t = jax.tree_util.tree_flatten_with_path(template)[0]
    flat_r = jax.tree_util.tree_leaves(restored)
    for (where, t), r in zip(flat_t, flat_r):
        if not isinstance(t, (jax.Array, np.ndarray)):
            continue
        name = jax.tree_util.keystr(where)
        a = np.asarray(r)
        if np.issubdtype(a.dtype, np.inexact):
            if np.isnan(a).any():
                raise _fail(path, f"array {name} holds {int(np.isnan(a).sum())} NaN values; weights must be numbers.")
        elif not np.array_equal(a, np.asarray(t)):
            raise _fail(path, f"array {name} differs from the one the stored spec derives (structural arrays are "
                              "rebuilt from the spec, never taken from a file: the file was edited).")
    for i, comp in enumerate(getattr(restored, "components", ())):
        if getattr(type(comp.conditioner), "trainable", False):  # gradient-trained weights (tables may hold -inf)
            for leaf in jax.tree_util.tree_leaves(comp.conditioner):
                if isinstance(leaf, (jax.Array, np.ndarray)) and np.issubdtype(np.asarray(leaf).dtype, np.inexact) \
                        and not np.isfinite(np.asarray(leaf)).all():
                    raise _fail(path, f"the weights of conditioner {i} ({type(comp.conditioner).__name__}) hold "
                                      "infinite values; weights must be finite.")


def load_checkpoint(
    path: str | os.PathLike, model: Model | None = None, *, opt_state_like: Any = None, best_like: Any = None
) -> Checkpoint:
    """Read and verify a checkpoint.

    **Arguments:**
        path: the checkpoint file.
        model: a model of the same spec (the template of the arrays); ``None`` compiles
            the stored spec.
        opt_state_like: a template optimizer state (``optimizer.init(params)``) to restore it.
        best_like: a template of the best-parameters tree to restore it.

    **Raises:** ``CheckpointError`` when the file is missing, not a checkpoint, truncated,
    corrupted, or was written for another spec or optimizer. No file is changed.
    """
    path = Path(path)
    header, payload = read_verified(path)
    if model is None:
        from .model import compile as compile_spec

        try:
            spec = spec_from_dict(header["spec"], source=f"checkpoint {str(path)!r}")
        except (MemoryError, TimeoutError):
            raise
        except Exception as err:  # SpecError, and whatever a hostile spec table trips (never silently)
            raise CheckpointError(f"Checkpoint {str(path)!r}: stored spec cannot be built ({err}).") from err
        from .errors import SpecError

        try:
            model = compile_spec(spec)  # checks the memory budget before allocating anything
        except SpecError as err:
            raise SpecError(f"Checkpoint {str(path)!r}: {err}") from None
    else:
        try:
            diff = _first_difference(header["spec"], _jsonable(model.spec))
        except RecursionError:
            diff = "spec (nested too deeply)"
        if diff is not None:
            raise CheckpointError(f"Checkpoint {str(path)!r} was written for another spec: differs at {diff}.")
    restored = _restore(path, payload, header, "model", model)
    if restored is not None:
        _check_restored(path, model, restored)
    return Checkpoint(
        header=header,
        model=restored,
        opt_state=_restore(path, payload, header, "opt_state", opt_state_like) if opt_state_like is not None else None,
        best=_restore(path, payload, header, "best", best_like) if best_like is not None else None,
    )


def load_model(path: str | os.PathLike) -> Model:
    """The model stored in a checkpoint (its spec compiled, its arrays restored)."""
    return load_checkpoint(path).model


# ---------------------------------------------------------------- one writer per file
class CheckpointLock:
    """``<checkpoint>.lock``: JSON ``{"pid", "host", "started"}``, created with ``O_EXCL`` so
    two runs cannot both hold it. Released by ``release()``, when the lock object is
    collected (the end of ``fit``) or at interpreter exit. A lock left by a process that
    is gone (same host, pid not running) is taken over; one held by a live process, or
    by another host, makes the next run refuse with a ``CheckpointError`` naming its owner."""

    def __init__(self, path: Path):
        self.path = path
        self._finalizer = None

    def release(self) -> None:
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> "CheckpointLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _unlink_own(path: Path, token: str) -> None:
    try:
        if json.loads(path.read_text()).get("token") == token:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _owner_alive(owner: dict) -> bool:
    import socket

    if owner.get("host") != socket.gethostname():
        return True  # another host: cannot tell, assume it runs
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return False  # this process: an earlier fit that did not release (e.g. interrupted)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_checkpoint(path: str | os.PathLike) -> CheckpointLock:
    """Take the lock of checkpoint ``path`` for this process (see ``CheckpointLock``).

    **Raises:** ``CheckpointError`` when another live run holds it (its pid, host and start
    time are named)."""
    import socket
    import time
    import uuid
    import weakref

    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "token": token})
    for _ in range(3):
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(lock_path.read_text())
                owner = owner if isinstance(owner, dict) else {}
            except (OSError, ValueError):
                owner = {}  # half-written or unreadable: another run is creating it, or died mid-write
            try:
                abandoned = not owner and time.time() - lock_path.stat().st_mtime > 10
            except FileNotFoundError:
                continue
            if abandoned or (owner and not _owner_alive(owner)):
                try:
                    lock_path.unlink()  # stale: its process is gone
                except FileNotFoundError:
                    pass
                continue
            when = owner.get("started")
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if isinstance(when, (int, float)) else "?"
            raise CheckpointError(
                f"Checkpoint {str(path)!r} is in use by another run (process {owner.get('pid', '?')} on host "
                f"{owner.get('host', '?')!r}, since {since}; lock file {str(lock_path)!r}). Wait for it to finish, "
                "pass another checkpoint path, or delete the lock file if that run is gone."
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(record)
        lock = CheckpointLock(lock_path)
        lock._finalizer = weakref.finalize(lock, _unlink_own, lock_path, token)  # also runs at exit
        return lock
    raise CheckpointError(f"Checkpoint {str(path)!r}: could not take the lock file {str(lock_path)!r}.")
