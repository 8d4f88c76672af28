"""``compile``: Spec -> Model, and the Model's exact density and ancestral sampler.

``log p(x) = sum_e log p(x_e | params_e(x_{step < step[e]}))``. All conditionals are
evaluated teacher-forced in one jitted pass (components are unrolled at trace time into
one XLA program; nothing loops over elements or steps). ``sample`` runs the S steps of
the partition inside one ``lax.scan``; every conditioner's ``step`` computes only the
parameters of the current block, from its incremental cache.

``Table`` components are the exception that makes one compiled model serve a 3-variable
table and a 1,041-variable Bayesian network alike: they are scored together by one gather
(``conditioners.table.TablePlan``), and a model made only of tables samples by topological
level (``naive`` or not: a table has no cache), as ``interop.BayesNet`` does.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .choice import BoxArgmax, ChoiceRule, Draw, KeepObserved
from .conditioners.base import Conditioner, ConditionerContext
from .conditioners.table import (
    TablePlan,
    gathered_complete,
    gathered_log_prob,
    gathered_terms,
    normalised_cdf,
    padded_logits,
    padded_transpose,
    table_plan,
)
from .errors import DataError
from .features import Encoder
from .heads import Head
from .spec.layout import component_schedule
from .spec.spec import Spec
from .validation import as_context, as_flat, to_dict


class Component(eqx.Module):
    """One variable's elements with their head and conditioner.

    ``block_rows[s]`` are the rows (indices into ``elements``) drawn at step ``s``,
    padded with ``n``; ``block_elements[s]`` the same as flat element indices, padded
    with ``D``.
    """

    name: str = eqx.field(static=True)
    head: Head = eqx.field(static=True)
    conditioner: Conditioner
    elements: Int[Array, " n"]
    block_rows: Int[Array, "s m"]
    block_elements: Int[Array, "s m"]


def compile(spec: Spec, key: PRNGKeyArray | None = None) -> "Model":
    """Build the model of ``spec``: one conditioner per variable, masks from the step vector.

    **Arguments:**
        spec: a validated ``Spec``.
        key: PRNG key for weight initialisation (default ``jax.random.key(0)``).
    """
    from .budget import check_budget  # refuse a model over the memory budget before allocating it

    check_budget(spec)
    key = jax.random.key(0) if key is None else key
    layout, steps = spec.layout, spec.steps
    components = []
    for i, (var, (name, cond)) in enumerate(zip(spec.variables, spec.conditionals)):
        elements = layout.elements_of(name)
        head = cond.bind_head(var)
        random_init = getattr(cond, "random_init", True)  # tables are built without a key
        rows, elems = component_schedule(steps, elements)
        ctx = ConditionerContext(
            layout=layout,
            steps=steps,
            variable=var,
            elements=elements,
            parents=cond.parent_names,
            head=head,
            context_size=spec.context_size,
            block_rows=rows,
        )
        components.append(
            Component(
                name=name,
                head=head,
                conditioner=cond.build(ctx, key=jax.random.fold_in(key, i) if random_init else None),
                elements=jax.device_put(np.asarray(elements, dtype=np.int32)),
                block_rows=jax.device_put(np.asarray(rows)),
                block_elements=jax.device_put(np.asarray(elems)),
            )
        )
    return Model(spec=spec, encoder=Encoder.from_layout(layout), components=tuple(components))


class Model(eqx.Module):
    """A compiled autoregressive model (an equinox Module: arrays are leaves).

    Data is a mapping ``name -> (batch, *shape)`` or a flat ``(batch, D)`` array in the
    spec's element layout. Methods validate their input, then call jitted code.
    """

    spec: Spec = eqx.field(static=True)
    encoder: Encoder
    components: tuple[Component, ...]

    # ------------------------------------------------------------------ density
    @property
    def uses_dropout(self) -> bool:
        """True when some conditioner drops units while training (``fit`` then passes keys)."""
        return any(c.conditioner.uses_dropout for c in self.components)

    def _example_params(self, x, feats, context, key=None) -> tuple[Float[Array, "n p"], ...]:
        if key is None:  # scoring and sampling: no dropout anywhere
            return tuple(c.conditioner(x, feats, context) for c in self.components)
        return tuple(
            c.conditioner(x, feats, context, key=jax.random.fold_in(key, i)) if c.conditioner.uses_dropout
            else c.conditioner(x, feats, context)
            for i, c in enumerate(self.components)
        )

    def _example_terms(self, x: Float[Array, " d"], context, key=None) -> Float[Array, " d"]:
        feats = self.encoder(x)
        offsets = self.spec.layout.offsets  # component i owns the contiguous slice of variable i
        terms = [
            c.head.log_prob(params, x[offsets[i] : offsets[i + 1]])
            for i, (c, params) in enumerate(zip(self.components, self._example_params(x, feats, context, key)))
        ]
        return jnp.concatenate(terms) if len(terms) > 1 else terms[0]

    def _table_cells(self, plan: TablePlan) -> Float[Array, " c"]:
        """Every table's log-probabilities (``log_softmax`` of its logits, as the categorical head
        reads them), flattened and concatenated in component order."""
        return self._table_logits(plan, normalise=True).reshape(-1)

    def _table_logits(self, plan: TablePlan, normalise: bool = False) -> Float[Array, "r w"]:
        return padded_logits(plan, [self.components[i].conditioner.log_probs for i in plan.components], normalise)

    def _batch_terms(self, x: Float[Array, "b d"], context, key=None) -> Float[Array, "b d"]:
        """Per-element terms of a batch: the table components by one gather (``TablePlan``),
        the others by their per-example pass (vmapped)."""
        plan = table_plan(self.spec)
        if plan is None:
            if key is None:
                return jax.vmap(self._example_terms)(x, context)
            return jax.vmap(self._example_terms)(x, context, jax.random.split(key, x.shape[0]))
        tables = gathered_terms(plan, self._table_cells(plan), x)
        if plan.covers_all:
            return tables
        others = [i for i in range(len(self.components)) if i not in plan.components]
        keys = None if key is None else jax.random.split(key, x.shape[0])
        rest = jax.vmap(lambda xi, ci, ki: self._example_terms_of(others, xi, ci, ki))(x, context, keys)
        parts, where = [], dict(zip(plan.components, plan.slices))
        for i in range(len(self.components)):
            if i in where:
                parts.append(tables[:, where[i][0] : where[i][1]])
            else:
                parts.append(rest[others.index(i)])
        return jnp.concatenate(parts, axis=1)

    def _example_terms_of(self, which: list[int], x: Float[Array, " d"], context, key=None) -> list[Array]:
        """Terms of components ``which`` (one example)."""
        feats = self.encoder(x)
        offsets = self.spec.layout.offsets
        out = []
        for i in which:
            c = self.components[i]
            if key is not None and c.conditioner.uses_dropout:
                params = c.conditioner(x, feats, context, key=jax.random.fold_in(key, i))
            else:
                params = c.conditioner(x, feats, context)
            out.append(c.head.log_prob(params, x[offsets[i] : offsets[i + 1]]))
        return out

    def _prepare(self, data, context):
        x = as_flat(self.spec, data)
        return x, as_context(self.spec, context, x.shape[0])

    def log_prob(self, data, context=None) -> Float[Array, " b"]:
        """Exact joint log-likelihood (nats) of each row: ``sum_e log p(x_e | x_<e)``."""
        return flat_log_prob(self, *self._prepare(data, context))

    def log_prob_terms(self, data, context=None) -> Float[Array, "b d"]:
        """Per-element conditional log-probabilities ``(batch, D)`` in the flat layout."""
        return flat_log_prob_terms(self, *self._prepare(data, context))

    def log_prob_by_variable(self, data, context=None) -> dict[str, Float[Array, " b"]]:
        """Each variable's share of the log-likelihood (sums of its elements' terms)."""
        terms = self.log_prob_terms(data, context)
        offsets = self.spec.layout.offsets
        return {v.name: terms[:, offsets[i] : offsets[i + 1]].sum(-1) for i, v in enumerate(self.spec.variables)}

    def bits_per_dim(self, data, context=None) -> Float[Array, " b"]:
        """``-log2 p(x) / D`` for each row."""
        return -self.log_prob(data, context) / (self.spec.num_elements * math.log(2.0))

    def conditional_params(self, data, context=None) -> dict[str, Float[Array, "b n p"]]:
        """Teacher-forced head parameters of every element, by variable."""
        params = flat_conditional_params(self, *self._prepare(data, context))
        return {c.name: p for c, p in zip(self.components, params)}

    # ----------------------------------------------------------------- sampling
    def _uniforms(self, key: PRNGKeyArray, n: int, per_row: int | None = None) -> tuple[Array, ...]:
        """Uniforms ``(S, n, m_i, U_i)`` per component from one vectorised draw (``U_i`` the
        head's ``num_uniforms`` unless ``per_row``). Drawn inside the loop, a generator call
        per step took a third of an FVSBN step on CPU; the array is about ``U`` times the
        size of the samples (an rbg key: one XLA RngBitGenerator op)."""
        dtype = jnp.result_type(float)
        comp_keys = jax.random.wrap_key_data(jax.random.bits(key, (len(self.components), 4), jnp.uint32), impl="rbg")
        return tuple(
            jax.random.uniform(
                k, (self.spec.steps.num_steps, n, c.block_rows.shape[1], per_row or c.head.num_uniforms), dtype
            )
            for k, c in zip(comp_keys, self.components)
        )

    def _by_step(self, a: Array) -> tuple[Array, ...]:
        """Per-example flat ``(n, D)`` values as each component's blocks, ``(S, n, m_i)``
        (padded rows read a 0)."""
        padded = jnp.concatenate([a, jnp.zeros_like(a[:, :1])], axis=1)
        return tuple(jnp.moveaxis(padded[:, c.block_elements], 1, 0) for c in self.components)

    def _scan(
        self, rule: ChoiceRule, inputs: tuple, n: int, context, naive: bool, num_steps: int | None = None,
        chunk: int | None = None,
    ) -> Float[Array, "n d"]:
        """The one sequential pass: for each step, every conditioner's block parameters from
        its cache (or its full pass when ``naive``), then ``rule`` picks the block's values.
        ``inputs[i]`` is component ``i``'s tuple of ``(S, n, m_i, ...)`` rule inputs.

        The ``n`` rows run ``chunk`` at a time (default ``sampling_chunk(spec, n)``, from the
        memory budget), one chunk after the other (``lax.map``), so the caches of only
        ``chunk`` rows exist at once. Every input is drawn for all ``n`` rows before the
        split and rows never interact, so the result does not depend on ``chunk``."""
        chunk = sampling_chunk(self.spec, n) if chunk is None else chunk
        if chunk >= n:
            return self._scan_rows(rule, inputs, n, context, naive, num_steps)
        k = -(-n // chunk)
        pad = k * chunk - n

        def split(a: Array, axis: int) -> Array:  # (..., n, ...) -> (k, ..., chunk, ...)
            if pad:  # repeat row 0: padding rows hold valid inputs, and are dropped below
                first = jax.lax.slice_in_dim(a, 0, 1, axis=axis)
                a = jnp.concatenate([a, jnp.repeat(first, pad, axis=axis)], axis=axis)
            a = a.reshape(*a.shape[:axis], k, chunk, *a.shape[axis + 1 :])
            return jnp.moveaxis(a, axis, 0)

        parts = (jax.tree.map(lambda a: split(a, 1), inputs), None if context is None else split(context, 0))
        out = jax.lax.map(lambda p: self._scan_rows(rule, p[0], chunk, p[1], naive, num_steps), parts)
        return out.reshape(k * chunk, out.shape[-1])[:n]

    def _scan_rows(
        self, rule: ChoiceRule, inputs: tuple, n: int, context, naive: bool, num_steps: int | None = None
    ) -> Float[Array, "n d"]:
        """``_scan`` of ``n`` rows at once."""
        spec = self.spec
        d, f = spec.num_elements, self.encoder.num_features
        dtype = jnp.result_type(float)
        identity = self.encoder.is_identity  # feats == x: keep one buffer
        ctx_axis = None if context is None else 0
        caches0 = tuple(
            jax.vmap(lambda c, cond=comp.conditioner: cond.init_cache(c), in_axes=ctx_axis, axis_size=n)(context)
            for comp in self.components
        )

        def body(carry, xs):
            s, inputs_s = xs
            x, feats, caches = carry
            new_caches = []
            for i, comp in enumerate(self.components):
                cond = comp.conditioner
                step_fn = cond.naive_step if naive else cond.step
                rows, elems = comp.block_rows[s], comp.block_elements[s]
                params, cache = jax.vmap(step_fn, in_axes=(0, 0, 0, ctx_axis, None, None))(
                    caches[i], x, x if identity else feats, context, s, rows
                )
                values = jax.vmap(lambda p, a, h=comp.head: rule.choose(h, p, a))(params, inputs_s[i])
                # Padded rows carry element index D (feature index F): dropped, not written.
                x = x.at[:, elems].set(values, mode="drop")
                if not identity:
                    feats = jax.vmap(self.encoder.write, in_axes=(0, 0, None))(feats, values, elems)
                new_caches.append(cache)
            return (x, feats, tuple(new_caches)), None

        x0 = jnp.zeros((n, d), dtype)
        feats0 = jnp.zeros((n, 0 if identity else f), dtype)
        steps = spec.steps.num_steps if num_steps is None else num_steps
        xs = (jnp.arange(steps), jax.tree.map(lambda a: a[:steps], inputs))
        (x, _, _), _ = jax.lax.scan(body, (x0, feats0, caches0), xs)
        return x

    def _gathered_sample(
        self, key: PRNGKeyArray, x: Array, observed: Array | None, chunk: int | None = None
    ) -> Float[Array, "n d"]:
        """Ancestral draws of a model made only of tables, level by level (``TablePlan``):
        one uniform per (element, row), exact samples; ``observed`` entries of ``x`` kept.
        The rows run ``chunk`` at a time (default ``sampling_chunk``) after every uniform is
        drawn, so the draws do not depend on ``chunk``."""
        plan = table_plan(self.spec)
        assert plan is not None
        n = x.shape[0]
        cdf = normalised_cdf(self._table_logits(plan))
        u = jax.random.uniform(key, (n, plan.num_table_elements), cdf.dtype)
        obs = jnp.zeros(x.shape, bool) if observed is None else observed > 0
        xi = x.astype(jnp.int32)

        def rows(part):
            xr, ur, orr = part
            xt = gathered_complete(plan, cdf, ur.T, padded_transpose(xr), padded_transpose(orr))
            return xt[:-1].T

        chunk = sampling_chunk(self.spec, n) if chunk is None else chunk
        if chunk >= n:
            out = rows((xi, u, obs))
        else:
            k = -(-n // chunk)
            pad = k * chunk - n
            parts = tuple(jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]).reshape(k, chunk, a.shape[1])
                          for a in (xi, u, obs))
            out = jax.lax.map(rows, parts).reshape(k * chunk, -1)[:n]
        return out.astype(jnp.result_type(float))

    def _all_tables(self) -> bool:
        plan = table_plan(self.spec)
        return plan is not None and plan.covers_all

    def _sample_impl(
        self, key: PRNGKeyArray, n: int, context, naive: bool, num_steps: int | None = None,
        chunk: int | None = None,
    ) -> Float[Array, "n d"]:
        if num_steps is None and self._all_tables():  # tables have no cache: naive is the same pass
            return self._gathered_sample(key, jnp.zeros((n, self.spec.num_elements), jnp.int32), None, chunk)
        noise = tuple((u,) for u in self._uniforms(key, n))
        return self._scan(Draw(), noise, n, context, naive, num_steps, chunk)

    def _sample_conditional_impl(self, key, x, observed, context, naive: bool, chunk: int | None = None):
        if self._all_tables():
            return self._gathered_sample(key, x, observed, chunk)
        n = x.shape[0]
        inputs = tuple(zip(self._uniforms(key, n), self._by_step(x), self._by_step(observed)))
        return self._scan(KeepObserved(), tuple(inputs), n, context, naive, chunk=chunk)

    def _purify_impl(self, key, x, eps, context, rule: ChoiceRule, naive: bool, chunk: int | None = None):
        n = x.shape[0]
        refs, radii = self._by_step(x), self._by_step(eps)
        if isinstance(rule, BoxArgmax):
            inputs = tuple(zip(refs, radii))
        else:
            inputs = tuple(zip(self._uniforms(key, n, per_row=1), refs, radii))
        return self._scan(rule, inputs, n, context, naive, chunk=chunk)

    def sample_flat(
        self, key: PRNGKeyArray, n: int, context=None, *, naive: bool = False, chunk: int | None = None
    ) -> Float[Array, "n d"]:
        """``n`` ancestral samples as a flat ``(n, D)`` array.

        ``naive=True`` recomputes every conditioner's full pass at each step: the
        reference the cached sampler must reproduce (identical discrete draws; real draws
        equal to float rounding, as an incremental product may differ in the last ulp).
        The uniforms of all steps are drawn first (``Head.sample_uniform``): memory for
        about ``num_uniforms`` (1 or 2) times the samples, besides the samples themselves.
        The samples are then drawn ``chunk`` rows at a time (default
        ``arprob.budget.sampling_chunk``: as many as fit the memory budget and the working
        set, ``budget.WORKING_SET_BYTES``), with the same values for any ``chunk``.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"Expected a positive integer number of samples; got {n!r}.")
        return flat_sample(self, key, n, as_context(self.spec, context, n), naive, None, _chunk(self.spec, n, chunk))

    def sample(self, key: PRNGKeyArray, n: int, context=None, *, chunk: int | None = None) -> dict[str, Array]:
        """``n`` ancestral samples as ``name -> (n, *shape)`` (discrete values as int32);
        ``chunk`` as in ``sample_flat``."""
        return to_dict(self.spec, self.sample_flat(key, n, context, chunk=chunk))

    def sample_conditional(
        self, key: PRNGKeyArray, data, observed, context=None, *, naive: bool = False, chunk: int | None = None
    ) -> dict[str, Array]:
        """Complete ``data``: observed elements keep their values, the rest are drawn in order.

        ``observed`` is a boolean mask: flat ``(D,)`` or ``(n, D)``, or a mapping ``name ->
        bool array`` of the variable's shape (``(*shape)`` or ``(n, *shape)``; names left out
        are unobserved). Unobserved entries of ``data`` are ignored but must be valid values.
        Exact samples of ``p(x_unobserved | x_observed)`` when every observed element comes
        before every unobserved one in the ordering; otherwise observed values inform only
        the elements after them (see ``arprob.choice``). With nothing observed, the same
        draws as ``sample`` for the same key. ``chunk``: rows per pass, as in ``sample_flat``.
        """
        x, ctx = self._prepare(data, context)
        mask = observed_mask(self.spec, observed, x.shape[0])
        chunk = _chunk(self.spec, x.shape[0], chunk)
        return to_dict(self.spec, flat_sample_conditional(self, key, x, jnp.asarray(mask), ctx, naive, chunk))

    # ------------------------------------------------------------------ helpers
    def to_flat(self, data):
        """Validated flat ``(batch, D)`` form of ``data``."""
        return as_flat(self.spec, data)

    def to_dict(self, flat) -> dict[str, Array]:
        return to_dict(self.spec, flat)


