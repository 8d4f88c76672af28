"""Bayesian-network queries at the scale of real networks: a compiled network of tables.

``BayesNet.from_spec(spec)`` (or ``from_model(model)``) builds from a ``Spec`` of scalar
discrete variables with ``Table`` conditionals one flat array of every CPT entry (in
log space), indexed ``base[v] + row_v(x) * k_v + x_v`` with the mixed-radix row
``row_v(x) = sum_j x_{pa_j(v)} * stride_vj`` of the ``Table`` conditioner. Nothing is
traced per variable, so compiling a 1,000-variable network costs about what a 10-variable
one does:

- ``log_prob(x) = sum_v log p(x_v | x_pa(v))``: ``r`` parent gathers (``r`` the largest
  number of parents) and one gather of all ``n x V`` terms. Exact.
- ``sample``: ancestral draws by topological *level* (level 0: roots; level ``l``:
  variables whose parents all lie in levels ``< l``) inside one ``lax.scan``; every
  variable of a level is drawn at once by inverse CDF from one uniform per (row,
  variable). Exact forward samples.
- ``sample_conditional(key, data, observed)``: observed entries keep their values, the
  others are drawn as above. Exact samples of ``p(unobserved | observed)`` when the
  observed set is *ancestral* (every parent of an observed variable is observed), e.g.
  any prefix of a topological order; otherwise the draws ignore what observed descendants
  say about their ancestors (use ``likelihood_weighting``).
- ``likelihood_weighting(key, evidence, n)``: draws with the evidence clamped and weights
  ``w = prod_{v in E} p(e_v | x_pa(v))``: unbiased importance estimates of
  ``p(evidence)`` and of posterior expectations (self-normalised, consistent), with the
  effective sample size ``(sum w)^2 / sum w^2``. Estimates, not exact values.

It agrees with the generic ``Model`` compiled from the same spec (same densities), and
``random_network`` generates test and benchmark networks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..conditioners.table import Table, TableConditioner, level_chunks
from ..errors import DataError, SpecError
from ..model import Model, flat_log_prob_terms, flat_sample_conditional, observed_mask
from ..spec.spec import Spec
from ..spec.variables import Categorical

#: Networks with fewer variables gather in the data's (n, V) layout, larger ones transposed.
ROW_LAYOUT_BELOW = 100

__all__ = ["BayesNet", "LikelihoodWeighting", "likelihood_weighting", "network_tables", "random_network", "random_tables"]


def network_tables(spec_or_model: Spec | Model) -> list[tuple[Categorical, tuple[str, ...], np.ndarray]]:
    """``(variable, parents, cpt)`` of every variable, ``cpt`` float64 of shape
    ``(*parent_cards, k)``: the given CPTs of a spec, or a model's (fitted) tables."""
    model = spec_or_model if isinstance(spec_or_model, Model) else None
    spec = model.spec if model is not None else spec_or_model
    if not isinstance(spec, Spec):
        raise TypeError(f"Expected an arprob Spec or Model; got {type(spec_or_model).__name__}.")
    layout, steps = spec.layout, spec.steps
    out = []
    for i, (var, (name, cond)) in enumerate(zip(spec.variables, spec.conditionals)):
        if not var.is_discrete or var.shape != ():
            raise SpecError(f"Variable {name!r}: a Bayesian network has scalar discrete variables; it is "
                            f"{var.kind} of shape {var.shape}.")
        if not isinstance(cond, Table) or cond.neighbours is not None:
            raise SpecError(f"Variable {name!r}: a Bayesian network needs a Table conditional without neighbours; "
                            f"it has {type(cond).__name__}.")
        if not cond.all_earlier:
            parents = tuple(cond.parents)
        else:  # parents="all": every earlier element, in flat order (the table's mixed radix)
            earlier = np.flatnonzero(steps.step < steps.step[layout.offsets[i]])
            parents = tuple(layout.variables[layout.var_index[j]].name for j in earlier)
        cards = tuple(int(spec.variable(p).num_values) for p in parents)
        k = int(var.num_values)
        if model is not None:
            table = model.components[i].conditioner
            if not isinstance(table, TableConditioner):
                raise SpecError(f"Variable {name!r}: the model's conditioner is {type(table).__name__}, not a table.")
            probs = np.exp(np.asarray(table.log_probs, dtype=np.float64))
            probs = probs / probs.sum(-1, keepdims=True)
        elif cond.cpt is not None:
            probs = np.asarray(cond.cpt, dtype=np.float64)
        else:
            raise SpecError(f"Variable {name!r}: its Table has no cpt; fit the model and pass the Model, or give cpt=.")
        out.append((var, parents, probs.reshape(*cards, k)))
    return out


