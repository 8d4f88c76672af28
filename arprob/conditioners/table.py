"""Conditional probability tables over declared parents, fitted by counting.

Element ``e`` with parent elements ``p_1..p_r`` (cardinalities ``k_1..k_r``) owns
``prod k_j`` rows; its row for parent values ``v`` is ``offset[e] + sum_j v_j * stride_j``
with mixed-radix strides (the last parent varies fastest, like a C-ordered CPT of shape
``(k_1, ..., k_r, k)``). Fitting with a symmetric Dirichlet(``prior``) prior gives
``p(x=j | row) = (count[row, j] + prior) / (count[row] + k * prior)``; a row with no
data and ``prior=0`` is uniform.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ..errors import SpecError
from ..heads import CategoricalHead, Head
from ..masks import parent_elements
from ..spec.layout import ElementLayout, Steps, may_read
from ..spec.variables import Variable
from .base import ConditionalSpec, Conditioner, ConditionerContext

MAX_TABLE_CELLS = 2**24
#: ``Table(parents=ALL_EARLIER)``: condition on every earlier element (the full chain rule)
ALL_EARLIER = "all"


def _as_nested_tuple(a: np.ndarray):
    return tuple(_as_nested_tuple(r) for r in a) if a.ndim > 1 else tuple(float(v) for v in a)


@dataclasses.dataclass(frozen=True)
class Table(ConditionalSpec):
    """A conditional probability table for a discrete variable.

    Attributes:
        parents: parent variable names (discrete, all earlier in the ordering). The default
            ``()`` (or ``None``) means no parents, as in a Bayesian network's root. ``"all"``
            means *every earlier element* (the full chain rule of an FVSBN-style table; its
            rows grow as the product of the earlier cardinalities, so only tiny models fit).
            A variable named ``"all"`` is named as a list: ``parents=["all"]``.
        prior: symmetric Dirichlet concentration used when fitting by counting
            (1 = Laplace smoothing, 0 = maximum likelihood).
        cpt: optional fixed table of shape ``(*parent_shapes, k)`` (parents in listed
            order, each flattened in C order); rows must sum to one. A given CPT is not
            refitted by ``fit``.
        neighbours: spatial context inside the variable itself: ``(d_row, d_col)``
            offsets; element ``[r, c, ch]`` then also conditions on ``[r+dr, c+dc, ch]``
            where that lies inside the array (a context table, as in JBIG), besides the
            listed ``parents``. Neighbours must come earlier in the ordering.

    A table over more than ``MAX_TABLE_CELLS`` cells (rows times values) is refused when
    the spec is built; a smaller one over the memory budget is refused by ``compile``.

    !!! Example
        ``Table(neighbours=((0, -1), (-1, -1), (-1, 0), (-1, 1)))`` is the causal 4-pixel
        context of raster order; ``Table(parents="all")`` over a few binary variables is
        the fully visible sigmoid belief net's exact table.
    """

    parents: tuple[str, ...] | Literal["all"] = ()
    prior: float = 1.0
    cpt: tuple | None = None
    neighbours: tuple[tuple[int, int], ...] | None = None
    kind: ClassVar[str] = "table"
    random_init: ClassVar[bool] = False  # built without a key (compile skips deriving one)

    def __post_init__(self) -> None:
        if self.parents is None:
            object.__setattr__(self, "parents", ())
        elif isinstance(self.parents, str):
            if self.parents != ALL_EARLIER:
                object.__setattr__(self, "parents", (self.parents,))
        else:
            try:
                names = tuple(self.parents)
            except TypeError:
                raise SpecError(f'Table parents must be variable names or "all"; got {self.parents!r}.') from None
            if not all(isinstance(n, str) for n in names):
                raise SpecError(f'Table parents must be variable names or "all"; got {self.parents!r}.')
            object.__setattr__(self, "parents", names)
        if not (isinstance(self.prior, (int, float)) and self.prior >= 0 and math.isfinite(self.prior)):
            raise SpecError(f"Table prior must be a finite number >= 0; got {self.prior!r}.")
        if self.cpt is not None:
            object.__setattr__(self, "cpt", _as_nested_tuple(np.asarray(self.cpt, dtype=np.float64)))
        if self.neighbours is not None:
            try:
                pairs = tuple((int(dr), int(dc)) for dr, dc in self.neighbours)
            except (TypeError, ValueError):
                raise SpecError(f"Table neighbours must be (d_row, d_col) pairs; got {self.neighbours!r}.") from None
            if (0, 0) in pairs or len(set(pairs)) != len(pairs):
                raise SpecError(f"Table neighbours must be distinct and exclude (0, 0); got {list(pairs)}.")
            object.__setattr__(self, "neighbours", pairs)
        if self.all_earlier and self.neighbours is not None:
            raise SpecError('Table: parents="all" reads every earlier element already; neighbours= goes with '
                            "listed parents (or none).")
        if self.all_earlier and self.cpt is not None:
            raise SpecError('Table: a fixed cpt needs listed parents, not parents="all".')

    @property
    def all_earlier(self) -> bool:
        """Whether the table conditions on every earlier element (``parents="all"``)."""
        return self.parents == ALL_EARLIER

    @property
    def parent_names(self) -> tuple[str, ...] | None:
        """Listed parents, or None for every earlier element (``parents="all"``)."""
        return None if self.all_earlier else self.parents

    def bind_head(self, variable: Variable) -> Head:
        if not variable.is_discrete:
            raise SpecError(f"Table for {variable.name!r}: tables need a discrete variable; it is {variable.kind}.")
        return CategoricalHead().bind(variable)

    def validate(self, variable: Variable, layout: ElementLayout, steps: Steps, context_size: int) -> None:
        self.bind_head(variable)
        if not self.all_earlier:
            for p in self.parents:
                pv = layout.variables[layout.index_of(p)]
                if not pv.is_discrete:
                    raise SpecError(
                        f"Table for {variable.name!r} has parent {p!r}, which is {pv.kind}; table parents must "
                        "be discrete (use Logistic for real parents)."
                    )
        elements = layout.elements_of(variable.name)
        if self.neighbours is not None:
            for e in elements:
                for p in self._neighbours_of(layout, int(e)):
                    if steps.step[p] >= steps.step[e]:
                        raise SpecError(
                            f"Table for {variable.name!r}: neighbour {layout.describe_element(int(p))} of "
                            f"{layout.describe_element(int(e))} is at step {int(steps.step[p])}, not before step "
                            f"{int(steps.step[e])}; neighbours must come earlier in the ordering."
                        )
        rows = self._rows_per_element(layout, steps, elements)
        cells = sum(rows) * variable.num_values
        if cells > MAX_TABLE_CELLS:
            counted = "" if len(rows) == len(elements) else f" or more (counted {len(rows)} of {len(elements)} elements)"
            raise SpecError(
                f"Table for {variable.name!r} would need {cells} cells{counted}, over the limit of "
                f"{MAX_TABLE_CELLS} cells (MAX_TABLE_CELLS); declare fewer parents or use Logistic or a neural "
                "conditioner."
            )
        if self.cpt is not None:
            self._checked_cpt(variable, layout)

    def _parents_of(self, layout: ElementLayout, steps: Steps, e: int) -> np.ndarray:
        if self.all_earlier:
            return np.flatnonzero(may_read(steps.step[e : e + 1], steps.step)[0])
        if self.neighbours is not None:
            return np.concatenate([parent_elements(layout, self.parents), self._neighbours_of(layout, e)])
        return parent_elements(layout, self.parents)

    def _neighbours_of(self, layout: ElementLayout, e: int) -> np.ndarray:
        """Elements at the declared offsets from ``e`` inside its own variable (those in range)."""
        i = int(layout.var_index[e])
        var = layout.variables[i]
        if len(var.shape) < 2:
            raise SpecError(f"Table neighbours for {var.name!r} need a variable with >= 2 axes; shape is {var.shape}.")
        local = np.unravel_index(int(e - layout.offsets[i]), var.shape)
        out = []
        for dr, dc in self.neighbours or ():
            r, c = local[0] + dr, local[1] + dc
            if 0 <= r < var.shape[0] and 0 <= c < var.shape[1]:
                out.append(layout.offsets[i] + np.ravel_multi_index((r, c, *local[2:]), var.shape))
        return np.asarray(out, dtype=np.int64)

    def _rows_per_element(self, layout, steps, elements) -> list[int]:
        rows = []
        for e in elements:
            cards = layout.num_values[self._parents_of(layout, steps, int(e))]
            if np.any(cards == 0):
                real = self._parents_of(layout, steps, int(e))[cards == 0][0]
                raise SpecError(
                    f"Table for {layout.variables[layout.var_index[e]].name!r}: element "
                    f"{layout.describe_element(int(real))} is real and earlier; a table over every earlier "
                    'element (parents="all") needs discrete elements only (list discrete parents instead).'
                )
            rows.append(math.prod(int(k) for k in cards) if len(cards) <= 64 else 2**64)  # no huge bigint products
            if rows[-1] > MAX_TABLE_CELLS:  # over the limit already: the caller refuses; stop counting
                break
        return rows

    def _checked_cpt(self, variable: Variable, layout: ElementLayout) -> np.ndarray:
        cpt = np.asarray(self.cpt, dtype=np.float64)
        cards = tuple(int(k) for k in layout.num_values[parent_elements(layout, self.parents)])
        expected = (*cards, variable.num_values)
        if cpt.shape != expected:
            raise SpecError(
                f"Table for {variable.name!r}: expected a cpt of shape {expected} (parents {list(self.parents)}, "
                f"then {variable.num_values} values); got {cpt.shape}."
            )
        flat = cpt.reshape(-1, variable.num_values)
        for r, row in enumerate(flat):
            config = np.unravel_index(r, cards) if cards else ()
            if not np.all(np.isfinite(row)) or np.any(row < 0):
                raise SpecError(
                    f"Table for {variable.name!r}: cpt row for parent values {tuple(int(c) for c in config)} has "
                    f"a negative or non-finite entry: {row.tolist()}."
                )
            if abs(row.sum() - 1.0) > 1e-6:
                raise SpecError(
                    f"Table for {variable.name!r}: cpt row for parent values {tuple(int(c) for c in config)} sums "
                    f"to {row.sum():.8g}, not 1."
                )
        return flat

    def build(self, ctx: ConditionerContext, *, key=None) -> "TableConditioner":
        layout, steps = ctx.layout, ctx.steps
        k = ctx.variable.num_values
        strides = np.zeros((ctx.num_outputs, layout.num_elements), dtype=np.int32)
        offsets = np.zeros(ctx.num_outputs, dtype=np.int32)
        total = 0
        for i, e in enumerate(ctx.elements):
            parents = self._parents_of(layout, steps, int(e))
            cards = layout.num_values[parents]
            radix = np.concatenate([np.cumprod(cards[::-1])[::-1][1:], [1]]) if len(cards) else np.zeros(0)
            strides[i, parents] = radix
            offsets[i] = total
            total += math.prod(int(c) for c in cards)
        if self.cpt is not None:
            flat = self._checked_cpt(ctx.variable, layout)
            with np.errstate(divide="ignore"):
                log_probs = np.log(np.tile(flat, (ctx.num_outputs, 1)))
        else:
            log_probs = np.full((total, k), -math.log(k))
        put = jax.device_put  # no conversion primitive per array (it cost 1,041 tables seconds)
        return TableConditioner(
            log_probs=put(np.asarray(log_probs, dtype=jnp.result_type(float))),
            strides=put(strides),
            offsets=put(offsets),
            elements=put(np.asarray(ctx.elements, dtype=np.int32)),
            prior=float(self.prior),
            fixed=self.cpt is not None,
        )


class TableConditioner(Conditioner):
    """Runtime table: ``log_probs[row(e, x)]`` are the logits of element ``e``."""

    log_probs: Float[Array, "rows k"]
    strides: Int[Array, "n d"]
    offsets: Int[Array, " n"]
    elements: Int[Array, " n"]
    prior: float = eqx.field(static=True)
    fixed: bool = eqx.field(static=True)
    trainable: ClassVar[bool] = False

    def rows(self, x: Float[Array, " d"]) -> Int[Array, " n"]:
        return self.offsets + self.strides @ x.astype(jnp.int32)

    def __call__(self, x, feats, context):
        return self.log_probs[self.rows(x)]

    def block_params(self, cache, x, feats, context, s, rows):
        picked = jnp.take(self.rows(x), rows, mode="clip")
        return self.log_probs[picked], cache

    def has_closed_form(self) -> bool:
        return not self.fixed

    def closed_form_stats(self, x: Float[Array, "b d"]) -> Float[Array, "rows k"]:
        return self.counts(x)

    def with_closed_form(self, stats: Float[Array, "rows k"]) -> "TableConditioner":
        return self.with_counts(stats)

    def counts(self, x: Float[Array, "b d"]) -> Float[Array, "rows k"]:
        """Counts of (row, value) pairs in a batch of flat data (NumPy on concrete data: no
        XLA program per table shape, which made fitting 37 tables take seconds)."""
        if isinstance(x, jax.core.Tracer):
            rows = jax.vmap(self.rows)(x).reshape(-1)
            values = x[:, self.elements].astype(jnp.int32).reshape(-1)
            return jnp.zeros(self.log_probs.shape, self.log_probs.dtype).at[rows, values].add(1.0)
        xi = np.asarray(x).astype(np.int64)
        # a float64 product (BLAS) is exact here: every row index is below 2**24 (MAX_TABLE_CELLS)
        rows = np.asarray(self.offsets)[None, :] + (xi.astype(np.float64) @ np.asarray(self.strides, np.float64).T
                                                    ).astype(np.int64)
        r, k = self.log_probs.shape
        flat = (rows * k + xi[:, np.asarray(self.elements)]).reshape(-1)
        return np.bincount(flat, minlength=r * k).reshape(r, k).astype(self.log_probs.dtype)

    def with_counts(self, counts: Float[Array, "rows k"]) -> "TableConditioner":
        """The posterior-mean table under a symmetric Dirichlet(prior); fixed CPTs are kept."""
        if self.fixed:
            return self
        k = counts.shape[-1]
        if isinstance(counts, jax.core.Tracer):
            total = counts.sum(-1, keepdims=True) + k * self.prior
            probs = jnp.where(total > 0, (counts + self.prior) / jnp.where(total > 0, total, 1.0), 1.0 / k)
            return eqx.tree_at(lambda t: t.log_probs, self, jnp.log(probs))
        c = np.asarray(counts, dtype=self.log_probs.dtype)
        total = c.sum(-1, keepdims=True) + np.asarray(k * self.prior, c.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            probs = np.where(total > 0, (c + np.asarray(self.prior, c.dtype)) / np.where(total > 0, total, 1), 1.0 / k)
            log_probs = np.log(probs.astype(c.dtype))
        return eqx.tree_at(lambda t: t.log_probs, self, jax.device_put(log_probs))


# ---------------------------------------------------------------------------------------------
# The gathered form of a model's tables (``Model`` scores and samples its table components
# through it; ``arprob.interop.BayesNet`` is the same kernel over given CPTs).

#: Below this many table elements ``log_prob`` unrolls one static column sum per element
#: (XLA fuses them into one loop, as hand-written code is); from it on, the data travel
#: transposed and each parent slot is one row gather (compile time independent of ``T``).
UNROLL_BELOW = 160


@dataclasses.dataclass(frozen=True, eq=False)
class TablePlan:
    """Where every element of a spec's table components reads its log-probability.

    The model's tables, grouped by cardinality (``groups``: ``(k, positions in
    components)``, ascending ``k``), each padded to ``width`` values (the largest) and
    concatenated, form one ``(R, width)`` array, read flat as ``cells``;
    table element ``t`` (flat element ``elements[t]``, ``card[t]`` values) reads
    ``cells[(base[t] + row_t(x)) * width + x_e]`` with the mixed-radix row
    ``row_t(x) = sum_j x[parents[t, j]] * strides[t, j]`` of ``Table.build`` (padded slots read
    element ``D``, a zero, with stride 0). ``chunks`` cuts the table elements into
    topological levels (level 0: no table parent; level ``l``: parents in levels ``< l``),
    each level into chunks of one width, padded with ``T + 1``: the sampler draws a chunk at
    once. It is built from the spec alone (``table_plan``) and holds no arrays of the model.
    """

    components: tuple[int, ...]
    slices: tuple[tuple[int, int], ...]
    elements: np.ndarray
    parents: np.ndarray
    strides: np.ndarray
    base: np.ndarray
    card: np.ndarray
    chunks: np.ndarray
    num_elements: int
    width: int
    groups: tuple[tuple[int, tuple[int, ...]], ...]

    @property
    def num_table_elements(self) -> int:
        return len(self.elements)

    @property
    def covers_all(self) -> bool:
        """Every element of the model is a table element, in flat order."""
        return self.num_table_elements == self.num_elements


def table_plan(spec) -> TablePlan | None:
    """The ``TablePlan`` of ``spec``'s ``Table`` components (``None`` when it has none);
    cached per spec."""
    try:
        return _table_plan(spec)
    except TypeError:  # an unhashable spec: not cached
        return _table_plan.__wrapped__(spec)


@functools.lru_cache(maxsize=32)
def _table_plan(spec) -> TablePlan | None:
    layout, steps = spec.layout, spec.steps
    d = layout.num_elements
    comps, slices, elems, pars, strs, base, card, sizes = [], [], [], [], [], [], [], []
    for i, (var, (name, cond)) in enumerate(zip(spec.variables, spec.conditionals)):
        if not isinstance(cond, Table):
            continue
        k = int(var.num_values)
        start = len(elems)
        rows = 0
        for e in layout.elements_of(name):
            ps = cond._parents_of(layout, steps, int(e))
            cards = layout.num_values[ps]
            radix = np.concatenate([np.cumprod(cards[::-1])[::-1][1:], [1]]) if len(cards) else np.zeros(0)
            elems.append(int(e))
            pars.append(np.asarray(ps, np.int64))
            strs.append(np.asarray(radix, np.int64))
            base.append(rows)  # inside the component's table; its offset is added below
            card.append(k)
            rows += math.prod(int(c) for c in cards)
        sizes.append((k, rows))
        comps.append(i)
        slices.append((start, len(elems)))
    if not comps:
        return None
    # tables of one cardinality are adjacent (one group each, cardinalities ascending), so the
    # model normalises and pads each group at once, not each table
    groups = tuple((k, tuple(j for j, (kj, _) in enumerate(sizes) if kj == k)) for k in sorted({k for k, _ in sizes}))
    offset, total = np.zeros(len(comps), np.int64), 0
    for _, members in groups:
        for j in members:
            offset[j] = total
            total += sizes[j][1]
    base = [b + offset[j] for j, (lo, hi) in enumerate(slices) for b in base[lo:hi]]
    width = max(card)
    if (total + 1) * width >= 2**31:
        raise SpecError(f"The model's tables have {total} rows of up to {width} values; at most 2**31 - 2 cells fit "
                        "int32 indices.")
    t = len(elems)
    r = max([len(p) for p in pars] + [1])
    parents = np.full((t, r), d, np.int64)
    strides = np.zeros((t, r), np.int64)
    for j, (p, s) in enumerate(zip(pars, strs)):
        parents[j, : len(p)] = p
        strides[j, : len(s)] = s
    elements = np.asarray(elems, np.int64)
    # levels over table elements (parents that are not table elements are given: level -1)
    where = np.full(d + 1, -1, np.int64)
    where[elements] = np.arange(t)
    level = np.zeros(t, np.int64)
    for j in np.argsort(steps.step[elements], kind="stable"):  # parents come at earlier steps
        ps = where[parents[j]]
        ps = ps[ps >= 0]
        level[j] = 1 + level[ps].max() if ps.size else 0
    chunks = level_chunks([np.flatnonzero(level == lv) for lv in range(int(level.max()) + 1)], t)
    return TablePlan(components=tuple(comps), slices=tuple(slices), elements=elements, parents=parents,
                     strides=strides, base=np.asarray(base, np.int64), card=np.asarray(card, np.int64), chunks=chunks,
                     num_elements=d, width=int(width), groups=groups)


def level_chunks(levels: list[np.ndarray], t: int) -> np.ndarray:
    """Cut each level into chunks of one width ``w`` (padded with ``t + 1``, dropped on
    write), ``w`` minimising the padded work ``chunks * (w + 8)`` (8: a step's overhead in
    elements, a rough CPU figure)."""
    best = None
    for w in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512):
        count = sum(-(-len(g) // w) for g in levels)
        cost = count * (w + 8)
        if best is None or cost < best[0]:
            best = (cost, w, count)
    _, w, count = best
    out = np.full((count, w), t + 1, dtype=np.int64)
    i = 0
    for g in levels:
        for c in range(0, len(g), w):
            part = g[c : c + w]
            out[i, : len(part)] = part
            i += 1
    return out


def _i32(a) -> Array:
    return jnp.asarray(np.asarray(a), jnp.int32)


def padded_logits(
    plan: TablePlan, logits: list[Float[Array, "rows k"]], normalise: bool = False
) -> Float[Array, "r w"]:
    """The tables' logits (``logits[j]`` of ``plan.components[j]``) in the plan's row order,
    each cardinality group concatenated (``log_softmax`` per row when ``normalise``) and padded
    to ``plan.width`` values with ``-inf``: a few operations per cardinality, none per table."""
    w = plan.width
    parts = []
    for k, members in plan.groups:
        a = jnp.concatenate([logits[j] for j in members]) if len(members) > 1 else logits[members[0]]
        if normalise:
            a = jax.nn.log_softmax(a, axis=-1)
        parts.append(a if k == w else jnp.pad(a, ((0, 0), (0, w - k)), constant_values=-jnp.inf))
    return jnp.concatenate(parts) if len(parts) > 1 else parts[0]


def _static_index(plan: TablePlan, xi: Int[Array, "b d"]) -> list[Int[Array, " b"]]:
    """Each table element's cell index, from static columns (small plans)."""
    cols = []
    w = plan.width
    for j in range(plan.num_table_elements):  # XLA fuses the index arithmetic into one loop
        idx = xi[:, int(plan.elements[j])] + int(plan.base[j]) * w
        for p, s in zip(plan.parents[j], plan.strides[j]):
            if s:
                idx = idx + xi[:, int(p)] * int(s * w)
        cols.append(idx)
    return cols