# Jitted entry points on validated flat arrays. They are module-level functions under plain
# ``jax.jit`` on purpose: an equinox bound method is rebuilt on every attribute access
# (~100 us), about a tenth of a D=784 FVSBN log_prob at batch 256. Use them inside your own
# jitted code or when the data is already validated; the Model methods check their input.
@jax.jit
def flat_log_prob_terms(model: Model, x: Float[Array, "b d"], context=None) -> Float[Array, "b d"]:
    """Per-element conditional log-probabilities of a flat, validated ``x``."""
    return model._batch_terms(x, context)


@jax.jit
def flat_log_prob(model: Model, x: Float[Array, "b d"], context=None) -> Float[Array, " b"]:
    """Joint log-likelihood of each row of a flat, validated ``x``."""
    plan = table_plan(model.spec)
    if plan is not None and plan.covers_all:  # summed as gathered
        return gathered_log_prob(plan, model._table_cells(plan), x)
    return jnp.sum(model._batch_terms(x, context), axis=-1)


@jax.jit
def flat_train_log_prob(model: Model, x: Float[Array, "b d"], context, key: PRNGKeyArray) -> Float[Array, " b"]:
    """The training-time log-likelihood of each row: as ``flat_log_prob`` but with dropout
    on (one key per row, from ``key``) in conditioners declared with ``dropout > 0``; equal to
    ``flat_log_prob`` for a model without dropout."""
    return jnp.sum(model._batch_terms(x, context, key), axis=-1)


