"""Scoring a dataset: NLL in nats, bits per dimension, and each variable's share.

For ``N`` examples of ``D`` elements,

    nll = -(1/N) sum_i log p(x_i)                       (nats per example)
    bits_per_dim = nll / (D ln 2)
    per_variable[v] = -(1/N) sum_i sum_{e in v} log p(x_ie | x_i,<e)   (nats per example)

and the per-variable shares add up to ``nll`` (the chain rule splits the joint exactly).
Batches are padded to a fixed size (one compiled function) and optionally sharded over
a device mesh; sums are accumulated in float64 on the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .budget import batch_size_for, default_batch_size
from .data import as_source
from .model import Model, flat_log_prob_terms
from .sharding import Devices, Mesh, check_batch_size, make_mesh, num_devices, replicate, shard_batch


#: the most rows ``evaluate`` scores per call when it picks the batch size itself
DEFAULT_BATCH_SIZE = 1024


@dataclass(frozen=True)
class Evaluation:
    """The scores of a dataset under a model.

    Attributes:
        num_examples: ``N``.
        nll: mean negative log-likelihood, nats per example.
        bits_per_dim: ``nll / (D ln 2)``.
        per_variable: variable -> mean nats per example (sums to ``nll``).
        per_variable_bits: variable -> mean bits per example.
        per_variable_bits_per_dim: variable -> bits per element of that variable.
        log_prob: per-example ``log p(x)`` (nats) when asked for, else ``None``.
    """

    num_examples: int
    nll: float
    bits_per_dim: float
    per_variable: dict[str, float] = field(default_factory=dict)
    per_variable_bits: dict[str, float] = field(default_factory=dict)
    per_variable_bits_per_dim: dict[str, float] = field(default_factory=dict)
    log_prob: np.ndarray | None = None

    def costliest(self) -> str:
        """The variable that costs the most bits per example."""
        return max(self.per_variable, key=self.per_variable.get)

    def table(self) -> str:
        """A markdown table of the per-variable shares, costliest first."""
        rows = ["| variable | nats/example | bits/example | bits/dim | share |", "|---|---:|---:|---:|---:|"]
        for name in sorted(self.per_variable, key=self.per_variable.get, reverse=True):
            share = self.per_variable[name] / self.nll if self.nll else float("nan")
            rows.append(
                f"| {name} | {self.per_variable[name]:.4f} | {self.per_variable_bits[name]:.4f} | "
                f"{self.per_variable_bits_per_dim[name]:.4f} | {share:.1%} |"
            )
        rows.append(f"| **total** | {self.nll:.4f} | {self.nll / math.log(2):.4f} | {self.bits_per_dim:.4f} | 100% |")
        return "\n".join(rows)


@eqx.filter_jit
def _score_batch(model: Model, x, context, valid):
    """Per-example log p and per-variable sums over the valid rows of a padded batch."""
    terms = flat_log_prob_terms(model, x, context)  # (b, D)
    offsets = model.spec.layout.offsets
    by_var = jnp.stack([terms[:, offsets[i] : offsets[i + 1]].sum(-1) for i in range(len(offsets) - 1)], -1)
    by_var = jnp.where(valid[:, None], by_var, 0.0)
    return by_var.sum(-1), by_var.sum(0)


def _to_host(a) -> np.ndarray:
    """A result on the host; one spanning several processes' devices is gathered
    (``multihost_utils.process_allgather``: every process gets the global array)."""
    if getattr(a, "is_fully_addressable", True):
        return np.asarray(a)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(a, tiled=True))


def _pad(a: np.ndarray | None, size: int) -> np.ndarray | None:
    if a is None or a.shape[0] == size:
        return a
    fill = np.repeat(a[:1], size - a.shape[0], axis=0)  # a valid row: padding never trips a check
    return np.concatenate([a, fill], axis=0)


def evaluate(
    model: Model,
    data,
    context=None,
    *,
    batch_size: int | None = None,
    devices: Devices = None,
    return_log_prob: bool = False,
) -> Evaluation:
    """Score ``data`` under ``model`` in batches: NLL, bits/dim, per-variable contributions.

    **Arguments:**
        model: a compiled (fitted) model.
        data: mapping, flat array, ``.npy``/``.npz`` path, ``ArraySource`` or ``BatchStream``.
        context: optional ``(N, context_size)`` conditioning vectors.
        batch_size: rows per compiled call (the last batch is padded; rounded up to a
            multiple of the number of devices). When its estimated peak exceeds the memory
            budget (``arprob.budget``), the largest batch that fits is used instead and a
            ``MemoryBudgetWarning`` says so. ``None``: ``budget.default_batch_size``, the
            largest batch up to 1024 whose estimated activations stay within
            ``budget.WORKING_SET_BYTES`` (1 GiB) and whose peak fits the budget.
        devices: ``None`` (one device), ``"all"``, a count, a device list or a ``Mesh``
            (the batch is sharded over them; see ``arprob.sharding``).
        return_log_prob: also return every example's ``log p(x)``.
    """
    mesh = devices if isinstance(devices, Mesh) else make_mesh(devices)
    return _evaluate(model, as_source(model.spec, data, context), batch_size, mesh, return_log_prob)


def fitting_batch_size(model: Model, batch_size: int, num_devices: int = 1, what: str = "log_prob") -> int:
    """``batch_size``, or the largest multiple of ``num_devices`` whose estimated peak
    (``arprob.budget``: parameters + per-call temporaries + ``B`` x per-example memory) fits
    the memory budget when it does not; the reduction is reported by a ``MemoryBudgetWarning``."""
    fits = batch_size_for(model, batch_size, what=what)
    if fits < batch_size:
        fits = max(num_devices, fits - fits % num_devices)
    return fits


def _evaluate(model: Model, source, batch_size: int | None, mesh, return_log_prob: bool = False, placed_model=None):
    k = num_devices(mesh)
    if batch_size is None:
        batch_size = default_batch_size(model, "log_prob", limit=DEFAULT_BATCH_SIZE)
    if batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1; got {batch_size}.")
    batch_size = -(-batch_size // k) * k
    if source.num_examples is not None:  # no bigger than needed (but a multiple of k)
        batch_size = min(batch_size, -(-source.num_examples // k) * k)
    batch_size = fitting_batch_size(model, batch_size, k)
    check_batch_size(batch_size, mesh)
    placed = placed_model if placed_model is not None else replicate(model, mesh)
    total, by_var, n = 0.0, np.zeros(len(model.spec.variables)), 0
    log_probs = []
    for x, c, valid in source.sequential(batch_size):
        mask = np.arange(batch_size) < valid
        lp, bv = _score_batch(
            placed, shard_batch(_pad(x, batch_size), mesh), shard_batch(_pad(c, batch_size), mesh), shard_batch(mask, mesh)
        )
        bv = _to_host(bv).astype(np.float64)
        by_var += bv
        total += bv.sum()
        n += valid
        if return_log_prob:
            log_probs.append(_to_host(lp)[:valid])
    if n == 0:
        raise ValueError("evaluate: the data hold no examples.")
    spec = model.spec
    names = [v.name for v in spec.variables]
    sizes = [v.size for v in spec.variables]
    nll = -total / n
    per_var = {name: float(-s / n) for name, s in zip(names, by_var)}
    return Evaluation(
        num_examples=n,
        nll=float(nll),
        bits_per_dim=float(nll / (spec.num_elements * math.log(2.0))),
        per_variable=per_var,
        per_variable_bits={k_: v / math.log(2.0) for k_, v in per_var.items()},
        per_variable_bits_per_dim={name: per_var[name] / (size * math.log(2.0)) for name, size in zip(names, sizes)},
        log_prob=np.concatenate(log_probs) if return_log_prob else None,
    )