def _transposed_index(plan: TablePlan, xi: Int[Array, "b d"]) -> Int[Array, "t b"]:
    xt = padded_transpose(xi)
    return (_i32(plan.base)[:, None] + transposed_rows(plan, xt, None)) * plan.width + jnp.take(
        xt, _i32(plan.elements), axis=0)


def gathered_terms(plan: TablePlan, cells: Float[Array, " c"], x: Array) -> Float[Array, "b t"]:
    """``log p(x_e | x_pa(e))`` of every table element (columns in plan order) of a batch of
    flat, validated rows ``x`` ``(b, D)``, ``cells`` the flat normalised log tables: one gather."""
    xi = x.astype(jnp.int32)
    if plan.num_table_elements < UNROLL_BELOW:
        return jnp.take(cells, jnp.stack(_static_index(plan, xi), axis=1), mode="clip")
    return jnp.take(cells, _transposed_index(plan, xi), mode="clip").T


def gathered_log_prob(plan: TablePlan, cells: Float[Array, " c"], x: Array) -> Float[Array, " b"]:
    """``sum_t log p(x_t | x_pa(t))`` over the table elements (the sum of ``gathered_terms``,
    added as it is gathered when the plan is small)."""
    xi = x.astype(jnp.int32)
    if plan.num_table_elements < UNROLL_BELOW:
        cols = _static_index(plan, xi)
        total = jnp.take(cells, cols[0], mode="clip")
        for c in cols[1:]:
            total = total + jnp.take(cells, c, mode="clip")
        return total
    return jnp.take(cells, _transposed_index(plan, xi), mode="clip").sum(0)