@jax.jit
def flat_conditional_params(model: Model, x: Float[Array, "b d"], context=None) -> tuple[Array, ...]:
    """Teacher-forced head parameters, one ``(b, n, p)`` array per component."""
    return jax.vmap(lambda xi, ci: model._example_params(xi, model.encoder(xi), ci))(x, context)


flat_sample = jax.jit(Model._sample_impl, static_argnums=(2, 4, 5, 6))
"""``flat_sample(model, key, n, context, naive, num_steps=None, chunk=None)``: ``(n, D)``
ancestral samples; with ``num_steps`` only the first steps are drawn (the rest stay 0),
with the same draws as the full sampler (benchmarks time slow samplers this way). The
rows run ``chunk`` at a time (``None``: ``budget.sampling_chunk`` when first traced), with
the same draws for any ``chunk``."""

flat_sample_conditional = jax.jit(Model._sample_conditional_impl, static_argnums=(5, 6))
"""``flat_sample_conditional(model, key, x, observed, context, naive, chunk=None)``: ``x``
completed where the boolean ``observed`` (``(n, D)``) is False (``Model.sample_conditional``)."""

flat_purify = jax.jit(Model._purify_impl, static_argnums=(5, 6, 7))
"""``flat_purify(model, key, x, eps, context, rule, naive, chunk=None)``: the scan with a box
rule (``choice.BoxArgmax()`` or ``choice.BoxSample(T)``, ``key`` unused by the former) around
the flat ``x`` with per-element radii ``eps`` ``(n, D)`` (``arprob.ood.purify``)."""


