"""Maximum-likelihood fitting: closed-form counting for tables, optax for the rest.

The loss is the mean negative log-likelihood per example (nats), teacher-forced, so
every conditional trains in parallel from one batched pass.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .conditioners.table import TableConditioner
from .model import Model
from .validation import as_context, as_flat


class FitResult(NamedTuple):
    """``model``: the fitted model; ``history``: ``{"step": [...], "loss": [...]}`` (nats/example)."""

    model: Model
    history: dict[str, list[float]]


def fit_tables(model: Model, x: np.ndarray, *, chunk: int = 4096) -> Model:
    """Refit every table by counting over flat data ``x`` (Dirichlet-prior posterior mean)."""
    for i, comp in enumerate(model.components):
        cond = comp.conditioner
        if not isinstance(cond, TableConditioner) or cond.fixed:
            continue
        counts = sum(cond.counts(jnp.asarray(x[j : j + chunk])) for j in range(0, len(x), chunk))
        model = eqx.tree_at(lambda m, i=i: m.components[i].conditioner, model, cond.with_counts(counts))
    return model


def trainable_filter(model: Model):
    """Pytree of bools: floating-point leaves of conditioners trained by gradient (not tables)."""
    spec = jax.tree_util.tree_map(lambda _: False, model)
    for i, comp in enumerate(model.components):
        if type(comp.conditioner).trainable:
            sub = jax.tree_util.tree_map(eqx.is_inexact_array, comp.conditioner)
            spec = eqx.tree_at(lambda m, i=i: m.components[i].conditioner, spec, sub)
    return spec


def _has_trainable(model: Model) -> bool:
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, trainable_filter(model)))
    return any(eqx.is_inexact_array(leaf) for leaf in leaves)


def fit(
    model: Model,
    data,
    *,
    context=None,
    optimizer: optax.GradientTransformation | None = None,
    num_steps: int = 1000,
    batch_size: int = 128,
    seed: int = 0,
) -> FitResult:
    """Fit ``model`` to ``data`` by maximum likelihood.

    **Arguments:**
        model: a compiled model.
        data: mapping ``name -> (N, *shape)`` or flat ``(N, D)`` array (validated).
        context: optional ``(N, context_size)`` conditioning vectors.
        optimizer: any optax transformation (default ``optax.adam(1e-2)``).
        num_steps: gradient steps for the non-table parts (0 to fit tables only).
        batch_size: minibatch size; minibatches are drawn by reshuffling every epoch.
        seed: seed of the minibatch order.

    **Returns:** ``FitResult(model, history)``.
    """
    x = np.asarray(as_flat(model.spec, data))
    ctx = as_context(model.spec, context, x.shape[0])
    ctx = None if ctx is None else np.asarray(ctx)
    model = fit_tables(model, x)
    history: dict[str, list[float]] = {"step": [], "loss": []}
    if num_steps <= 0 or not _has_trainable(model):
        return FitResult(model, history)

    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    params, static = eqx.partition(model, trainable_filter(model))
    opt_state = optimizer.init(params)

    @eqx.filter_jit
    def train_step(params, opt_state, xb, cb):
        def loss_fn(p):
            return -jnp.mean(eqx.combine(p, static)._log_prob(xb, cb))

        loss, grads = eqx.filter_value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    n = x.shape[0]
    batch_size = min(batch_size, n)
    order, pos = rng.permutation(n), 0
    for step in range(num_steps):
        if pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        params, opt_state, loss = train_step(params, opt_state, x[idx], None if ctx is None else ctx[idx])
        history["step"].append(step)
        history["loss"].append(float(loss))
    return FitResult(eqx.combine(params, static), history)
