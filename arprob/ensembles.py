"""MADE ensembles: order-agnostic training through ``fit``, the ensemble density and sampler.

A MADE with ``num_orderings = K`` holds ``K`` mask sets (*members*, see
``arprob.conditioners.made``); member ``k`` is an exact autoregressive model in its own
ordering, selected by an int leaf of the conditioner (changing it never retraces).

- ``fit_order_agnostic`` is ``fit`` with the ``OrderAgnostic`` objective: each minibatch's
  loss is the NLL of a member drawn uniformly (``fold_in(key(seed), step)``), so callbacks,
  checkpoints, early stopping, progress and devices all apply; validation scores the
  ensemble density;
- ``ensemble_log_prob`` is ``log (1/K) sum_k p_k(x)``, a mixture of normalised densities,
  hence normalised;
- ``member_model(model, k)`` is member ``k`` as an ordinary ``Model`` (spec with that
  member's ordering, same weights), which samples in its own ordering;
  ``ensemble_sample`` picks a member per sample and samples it exactly.

``model.log_prob`` of such a model is the density of its current member (0 by default).
Every component of a model with ``K > 1`` must be a MADE with the same family.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .conditioners.made import MADEConditioner
from .errors import SpecError
from .model import Component, Model, flat_log_prob, flat_train_log_prob
from .spec.layout import component_schedule
from .spec.orderings import Explicit
from .spec.partitions import ExplicitBlocks
from .train import FitResult, Objective, fit


def _made_components(model: Model) -> tuple[int, np.ndarray]:
    """``(K, member_steps)`` of a model; raises if members are inconsistent across components."""
    conds = [comp.conditioner for comp in model.components]
    made = [cond for cond in conds if isinstance(cond, MADEConditioner)]
    if not made:
        raise SpecError("The model has no MADE conditional.")
    steps = np.asarray(made[0].member_steps)
    k = steps.shape[0]
    if k > 1:
        for comp in model.components:
            cond = comp.conditioner
            if not isinstance(cond, MADEConditioner):
                raise SpecError(
                    f"Variable {comp.name!r} uses {type(cond).__name__}; a model with {k} MADE orderings needs every "
                    "variable to be a MADE with the same ordering family (its ordering cannot change per member)."
                )
            if not np.array_equal(np.asarray(cond.member_steps), steps):
                raise SpecError(
                    f"Variable {comp.name!r}: its MADE has different member orderings from the first MADE; give every "
                    "MADE the same num_orderings, ordering_family and seed."
                )
    return k, steps


def num_members(model: Model) -> int:
    """``K``, the number of mask sets (ensemble members) of a MADE model."""
    return _made_components(model)[0]


def with_member(model: Model, k) -> Model:
    """``model`` with every MADE switched to member ``k`` (``k`` may be a traced int).

    The spec (and so ``sample``) is unchanged: use it for densities; sample a member
    through ``member_model``.
    """
    k = jnp.asarray(k, jnp.int32)
    for i, comp in enumerate(model.components):
        if isinstance(comp.conditioner, MADEConditioner):
            model = eqx.tree_at(lambda m, i=i: m.components[i].conditioner.member, model, k)
    return model


def member_model(model: Model, k: int) -> Model:
    """Member ``k`` as an ordinary ``Model``: its spec has the member's ordering (so it samples
    in that ordering) and its MADEs use mask set ``k`` with the shared weights."""
    num, steps = _made_components(model)
    if not isinstance(k, int) or not 0 <= k < num:
        raise ValueError(f"Expected a member index in 0..{num - 1}; got {k!r}.")
    model = with_member(model, k)
    if k == 0:
        return model
    spec = model.spec
    step = steps[k].astype(np.int64)
    perm = np.lexsort((spec.steps.position, step))
    groups = tuple(tuple(int(e) for e in perm[step[perm] == s]) for s in range(int(step.max()) + 1))
    new_spec = spec.replace(ordering=Explicit(tuple(int(e) for e in perm)), partition=ExplicitBlocks(groups))
    assert np.array_equal(new_spec.steps.step, step)
    components = []
    for comp in model.components:
        rows, elems = component_schedule(new_spec.steps, np.asarray(comp.elements))
        components.append(
            Component(
                name=comp.name,
                head=comp.head,
                conditioner=comp.conditioner,
                elements=comp.elements,
                block_rows=jnp.asarray(rows),
                block_elements=jnp.asarray(elems),
            )
        )
    return Model(spec=new_spec, encoder=model.encoder, components=tuple(components))


def _ensemble_flat(model: Model, x, context, num: int) -> Float[Array, " b"]:
    terms = jnp.stack([flat_log_prob(with_member(model, k), x, context) for k in range(num)])
    return jax.scipy.special.logsumexp(terms, axis=0) - math.log(num)


def ensemble_log_prob(model: Model, data, context=None) -> Float[Array, " b"]:
    """Ensemble density over the ``K`` members: ``log (1/K) sum_k p_k(x)`` (exact, normalised)."""
    num, _ = _made_components(model)
    x, ctx = model._prepare(data, context)
    return _ensemble_flat(model, x, ctx, num)


def ensemble_sample(model: Model, key: PRNGKeyArray, n: int, context=None) -> Float[Array, "n d"]:
    """``n`` exact samples of the ensemble (flat): a uniform member per sample, then its ancestral sampler."""
    num, _ = _made_components(model)
    k_pick, k_draw = jax.random.split(key)
    which = np.asarray(jax.random.randint(k_pick, (n,), 0, num))
    out = np.zeros((n, model.spec.num_elements), np.dtype(jnp.result_type(float)))
    for k in range(num):
        idx = np.flatnonzero(which == k)
        if idx.size:
            ctx = None if context is None else np.asarray(context)[idx]
            out[idx] = np.asarray(member_model(model, k).sample_flat(jax.random.fold_in(k_draw, k), int(idx.size), ctx))
    return jnp.asarray(out)


class OrderAgnostic(Objective):
    """``fit`` objective: the NLL of a uniformly drawn member per minibatch (its index is
    logged as ``history["member"]``); validation scores the ensemble NLL; the fitted model
    is returned at member 0."""

    uses_key = True

    def __init__(self, num_members: int) -> None:
        self.num_members = num_members

    def loss(self, model, x, context, key):
        k = jax.random.randint(key, (), 0, self.num_members)
        member = with_member(model, k)
        if model.uses_dropout:
            return -jnp.mean(flat_train_log_prob(member, x, context, jax.random.fold_in(key, 1))), {"member": k}
        return -jnp.mean(flat_log_prob(member, x, context)), {"member": k}

    def validation_nll(self, model, source, batch_size, mesh):
        total, count = 0.0, 0
        for x, c, valid in source.sequential(batch_size):
            lp = np.asarray(_ensemble_flat(model, jnp.asarray(x), None if c is None else jnp.asarray(c), self.num_members))
            total += float(lp[:valid].sum())
            count += valid
        nll = -total / max(count, 1)
        return nll, nll / (model.spec.num_elements * math.log(2.0))

    def finish(self, model):
        return with_member(model, 0)


def fit_order_agnostic(
    model: Model,
    data,
    *,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float | None = None,
    num_updates: int | None = None,
    num_steps: int | None = None,
    eval_every: int | None = 100,
    **fit_kwargs,
) -> FitResult:
    """Order-agnostic maximum likelihood: ``fit`` with a uniformly drawn member (ordering and
    hidden degrees) per minibatch (``OrderAgnostic``).

    **Arguments:** as ``arprob.fit`` (``optimizer`` default ``optax.adam(learning_rate)``
    with ``fit``'s ``DEFAULT_LEARNING_RATE``, ``num_updates`` default 1000 (``num_steps`` is
    its older name), ``eval_every`` default 100); with validation data the
    ensemble NLL (``-mean ensemble_log_prob``) is recorded in ``history["val_nll"]`` and
    the best model is returned.

    **Returns:** ``FitResult(model, history)``, the model at member 0; ``history["member"]``
    is the member drawn at each step. With ``K = 1`` this is ordinary training.
    """
    num, _ = _made_components(model)
    if fit_kwargs.get("validation") is None:
        eval_every = None
    if num_updates is not None and num_steps is not None:
        raise ValueError(f"Pass num_updates or its old name num_steps, not both; got {num_updates} and {num_steps}.")
    updates = num_updates if num_updates is not None else num_steps
    if updates is None and fit_kwargs.get("epochs") is None:
        updates = 1000
    return fit(model, data, optimizer=optimizer, learning_rate=learning_rate, num_updates=updates,
               eval_every=eval_every, objective=OrderAgnostic(num), **fit_kwargs)
