"""Where is a record anomalous: per-element surprisal ``-log2 p(x_e | x_<e)`` (bits).

``log_prob_terms`` splits ``log p(x)`` exactly by the chain rule, so the surprisal map of
a record adds up to its total bits: the pixels (or columns) that cost the most bits are
where the model finds the record unlike its training data.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from ..model import Model, flat_log_prob_terms
from ..validation import as_context, as_flat


def element_bits(model: Model, x: np.ndarray, context=None, batch_size: int = 1024) -> np.ndarray:
    """Surprisal in bits ``(N, D)`` of validated flat records, in padded chunks."""
    n = x.shape[0]
    b = max(1, min(batch_size, n))
    out = []
    for start in range(0, n, b):
        stop = min(start + b, n)
        xs = np.asarray(x[start:stop])
        cs = None if context is None else np.asarray(context[start:stop])
        if stop - start < b:  # pad to one compiled shape
            xs = np.concatenate([xs, np.repeat(xs[:1], b - (stop - start), axis=0)])
            cs = None if cs is None else np.concatenate([cs, np.repeat(cs[:1], b - (stop - start), axis=0)])
        terms = flat_log_prob_terms(model, jnp.asarray(xs), None if cs is None else jnp.asarray(cs))
        out.append(-np.asarray(terms, np.float64)[: stop - start] / np.log(2.0))
    return np.concatenate(out) if out else np.zeros((0, model.spec.num_elements))


@dataclass(frozen=True)
class Surprisal:
    """Per-element bits ``(N, D)`` with views by variable.

    Attributes:
        bits: flat ``(N, D)`` surprisal in bits.
        maps: variable -> ``(N, *shape)`` bits (an image variable's map is an image).
        by_variable: variable -> ``(N,)`` bits of that variable.
        shares: variable -> ``(N,)`` fraction of the record's total bits (sums to 1).
    """

    bits: np.ndarray
    maps: dict[str, np.ndarray]
    by_variable: dict[str, np.ndarray]
    shares: dict[str, np.ndarray]

    def costliest(self, k: int = 5) -> np.ndarray:
        """Flat indices of each record's ``k`` costliest elements, costliest first ``(N, k)``."""
        return np.argsort(-self.bits, axis=1)[:, :k]


def surprisal(model: Model, data, context=None, *, batch_size: int = 1024) -> Surprisal:
    """Surprisal maps and per-variable shares of ``data`` (validated)."""
    spec = model.spec
    x = np.asarray(as_flat(spec, data))
    ctx = as_context(spec, context, x.shape[0])
    bits = element_bits(model, x, None if ctx is None else np.asarray(ctx), batch_size)
    offsets = spec.layout.offsets
    maps, by_var = {}, {}
    for i, v in enumerate(spec.variables):
        part = bits[:, offsets[i] : offsets[i + 1]]
        maps[v.name] = part.reshape((-1, *v.shape))
        by_var[v.name] = part.sum(axis=1)
    total = bits.sum(axis=1)
    shares = {k: np.divide(b, total, out=np.zeros_like(b), where=total != 0) for k, b in by_var.items()}
    return Surprisal(bits=bits, maps=maps, by_variable=by_var, shares=shares)