class LikelihoodWeighting(eqx.Module):
    """Result of ``BayesNet.likelihood_weighting``.

    Attributes:
        samples: ``(n, V)`` draws, evidence clamped.
        log_weights: ``log w_i = sum_{v in E} log p(e_v | x_pa(v))``.
    """

    samples: Int[Array, "n v"]
    log_weights: Float[Array, " n"]

    @property
    def ess(self) -> Float[Array, ""]:
        """Effective sample size ``(sum w)^2 / sum w^2`` (``n`` when all weights are equal)."""
        lw = self.log_weights
        return jnp.exp(2 * jax.nn.logsumexp(lw) - jax.nn.logsumexp(2 * lw))

    @property
    def log_evidence(self) -> Float[Array, ""]:
        """Estimate of ``log p(evidence)``: ``log mean(w)`` (``mean(w)`` is unbiased)."""
        return jax.nn.logsumexp(self.log_weights) - math.log(self.log_weights.shape[0])

    def expectation(self, values: Float[Array, " n"]) -> Float[Array, ""]:
        """Self-normalised estimate of ``E[f(x) | evidence]`` from ``values = f(samples)``."""
        w = jax.nn.softmax(self.log_weights)
        return jnp.sum(w * values)

    def marginal(self, column: int, num_states: int) -> Float[Array, " k"]:
        """Estimated posterior ``p(x_column = j | evidence)`` for ``j < num_states`` (a discrete
        column: a network's variable index, or a flat element index of a model's samples)."""
        w = jax.nn.softmax(self.log_weights)
        return jnp.zeros(num_states, w.dtype).at[self.samples[:, column].astype(jnp.int32)].add(w)