def sampling_chunk(spec: Spec, n: int) -> int:
    """Rows per pass of the sampling scan for ``n`` rows: ``budget.default_batch_size`` of
    ``"sample"`` (the most that fit the memory budget and the working set), spread evenly
    over the fewest passes (4096 rows of at most 600: 7 passes of 586)."""
    from .budget import default_batch_size  # the budget sits beside the model: imported on use

    most = default_batch_size(spec, "sample", limit=n)
    passes = -(-n // max(most, 1))
    return -(-n // passes)


def _chunk(spec: Spec, n: int, chunk: int | None) -> int:
    """A validated ``chunk`` (``None``: ``sampling_chunk``)."""
    if chunk is None:
        return sampling_chunk(spec, n)
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk: expected a positive integer number of rows per pass; got {chunk!r}.")
    return min(chunk, n)


def observed_mask(spec: Spec, observed, n: int) -> np.ndarray:
    """Validated boolean ``(n, D)`` mask from a flat mask or a mapping ``name -> mask``."""
    layout = spec.layout
    if isinstance(observed, dict):
        unknown = sorted(set(observed) - {v.name for v in spec.variables})
        if unknown:
            names = [v.name for v in spec.variables]
            raise DataError(f"observed: unknown variable {unknown[0]!r}; variables are {names}.")
        parts = []
        for i, v in enumerate(spec.variables):
            size = layout.offsets[i + 1] - layout.offsets[i]
            m = np.asarray(observed.get(v.name, False))
            if m.dtype != np.bool_:
                raise DataError(f"observed[{v.name!r}]: expected a boolean mask; got dtype {m.dtype}.")
            if m.shape in ((), tuple(v.shape)):
                m = np.broadcast_to(m.reshape(-1), (n, size))
            elif m.shape == (n, *v.shape):
                m = m.reshape(n, size)
            else:
                raise DataError(
                    f"observed[{v.name!r}]: expected shape {tuple(v.shape)} or {(n, *v.shape)}; got {m.shape}."
                )
            parts.append(m)
        return np.concatenate(parts, axis=1)
    m = np.asarray(observed)
    if m.dtype != np.bool_:
        raise DataError(f"observed: expected a boolean mask; got dtype {m.dtype}.")
    d = spec.num_elements
    if m.shape not in ((d,), (n, d)):
        raise DataError(
            f"observed: expected a flat mask of shape ({d},) or ({n}, {d}), or a dict by variable; got {m.shape}."
        )
    return np.broadcast_to(m, (n, d))
