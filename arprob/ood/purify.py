"""PixelDefend purification (Song et al. 2018): move an input back towards the data inside
an eps-ball, greedily, in the model's own ordering and partition.

Each element in turn, given the already purified earlier elements, takes

    x'_e = argmax_{v in [x_e - eps_e, x_e + eps_e] ∩ levels} p(x_e = v | x'_<e)

(blocks follow the partition; the coupled channels of a pixel are picked in turn). It is
the model's sampling scan with another choice rule (``arprob.choice.BoxArgmax``), so it
uses every conditioner's incremental cache: one pass of ``S`` cached steps, not one full
network pass per element. Variants (PixelDefend's code):

- ``surprisal_threshold_bits``: ``eps_e = eps`` only where the element's teacher-forced
  surprisal ``-log2 p(x_e | x_<e)`` of the *input* exceeds the threshold, else 0.
- ``temperature``: draw from the box-restricted ``p^(1/T)`` instead of the argmax
  (``arprob.choice.BoxSample``).

The greedy update carries no per-input guarantee: it raises the likelihood of most
attacked inputs, but it may lower it for some, and it never looks ahead. Real-valued
elements are returned unchanged (a box has no levels to enumerate).
"""

from __future__ import annotations

import jax
import numpy as np

from ..choice import BoxArgmax, BoxSample
from ..errors import DataError
from ..model import Model, flat_purify
from ..validation import as_context, as_flat, to_dict
from .surprisal import element_bits


def _radii(model: Model, eps) -> np.ndarray:
    """Per-element eps ``(D,)`` from a number or a mapping ``name -> number``.

    An eps-ball needs ordered levels: a number applies to the ordered variables (``Binary``,
    ``Ordinal``, discretized reals); unordered ``Categorical`` elements keep their value
    (``rot`` is not "within 1" of ``grün``), and a mapping that names one is refused.
    A radius beyond a variable's range is its range (the same set of levels)."""
    spec = model.spec
    per_var = eps if isinstance(eps, dict) else {v.name: eps for v in spec.variables if v.kind != "categorical"}
    unknown = sorted(set(per_var) - {v.name for v in spec.variables})
    if unknown:
        raise DataError(f"purify: eps names unknown variable {unknown[0]!r}.")
    parts = []
    for v in spec.variables:
        e = per_var.get(v.name, 0)
        number = isinstance(e, (int, float, np.integer, np.floating)) and not isinstance(e, bool)
        if not number or not np.isfinite(e) or e < 0:
            raise DataError(f"purify: eps for {v.name!r} must be a finite number >= 0 (in levels); got {e!r}.")
        if v.kind == "categorical" and e > 0:
            raise DataError(f"purify: {v.name!r} is Categorical (unordered levels): an eps-ball has no meaning for "
                            "it; give it eps 0 or declare it Ordinal.")
        levels = v.num_values
        parts.append(np.full(v.size, float(min(e, levels - 1) if levels is not None else e)))
    return np.concatenate(parts)


def purify(
    model: Model,
    data,
    eps,
    context=None,
    *,
    surprisal_threshold_bits: float | None = None,
    temperature: float | None = None,
    key: jax.Array | None = None,
    batch_size: int = 256,
    naive: bool = False,
) -> dict[str, jax.Array]:
    """Purified copy of ``data`` (by variable name), every element within ``eps`` levels.

    **Arguments:**
        model: a fitted model over discrete variables (real variables pass through).
        data: records (mapping, flat array); validated.
        eps: radius in levels: a number, or ``name -> number``.
        surprisal_threshold_bits: purify only elements costing more bits than this.
        temperature: sample from the box-restricted conditional at this temperature
            (needs ``key``) instead of taking the most likely level.
        batch_size: records per compiled call (the last chunk is padded).
        naive: full network pass per step (the reference the cached scan must equal).
    """
    x = np.asarray(as_flat(model.spec, data))
    n = x.shape[0]
    if n == 0:
        raise DataError("purify: the data hold no records.")
    ctx = as_context(model.spec, context, n)
    radii = np.broadcast_to(_radii(model, eps), x.shape).astype(x.dtype)
    if surprisal_threshold_bits is not None:
        if not (isinstance(surprisal_threshold_bits, (int, float, np.number)) and np.isfinite(surprisal_threshold_bits)):
            raise DataError(f"purify: surprisal_threshold_bits must be a finite number; got {surprisal_threshold_bits!r}.")
        bits = element_bits(model, x, None if ctx is None else np.asarray(ctx), batch_size)
        radii = np.where(bits > surprisal_threshold_bits, radii, 0).astype(x.dtype)
    radius = int(np.floor(radii.max()))  # static: only the levels within it are scored
    if temperature is None:
        rule = BoxArgmax(radius)
    else:
        if key is None:
            raise ValueError("purify: temperature sampling needs a key.")
        rule = BoxSample(float(temperature), radius)
    key = jax.random.key(0) if key is None else key
    b = min(batch_size, n)
    out = []
    for i, start in enumerate(range(0, n, b)):
        stop = min(start + b, n)
        pad = b - (stop - start)
        xs, rs = _pad(x[start:stop], pad), _pad(radii[start:stop], pad)
        cs = None if ctx is None else _pad(np.asarray(ctx)[start:stop], pad)
        y = flat_purify(model, jax.random.fold_in(key, i), xs, rs, cs, rule, naive)
        out.append(np.asarray(y)[: stop - start])
    return to_dict(model.spec, np.concatenate(out))


def _pad(a: np.ndarray, pad: int) -> np.ndarray:
    return a if pad == 0 else np.concatenate([a, np.repeat(a[:1], pad, axis=0)])