class BayesNet(eqx.Module):
    """A compiled Bayesian network of tables (see the module docstring).

    Columns of data are the spec's variables in declaration order; values are state
    indices ``0..k_v-1``.
    """

    log_table: Float[Array, " cells"]
    cdf_table: Float[Array, " cells"]
    base: Int[Array, " v1"]
    card: Int[Array, " v1"]
    parents: Int[Array, "v1 r"]
    strides: Int[Array, "v1 r"]
    chunks: Int[Array, "c w"]
    names: tuple[str, ...] = eqx.field(static=True)
    states: tuple[tuple[str, ...], ...] = eqx.field(static=True)
    max_card: int = eqx.field(static=True)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_spec(cls, spec_or_model: Spec | Model) -> BayesNet:
        """Build from a ``Spec`` of ``Table(cpt=...)`` conditionals or a ``Model`` of tables."""
        return cls.from_tables(network_tables(spec_or_model))

    @classmethod
    def from_model(cls, model: Model) -> BayesNet:
        """Build from a (fitted) ``Model`` whose conditionals are all tables."""
        return cls.from_tables(network_tables(model))

    @classmethod
    def from_tables(cls, tables) -> BayesNet:
        """Build from ``(variable, parent names, cpt)`` triples (see ``network_tables``)."""
        names = tuple(v.name for v, _, _ in tables)
        index = {n: i for i, n in enumerate(names)}
        v = len(names)
        cards = np.array([int(c.shape[-1]) for _, _, c in tables] + [1], dtype=np.int64)
        r = max([len(p) for _, p, _ in tables] + [1])
        parents = np.full((v + 1, r), v, dtype=np.int64)  # padding reads the all-zero column v
        strides = np.zeros((v + 1, r), dtype=np.int64)
        sizes = np.array([c.size for _, _, c in tables] + [1], dtype=np.int64)
        base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        for i, (_, ps, _) in enumerate(tables):
            idx = [index[p] for p in ps]
            pc = cards[idx]
            parents[i, : len(idx)] = idx
            strides[i, : len(idx)] = np.concatenate([np.cumprod(pc[::-1])[::-1][1:], [1]]) if len(idx) else []
        if base[-1] + 1 >= 2**31:
            raise SpecError(f"The network has {int(base[-1])} table entries; at most 2**31 - 2 fit int32 indices.")
        probs = np.concatenate([c.reshape(-1) for _, _, c in tables] + [np.ones(1)])
        level = np.zeros(v, dtype=np.int64)
        for i in _topological_order(parents[:v], v):
            ps = parents[i][parents[i] < v]
            level[i] = 1 + level[ps].max() if ps.size else 0
        chunks = level_chunks([np.flatnonzero(level == lv) for lv in range(int(level.max()) + 1)], v)
        dtype = jnp.result_type(float)
        with np.errstate(divide="ignore"):
            log_probs = np.log(probs)
        states = tuple(
            tuple(getattr(var, "states", None) or (str(j) for j in range(int(cards[i]))))
            for i, (var, _, _) in enumerate(tables)
        )
        i32 = lambda a: jnp.asarray(a, dtype=jnp.int32)
        return cls(
            log_table=jnp.asarray(log_probs, dtype), cdf_table=jnp.asarray(_cdf(tables), dtype),
            base=i32(base), card=i32(cards), parents=i32(parents), strides=i32(strides), chunks=i32(chunks),
            names=names, states=states, max_card=int(cards[:v].max()),
        )

    @property
    def num_variables(self) -> int:
        return len(self.names)

    # ------------------------------------------------------------------ data
    def to_array(self, data, *, what: str = "data") -> np.ndarray:
        """Validated ``(n, V)`` int32 state indices from an array or a mapping ``name -> (n,)``
        (state indices, or state names as strings)."""
        if isinstance(data, Mapping):
            for key in data:
                if key not in self.names:
                    raise DataError(f"{what}: unknown variable {key!r}; the network has {list(self.names)}.")
            missing = [n for n in self.names if n not in data]
            if missing:
                raise DataError(f"{what}: no values for variable(s) {missing}.")
            cols = [self._column(n, data[n], what) for n in self.names]
            if len({c.shape for c in cols}) > 1:
                raise DataError(f"{what}: variables have different lengths {[c.shape[0] for c in cols]}.")
            x = np.stack(cols, axis=1)
        else:
            if isinstance(data, jax.core.Tracer):
                return data
            x = np.asarray(data)
            if x.ndim == 1:
                x = x[None]
            if x.ndim != 2 or x.shape[1] != self.num_variables:
                raise DataError(f"{what}: expected shape (n, {self.num_variables}); got {x.shape}.")
            if x.dtype.kind == "f":
                bad = np.argwhere(~np.isfinite(x) | (x != np.round(x)))
                if bad.size:
                    r, c = bad[0]
                    raise DataError(f"{what}: variable {self.names[c]!r} in row {r} is {x[r, c]}; expected a state "
                                    "index.")
            elif x.dtype.kind not in "iub":
                raise DataError(f"{what}: expected integer state indices; got dtype {x.dtype}.")
        x = x.astype(np.int64)
        k = np.asarray(self.card)[: self.num_variables]
        bad = np.argwhere((x < 0) | (x >= k))
        if bad.size:
            r, c = bad[0]
            raise DataError(f"{what}: variable {self.names[c]!r} in row {r} has value {x[r, c]}; it takes "
                            f"0..{k[c] - 1} (states {list(self.states[c])}).")
        return x.astype(np.int32)

    def _column(self, name: str, values, what: str) -> np.ndarray:
        i = self.names.index(name)
        a = np.atleast_1d(np.asarray(values))
        if a.dtype.kind in "US":
            lookup = {s: j for j, s in enumerate(self.states[i])}
            out = np.empty(a.shape, np.int64)
            for r, s in enumerate(a.tolist()):
                if s not in lookup:
                    raise DataError(f"{what}: variable {name!r} in row {r} is {s!r}; states are "
                                    f"{list(self.states[i])}.")
                out[r] = lookup[s]
            return out
        if a.ndim != 1:
            raise DataError(f"{what}: variable {name!r} expected shape (n,); got {a.shape}.")
        return a

    def _mask(self, observed, n: int) -> np.ndarray:
        if isinstance(observed, Mapping):
            m = np.zeros((n, self.num_variables), bool)
            for key, val in observed.items():
                if key not in self.names:
                    raise DataError(f"observed: unknown variable {key!r}; the network has {list(self.names)}.")
                m[:, self.names.index(key)] = np.asarray(val, bool)
            return m
        m = np.asarray(observed, bool)
        if m.shape not in ((self.num_variables,), (n, self.num_variables)):
            raise DataError(f"observed: expected a mask of shape ({self.num_variables},) or ({n}, "
                            f"{self.num_variables}); got {m.shape}.")
        return np.broadcast_to(m, (n, self.num_variables))

    def is_ancestral(self, observed) -> bool:
        """Whether every parent of an observed variable is observed (``sample_conditional`` exact)."""
        m = np.atleast_2d(self._mask(observed, 1) if np.ndim(observed) <= 1 else np.asarray(observed, bool))
        par = np.asarray(self.parents)[: self.num_variables]
        padded = np.concatenate([m, np.ones((m.shape[0], 1), bool)], axis=1)
        return bool(np.all(~m[:, :, None] | padded[:, par]))

    # ------------------------------------------------------------------ queries
    def log_prob(self, data) -> Float[Array, " n"]:
        """Exact joint log-probability of each full assignment (validated)."""
        return bn_log_prob(self, jnp.asarray(self.to_array(data)))

    def log_prob_terms(self, data) -> Float[Array, "n v"]:
        """``log p(x_v | x_pa(v))`` for every row and variable."""
        return bn_log_prob_terms(self, jnp.asarray(self.to_array(data)))

    def sample(self, key: PRNGKeyArray, n: int) -> Int[Array, "n v"]:
        """``n`` exact forward samples ``(n, V)`` of state indices."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"Expected a positive integer number of samples; got {n!r}.")
        return bn_sample(self, key, n)

    def sample_conditional(self, key: PRNGKeyArray, data, observed) -> Int[Array, "n v"]:
        """Complete ``data``: observed entries kept, the rest drawn forward (exact given an
        ancestral observed set, see ``is_ancestral``). ``observed``: bool ``(V,)``, ``(n, V)``
        or ``name -> bool``; unobserved entries of ``data`` must be valid states (ignored)."""
        x = self.to_array(data)
        return bn_sample_conditional(self, key, jnp.asarray(x), jnp.asarray(self._mask(observed, x.shape[0])))

    def likelihood_weighting(self, key: PRNGKeyArray, evidence: Mapping, n: int) -> LikelihoodWeighting:
        """Importance samples for arbitrary ``evidence`` (``name -> state index or name``)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"Expected a positive integer number of samples; got {n!r}.")
        data = {name: np.zeros(n, np.int64) for name in self.names}
        for name, val in evidence.items():
            if name not in self.names:
                raise DataError(f"evidence: unknown variable {name!r}; the network has {list(self.names)}.")
            data[name] = np.full(n, val) if np.ndim(val) == 0 else np.asarray(val)
        x = self.to_array(data, what="evidence")
        mask = self._mask({name: True for name in evidence}, n)
        return bn_likelihood_weighting(self, key, jnp.asarray(x), jnp.asarray(mask))

    # ------------------------------------------------------------------ jitted internals
    # Data travel transposed inside: ``xt`` is ``(V + 1, n)`` with an all-zero row ``V`` that
    # padded parent slots read, so every gather of a variable's values copies a contiguous row.
    def _rows(self, xt: Int[Array, "v1 n"], cols: Int[Array, " m"]) -> Int[Array, "m n"]:
        """Mixed-radix CPT row of variables ``cols`` for every sample."""
        par = jnp.take(self.parents, cols, axis=0, mode="clip")
        st = jnp.take(self.strides, cols, axis=0, mode="clip")
        row = jnp.zeros((cols.shape[0], xt.shape[1]), jnp.int32)
        for j in range(self.parents.shape[1]):  # r parent slots: a handful of row gathers
            row = row + jnp.take(xt, par[:, j], axis=0) * st[:, j, None]
        return row

    def _terms_t(self, xt: Int[Array, "v1 n"]) -> Float[Array, "v n"]:
        v = self.num_variables
        cols = jnp.arange(v)
        idx = (self.base[:v, None] + self._rows(xt, cols) * self.card[:v, None]) + xt[:v]
        return jnp.take(self.log_table, idx, mode="clip")

    def _terms(self, x: Int[Array, "n v"]) -> Float[Array, "n v"]:
        v = self.num_variables
        if v >= ROW_LAYOUT_BELOW:
            return self._terms_t(_padded_t(x)).T
        # small networks: one (n, V, r) gather in the data's own layout (measured faster below
        # ~100 variables on CPU; the transposed row gathers win by 3-4x at 300-1,000)
        xp = jnp.concatenate([x, jnp.zeros((x.shape[0], 1), x.dtype)], axis=1)
        row = (xp[:, self.parents[:v]] * self.strides[:v]).sum(-1)
        return jnp.take(self.log_table, self.base[:v] + row * self.card[:v] + x, mode="clip")

    def _complete_t(self, key, xt: Int[Array, "v1 n"], observed_t: Bool[Array, "v1 n"] | None) -> Int[Array, "v1 n"]:
        """Fill ``xt`` chunk by chunk (each chunk: variables of one level), by inverse CDF
        with a binary search over each row's cumulative probabilities."""
        n, v = xt.shape[1], self.num_variables
        u = jax.random.uniform(key, (v + 1, n), self.cdf_table.dtype)
        steps = max(1, math.ceil(math.log2(self.max_card)))

        def body(xt, cols):
            start = jnp.take(self.base, cols, mode="clip")[:, None] + self._rows(xt, cols) * jnp.take(
                self.card, cols, mode="clip")[:, None]
            t = jnp.take(u, cols, axis=0, mode="clip")
            lo = jnp.zeros_like(start)
            hi = jnp.broadcast_to(jnp.take(self.card, cols, mode="clip")[:, None] - 1, start.shape)
            for _ in range(steps):  # draw = #{j < k - 1 : cdf_j <= u}
                mid = (lo + hi) // 2
                below = jnp.take(self.cdf_table, start + mid, mode="clip") <= t
                active = lo < hi
                lo = jnp.where(active & below, mid + 1, lo)
                hi = jnp.where(active & ~below, mid, hi)
            if observed_t is not None:
                keep = jnp.take(observed_t, cols, axis=0, mode="clip")
                lo = jnp.where(keep, jnp.take(xt, cols, axis=0, mode="clip"), lo)
            return xt.at[cols].set(lo, mode="drop"), None

        xt, _ = jax.lax.scan(body, xt, self.chunks)
        return xt


