"""Records as columns: the kind of each column inferred from its dtype, and its encoding.

Input: a NumPy array ``(n, d)`` (columns ``x0 .. x{d-1}``), an image batch ``(n, H, W[, C])``
(one column ``image``, its pixels the elements), a pandas ``DataFrame`` (pandas is only
imported when one is given) or a dict of arrays (1-D, or ``(n, ...)`` for an array column).

The rule (``infer_schema``; ``kinds=`` overrides it per column):

| dtype | kind |
|---|---|
| float | ``real`` (NaN = missing) |
| bool, string / object, pandas ``category`` | ``categorical`` over the observed states (None / NaN / pd.NA = missing) |
| integer with at most ``max_categories`` (20) distinct values | ``categorical`` over the observed values |
| other integers | ``real`` |
| uint8 arrays of ``>= 2`` axes (images) | ``ordinal``: levels ``0 .. max`` observed |

Encoding: categorical and ordinal columns become integer codes (``-1`` missing, ``-2`` a
state never seen in training: probability 0), real columns float64 with NaN for missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError

KINDS = ("real", "categorical", "ordinal")
MISSING, UNSEEN = -1, -2


@dataclass(frozen=True)
class Column:
    """One column: ``name``, ``kind``, the observed ``states`` (categorical, as strings for
    the file), the number of ``levels`` (ordinal) and the element ``shape`` (images)."""

    name: str
    kind: str
    states: tuple[Any, ...] = ()
    levels: int = 0
    shape: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def num_values(self) -> int:
        return len(self.states) if self.kind == "categorical" else self.levels

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "states": [_json_state(s) for s in self.states],
                "levels": self.levels, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Column":
        return cls(name=str(d["name"]), kind=str(d["kind"]), states=tuple(d["states"]), levels=int(d["levels"]),
                   shape=tuple(int(s) for s in d["shape"]))


def _json_state(s: Any) -> Any:
    if isinstance(s, (bool, np.bool_)):
        return bool(s)
    if isinstance(s, (np.integer, int)):
        return int(s)
    if isinstance(s, (np.floating, float)):
        return float(s)
    return str(s)


def as_columns(x: Any) -> dict[str, np.ndarray]:
    """Column name -> array ``(n, ...)`` for any accepted input (see the module docstring)."""
    if type(x).__module__.startswith("pandas") and hasattr(x, "columns"):
        names = [str(c) for c in x.columns]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DataError(f"column {dup!r} appears more than once.")
        return {str(c): _pandas_column(x[c]) for c in x.columns}
    if isinstance(x, dict):
        if not x:
            raise DataError("the data hold no columns.")
        out = {str(k): np.asarray(v) for k, v in x.items()}
    else:
        a = np.asarray(x)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim >= 3:
            out = {"image": a}
        elif a.ndim == 2:
            out = {f"x{j}": a[:, j] for j in range(a.shape[1])}
        else:
            raise DataError(f"expected records as a 2-D array, an image batch, a DataFrame or a dict; got shape {a.shape}.")
    lengths = {k: v.shape[0] if v.ndim else -1 for k, v in out.items()}
    if len(set(lengths.values())) != 1 or min(lengths.values()) < 1:
        raise DataError(f"columns must hold the same number (>= 1) of records; got {lengths}.")
    return out


def _pandas_column(series) -> np.ndarray:
    dtype = str(series.dtype)
    if dtype == "category" or dtype in ("object", "string", "str") or dtype.startswith("string"):
        return np.asarray(series.astype(object).where(series.notna(), None), dtype=object)
    if dtype == "boolean":  # nullable boolean
        return np.asarray(series.astype(object).where(series.notna(), None), dtype=object)
    if dtype.startswith(("Int", "UInt")):  # nullable integers: ints and None, kinds as for integers
        return np.asarray([None if m else int(v) for v, m in zip(series.astype(object), series.isna())], dtype=object)
    if dtype.startswith("Float"):  # nullable floats: NA -> NaN
        return series.astype("float64").to_numpy()
    return series.to_numpy()


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN, pd.NA raises or is ambiguous
    except (TypeError, ValueError):
        return True


def infer_schema(
    columns: dict[str, np.ndarray], kinds: dict[str, str] | None = None, max_categories: int = 20
) -> tuple[Column, ...]:
    """The columns' kinds by the rule of the module docstring (``kinds`` overrides by name)."""
    kinds = dict(kinds or {})
    unknown = [k for k in kinds if k not in columns]
    if unknown:
        raise DataError(f"kinds= names column {unknown[0]!r}, which the data do not have (columns: {list(columns)}).")
    out = []
    for name, a in columns.items():
        kind = kinds.get(name) or _default_kind(a, max_categories)
        if kind not in KINDS:
            raise DataError(f"column {name!r}: unknown kind {kind!r}; expected one of {KINDS}.")
        out.append(_column(name, kind, a))
    return tuple(out)


