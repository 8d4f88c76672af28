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
import math
from typing import ClassVar, Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..errors import SpecError
from ..heads import CategoricalHead, Head
from ..masks import parent_elements
from ..spec.layout import ElementLayout, Steps, may_read
from ..spec.variables import Variable
from .base import Conditioner, ConditionalSpec, ConditionerContext

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
        return TableConditioner(
            log_probs=jnp.asarray(log_probs, dtype=jnp.result_type(float)),
            strides=jnp.asarray(strides),
            offsets=jnp.asarray(offsets),
            elements=jnp.asarray(ctx.elements, dtype=jnp.int32),
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
        """Counts of (row, value) pairs in a batch of flat data."""
        import jax

        rows = jax.vmap(self.rows)(x).reshape(-1)
        values = x[:, self.elements].astype(jnp.int32).reshape(-1)
        return jnp.zeros(self.log_probs.shape, self.log_probs.dtype).at[rows, values].add(1.0)

    def with_counts(self, counts: Float[Array, "rows k"]) -> "TableConditioner":
        """The posterior-mean table under a symmetric Dirichlet(prior); fixed CPTs are kept."""
        if self.fixed:
            return self
        k = counts.shape[-1]
        total = counts.sum(-1, keepdims=True) + k * self.prior
        probs = jnp.where(total > 0, (counts + self.prior) / jnp.where(total > 0, total, 1.0), 1.0 / k)
        return eqx.tree_at(lambda t: t.log_probs, self, jnp.log(probs))