def _padded_t(x: Int[Array, "n v"]) -> Int[Array, "v1 n"]:
    """``x`` transposed with the all-zero row ``V`` appended."""
    return jnp.concatenate([x.T, jnp.zeros((1, x.shape[0]), x.dtype)], axis=0)


def _cdf(tables) -> np.ndarray:
    """Per-row cumulative probabilities of every CPT, each row divided by its float64 sum
    (last entry 1), flat like the tables (and one trailing 1 for the padding variable)."""
    parts = []
    for _, _, cpt in tables:
        c = np.cumsum(cpt.reshape(-1, cpt.shape[-1]), axis=1)
        parts.append((c / c[:, -1:]).reshape(-1))
    return np.concatenate(parts + [np.ones(1)])


def _topological_order(parents: np.ndarray, v: int) -> list[int]:
    waiting = (parents < v).sum(1)
    children: list[list[int]] = [[] for _ in range(v)]
    for i in range(v):
        for p in parents[i][parents[i] < v]:
            children[p].append(i)
    stack = [i for i in range(v) if waiting[i] == 0]
    order = []
    while stack:
        i = stack.pop()
        order.append(i)
        for c in children[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                stack.append(c)
    if len(order) < v:
        raise SpecError("The network's parents form a cycle.")
    return order


@jax.jit
def bn_log_prob_terms(net: BayesNet, x: Int[Array, "n v"]) -> Float[Array, "n v"]:
    """``log p(x_v | x_pa(v))`` of validated int32 state indices."""
    return net._terms(x)


@jax.jit
def bn_log_prob(net: BayesNet, x: Int[Array, "n v"]) -> Float[Array, " n"]:
    """Joint log-probability of validated int32 state indices."""
    if net.num_variables < ROW_LAYOUT_BELOW:
        return net._terms(x).sum(-1)
    return net._terms_t(_padded_t(x)).sum(0)


@functools.partial(jax.jit, static_argnums=2)
def bn_sample(net: BayesNet, key: PRNGKeyArray, n: int) -> Int[Array, "n v"]:
    """``n`` forward samples."""
    return net._complete_t(key, jnp.zeros((net.num_variables + 1, n), jnp.int32), None)[:-1].T


@jax.jit
def bn_sample_conditional(net: BayesNet, key, x, observed) -> Int[Array, "n v"]:
    """Forward samples with ``observed`` entries of ``x`` kept."""
    return net._complete_t(key, _padded_t(x), _padded_t(observed))[:-1].T


@jax.jit
def bn_likelihood_weighting(net: BayesNet, key, x, observed) -> LikelihoodWeighting:
    """Evidence-clamped forward samples and their log likelihood weights."""
    xt = net._complete_t(key, _padded_t(x), _padded_t(observed))
    log_w = jnp.where(observed.T, net._terms_t(xt), 0.0).sum(0)
    samples = xt[:-1].T
    return LikelihoodWeighting(samples=samples, log_weights=log_w)


def random_tables(
    num_variables: int,
    *,
    max_states: int = 4,
    max_parents: int = 3,
    max_cells: int = 4096,
    concentration: float = 1.0,
    seed: int = 0,
) -> list[tuple[Categorical, tuple[str, ...], np.ndarray]]:
    """A random Bayesian network as ``(variable, parents, cpt)`` triples (``BayesNet.from_tables``).

    Variable ``v{i}`` has ``2..max_states`` named states ``s0, s1, ...`` and up to
    ``max_parents`` parents drawn among earlier variables (so declaration order is
    topological) while its CPT keeps at most ``max_cells`` entries; rows are
    Dirichlet(``concentration``) draws.
    """
    rng = np.random.default_rng(seed)
    ks = rng.integers(2, max_states + 1, num_variables)
    out = []
    for i in range(num_variables):
        k = int(ks[i])
        want = int(rng.integers(0, min(i, max_parents) + 1))
        parents, cells = [], k
        for p in rng.permutation(i):
            if len(parents) == want:
                break
            if cells * int(ks[p]) <= max_cells:
                parents.append(int(p))
                cells *= int(ks[p])
        parents.sort()
        shape = tuple(int(ks[p]) for p in parents)
        cpt = rng.dirichlet(np.full(k, concentration), size=math.prod(shape)).reshape(*shape, k)
        var = Categorical(f"v{i}", k, states=tuple(f"s{j}" for j in range(k)))
        out.append((var, tuple(f"v{p}" for p in parents), cpt))
    return out


def random_network(num_variables: int, **kwargs) -> Spec:
    """``random_tables`` as a ``Spec`` of ``Table(cpt=...)`` conditionals (same arguments)."""
    tables = random_tables(num_variables, **kwargs)
    return Spec(variables=[v for v, _, _ in tables],
                conditionals={v.name: Table(parents=p, cpt=c) for v, p, c in tables})


def likelihood_weighting(
    model: Model | BayesNet, key: PRNGKeyArray, evidence: Mapping, n: int, context=None
) -> LikelihoodWeighting:
    """Importance samples given ``evidence`` (``name -> value``: a state index or name, arrays
    of the variable's shape for array variables) for any arprob ``Model`` or a ``BayesNet``.

    For a ``Model`` the evidence elements are clamped in the model's own sampling scan
    (``Model.sample_conditional``): every other element is drawn from ``p(x_e | x_<e)``
    with the evidence in place, and ``log w = sum_{e in E} log p(x_e | x_<e)``, so
    ``mean(w)`` is unbiased for ``p(evidence)`` whatever the evidence's position in the
    ordering. ``samples`` are flat ``(n, D)`` rows.
    """
    if isinstance(model, BayesNet):
        if context is not None:
            raise ValueError("A BayesNet takes no context.")
        return model.likelihood_weighting(key, evidence, n)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"Expected a positive integer number of samples; got {n!r}.")
    spec = model.spec
    data, observed = {}, {}
    for name in evidence:
        spec.variable(name)  # unknown names raise, naming the declared ones
    for v in spec.variables:
        fill = np.zeros((n, *v.shape))
        if v.name in evidence:
            value = evidence[v.name]
            states = getattr(v, "states", None)
            if isinstance(value, str):  # a state name
                if states is None or value not in states:
                    raise DataError(f"evidence: {value!r} is not a state of {v.name!r} (states {states}).")
                value = states.index(value)
            fill = fill + np.asarray(value, dtype=np.float64)
            observed[v.name] = np.ones(v.shape, bool)
        data[v.name] = fill
    x, ctx = model._prepare(data, context)
    mask = observed_mask(spec, observed, n).astype(x.dtype)
    return _model_lw(model, key, x, mask, ctx)


@jax.jit
def _model_lw(model: Model, key, x, mask, context) -> LikelihoodWeighting:
    samples = flat_sample_conditional(model, key, x, mask, context, False)
    terms = flat_log_prob_terms(model, samples, context)
    return LikelihoodWeighting(samples=samples, log_weights=jnp.sum(jnp.where(mask > 0, terms, 0.0), axis=-1))