def _default_kind(a: np.ndarray, max_categories: int) -> str:
    if a.ndim >= 3 or (a.ndim == 2 and a.dtype == np.uint8):
        return "ordinal"
    if a.dtype.kind == "f":
        return "real"
    if a.dtype.kind in "biu":
        return "categorical" if a.dtype.kind == "b" or np.unique(a).size <= max_categories else "real"
    values = [v for v in a.tolist() if not _is_missing(v)]
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):  # nullable integers
        return "categorical" if len(set(values)) <= max_categories else "real"
    return "categorical"


def _column(name: str, kind: str, a: np.ndarray) -> Column:
    if kind == "real":
        if a.ndim > 1:
            raise DataError(f"column {name!r}: a real column must be 1-D; got shape {a.shape[1:]} per record.")
        _as_float(name, a)
        return Column(name, "real")
    if kind == "ordinal":
        v = _as_float(name, a)
        obs = v[~np.isnan(v)]
        if obs.size and (np.any(obs < 0) or np.any(obs != np.round(obs))):
            raise DataError(f"column {name!r}: ordinal levels must be integers >= 0.")
        return Column(name, "ordinal", levels=int(obs.max()) + 1 if obs.size else 1, shape=tuple(a.shape[1:]))
    if a.ndim > 1:
        raise DataError(f"column {name!r}: a categorical column must be 1-D; got shape {a.shape[1:]} per record.")
    seen = {}
    for v in a.tolist():
        if not _is_missing(v):
            seen.setdefault(_key(v), v)
    try:
        states = tuple(seen[k] for k in sorted(seen))
    except TypeError:  # mixed types: order by text
        states = tuple(seen[k] for k in sorted(seen, key=str))
    return Column(name, "categorical", states=tuple(_json_state(s) for s in states))


def _key(v: Any) -> Any:
    """States compare by value: 1, 1.0 and True are distinct from '1' but not from each other."""
    if isinstance(v, (np.generic,)):
        v = v.item()
    return v


def _as_float(name: str, a: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        bad = next((v for v in np.asarray(a, dtype=object).ravel() if not _is_number(v)), None)
        raise DataError(f"column {name!r}: value {bad!r} is not a number.") from None


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return v is None


def encode(schema: tuple[Column, ...], columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(codes (n, Dd) int64, reals (n, Dr) float64)``: discrete elements (categorical
    columns, then every pixel of ordinal columns, in schema order) as codes (``-1`` missing,
    ``-2`` unseen state or level), real columns as floats (NaN missing)."""
    missing = [c.name for c in schema if c.name not in columns]
    if missing:
        raise DataError(f"the data lack column {missing[0]!r} (expected {[c.name for c in schema]}).")
    n = next(iter(columns.values())).shape[0]
    codes, reals = [], []
    for c in schema:
        a = columns[c.name]
        if a.shape[0] != n:
            raise DataError(f"column {c.name!r} has {a.shape[0]} records; expected {n}.")
        if c.kind == "real":
            if a.ndim != 1:
                raise DataError(f"column {c.name!r}: expected one value per record; got shape {a.shape[1:]}.")
            reals.append(_as_float(c.name, a))
        elif c.kind == "ordinal":
            if tuple(a.shape[1:]) != c.shape:
                raise DataError(f"column {c.name!r}: expected records of shape {c.shape}; got {a.shape[1:]}.")
            v = _as_float(c.name, a).reshape(n, -1)
            nan = np.isnan(v)
            bad = ~nan & ((v < 0) | (v >= c.levels) | (v != np.round(v)))
            code = np.where(nan, MISSING, np.where(bad, UNSEEN, np.nan_to_num(v))).astype(np.int64)
            codes.extend(code.T)
        else:
            index = {_key(s): i for i, s in enumerate(c.states)}
            by_text = {str(s): i for i, s in enumerate(c.states)}
            code = np.empty(n, np.int64)
            for r, v in enumerate(a.tolist()):
                if _is_missing(v):
                    code[r] = MISSING
                else:
                    i = index.get(_key(v))
                    code[r] = i if i is not None else by_text.get(str(v), UNSEEN)
            codes.append(code)
    return (np.stack(codes, 1) if codes else np.zeros((n, 0), np.int64),
            np.stack(reals, 1) if reals else np.zeros((n, 0)))