def padded_transpose(x: Int[Array, "n d"]) -> Int[Array, "d1 n"]:
    """``x`` transposed with an all-zero row ``D`` appended (what padded parent slots read)."""
    return jnp.concatenate([x.T, jnp.zeros((1, x.shape[0]), x.dtype)], axis=0)


def transposed_rows(plan: TablePlan, xt: Int[Array, "d1 n"], cols: Int[Array, " m"] | None) -> Int[Array, "m n"]:
    """Mixed-radix rows of table elements ``cols`` (all when ``None``) from transposed data:
    ``r`` row gathers, one per parent slot."""
    par, st = _i32(plan.parents), _i32(plan.strides)
    if cols is not None:
        par, st = jnp.take(par, cols, axis=0, mode="clip"), jnp.take(st, cols, axis=0, mode="clip")
    row = jnp.zeros((par.shape[0], xt.shape[1]), jnp.int32)
    for j in range(plan.parents.shape[1]):
        row = row + jnp.take(xt, par[:, j], axis=0) * st[:, j, None]
    return row


def gathered_complete(
    plan: TablePlan, cdf: Float[Array, " c"], u: Float[Array, "t n"], xt: Int[Array, "d1 n"],
    observed_t: Bool[Array, "d1 n"] | None,
) -> Int[Array, "d1 n"]:
    """Fill the table elements of transposed data ``xt`` level chunk by level chunk inside
    one ``lax.scan``: element ``t`` takes the number of values ``j < k - 1`` with
    ``cdf[row, j] <= u[t]`` (``cdf``: each row's cumulative probabilities divided by their
    sum), by binary search; ``observed_t`` entries keep their values."""
    elements, card, base = _i32(plan.elements), _i32(plan.card), _i32(plan.base)
    w = plan.width
    steps = max(1, math.ceil(math.log2(max(int(plan.card.max()), 2))))

    def body(xt, cols):
        k = jnp.take(card, cols, mode="clip")[:, None]
        start = (jnp.take(base, cols, mode="clip")[:, None] + transposed_rows(plan, xt, cols)) * w
        target = jnp.take(u, cols, axis=0, mode="clip")
        lo = jnp.zeros_like(start)
        hi = jnp.broadcast_to(k - 1, start.shape)
        for _ in range(steps):  # draw = #{j < k - 1 : cdf_j <= u}
            mid = (lo + hi) // 2
            below = jnp.take(cdf, start + mid, mode="clip") <= target
            active = lo < hi
            lo = jnp.where(active & below, mid + 1, lo)
            hi = jnp.where(active & ~below, mid, hi)
        rows = jnp.take(elements, cols, mode="fill", fill_value=xt.shape[0] + 1)  # padding: dropped
        if observed_t is not None:
            lo = jnp.where(jnp.take(observed_t, rows, axis=0, mode="clip"), jnp.take(xt, rows, axis=0, mode="clip"), lo)
        return xt.at[rows].set(lo, mode="drop"), None

    xt, _ = jax.lax.scan(body, xt, _i32(plan.chunks))
    return xt


def normalised_cdf(logits: Float[Array, "r w"]) -> Float[Array, " c"]:
    """Each row's cumulative ``softmax(logits)`` divided by its sum (last entry 1), flat. The
    running sum is a product with a triangular matrix: one dot (a ``cumsum`` per table took
    XLA seconds to compile)."""
    p = jax.nn.softmax(logits, axis=-1)
    w = logits.shape[-1]
    c = jnp.dot(p, jnp.triu(jnp.ones((w, w), p.dtype)), precision=jax.lax.Precision.HIGHEST)
    return (c / c[:, -1:]).reshape(-1)
