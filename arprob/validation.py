"""Checks at the public boundary: data and context must fit the spec exactly.

Data is given either as a mapping ``name -> array of shape (batch, *variable.shape)``
or as one flat array ``(batch, D)`` in the spec's element layout (variables in
declaration order, each flattened in C order; see ``Spec.layout``). Discrete values
must be integer-valued and in range; nothing is clipped or rounded. Inside ``jax.jit``
(traced input) the same checks run on the device through ``equinox.error_if`` (one per
variable: the message names the variable and its range, not the element, which is only
known at run time); the jitted ``flat_*`` functions skip all checks, for data validated
already (cost: ``benchmarks/bench_validation.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .errors import DataError
from .spec.spec import Spec


def _is_traced(a) -> bool:
    return isinstance(a, jax.core.Tracer)


def _check_dtype(name: str, a) -> None:
    kind = np.dtype(a.dtype).kind
    if kind not in "biuf":
        raise DataError(f"{name}: expected a boolean, integer or float array; got dtype {a.dtype}.")


def _check_values(spec: Spec, flat: np.ndarray, what: str, rows: np.ndarray | None = None) -> None:
    layout = spec.layout
    name = (lambda r: r) if rows is None else (lambda r: int(rows[r]))  # the row an error names
    integer = flat.dtype.kind in "biu"  # finite and integral by construction
    if not integer:
        bad_rows, bad_cols = np.nonzero(~np.isfinite(flat))
        if bad_rows.size:
            r, e = int(bad_rows[0]), int(bad_cols[0])
            raise DataError(
                f"{what}: {layout.describe_element(e)} in row {name(r)} is {float(flat[r, e])}; values must be finite."
            )
    discrete = layout.num_values > 0
    vals = flat if discrete.all() else flat[:, discrete]
    upper = layout.num_values[discrete][None, :]
    bad = (vals < 0) | (vals >= upper)
    if not integer:
        bad |= vals != np.round(vals)
    if bad.any():
        r, j = (int(i[0]) for i in np.nonzero(bad))
        e = int(np.flatnonzero(discrete)[j])
        var = layout.variables[layout.var_index[e]]
        raise DataError(
            f"{what}: {layout.describe_element(e)} in row {name(r)} has value {float(flat[r, e])}; variable {var.name!r} "
            f"({var.kind}) takes integers 0..{int(layout.num_values[e]) - 1}."
        )


def _host(a) -> np.ndarray:
    """A host array in a dtype that holds its values exactly (checks run in it, no upcast
    copy): integers and bools as they are, float32 and float64 as they are, others as float64."""
    a = np.asarray(a)
    return a if a.dtype.kind in "biu" or a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def _check_traced(spec: Spec, flat: jax.Array, what: str) -> jax.Array:
    """Device-side checks of traced data: finite, and discrete values integers in range."""
    offsets = spec.layout.offsets
    for i, v in enumerate(spec.variables):
        part = flat[:, offsets[i] : offsets[i + 1]]
        bad = ~jnp.isfinite(part)
        expected = "finite values"
        if v.is_discrete:
            bad = bad | (part != jnp.round(part)) | (part < 0) | (part > v.num_values - 1)
            expected = f"integers 0..{v.num_values - 1}"
        flat = eqx.error_if(
            flat, jnp.any(bad),
            f"{what}[{v.name!r}]: a value is not among the {expected} that variable {v.name!r} ({v.kind}) takes "
            "(checked inside jit; call outside jit to see the element, row and value)",
        )
    return flat


def as_flat(spec: Spec, data, *, what: str = "data", rows: np.ndarray | None = None) -> jax.Array | np.ndarray:
    """Validate ``data`` against ``spec`` and return it as a flat ``(batch, D)`` float array.

    ``rows``: the index of each row in a larger dataset (a chunk of a file), which error
    messages name instead of the row's position in ``data``."""
    layout = spec.layout
    dtype = jnp.result_type(float)
    if isinstance(data, Mapping):
        names = [v.name for v in spec.variables]
        for key in data:
            if key not in names:
                raise DataError(f"{what}: unknown variable {key!r}; declared: {names}.")
        parts, batch = [], None
        for v in spec.variables:
            if v.name not in data:
                raise DataError(f"{what}: variable {v.name!r} is missing.")
            a = data[v.name]
            a = a if hasattr(a, "dtype") else np.asarray(a)
            _check_dtype(f"{what}[{v.name!r}]", a)
            if a.ndim != len(v.shape) + 1 or tuple(a.shape[1:]) != v.shape:
                raise DataError(
                    f"{what}[{v.name!r}]: expected shape (batch, {', '.join(map(str, v.shape))}) for variable of "
                    f"shape {v.shape}; got {tuple(a.shape)}."
                )
            if batch is not None and a.shape[0] != batch:
                raise DataError(f"{what}[{v.name!r}]: batch size {a.shape[0]} differs from {batch} of other variables.")
            batch = a.shape[0]
            parts.append(a.reshape(a.shape[0], v.size))  # -1 cannot be inferred from 0 rows
        if any(_is_traced(p) for p in parts):
            return _check_traced(spec, jnp.concatenate([jnp.asarray(p, dtype) for p in parts], axis=1), what)
        flat = np.concatenate([_host(p) for p in parts], axis=1)
    else:
        a = data if hasattr(data, "dtype") else np.asarray(data)
        _check_dtype(what, a)
        if a.ndim != 2 or a.shape[1] != layout.num_elements:
            raise DataError(
                f"{what}: expected a flat array of shape (batch, {layout.num_elements}) in the spec's element "
                f"layout, or a mapping of variable name -> array; got shape {tuple(a.shape)}."
            )
        if _is_traced(a):
            return _check_traced(spec, a.astype(dtype), what)
        flat = _host(a)
    _check_values(spec, flat, what, rows)
    return flat.astype(dtype, copy=False)


def as_context(spec: Spec, context, batch: int) -> jax.Array | None:
    """Validate the optional context: ``(batch, context_size)`` finite floats, or None."""
    if spec.context_size == 0:
        if context is not None:
            raise DataError("context was given, but the spec declares context_size=0.")
        return None
    if context is None:
        raise DataError(
            f"The spec declares context_size={spec.context_size}; pass context of shape (batch, {spec.context_size})."
        )
    c = context if hasattr(context, "dtype") else np.asarray(context)
    _check_dtype("context", c)
    if c.shape != (batch, spec.context_size):
        raise DataError(f"context: expected shape ({batch}, {spec.context_size}); got {tuple(c.shape)}.")
    if _is_traced(c):
        c = jnp.asarray(c, jnp.result_type(float))
        return eqx.error_if(c, jnp.any(~jnp.isfinite(c)), "context: a value is not finite (checked inside jit)")
    bad = np.argwhere(~np.isfinite(np.asarray(c)))
    if bad.size:
        r, j = (int(i) for i in bad[0])
        raise DataError(f"context: entry [{r}, {j}] is {np.asarray(c)[r, j]}; values must be finite.")
    return jnp.asarray(c, jnp.result_type(float))


def to_dict(spec: Spec, flat) -> dict[str, jax.Array]:
    """Split flat ``(batch, D)`` data into ``name -> (batch, *shape)``; discrete as int32."""
    out = {}
    for i, v in enumerate(spec.variables):
        a = flat[:, spec.layout.offsets[i] : spec.layout.offsets[i + 1]].reshape(flat.shape[0], *v.shape)
        out[v.name] = a.astype(jnp.int32) if v.is_discrete else a
    return out
